/**
 * Is this glidein in the collector? `condor_status -pool <collector> -constraint 'GlideinLaunchId == "<id>"'
 * -af Name State Activity`, run inside the glidein's container through the same pre-loaded chain, so it works
 * where the glidein works.
 */
import { ApplicationFailure } from '@temporalio/common';
import { activityInfo } from './kit';
import { redact } from '../common/redact';
import type { GlideinRef, Registration } from '../common/types';
import { lastLines } from '../remote/executor';
import type { SiteProfile } from '../site/profile';
import { containerRuntime } from './container';
import type { ActivityDeps } from './deps';
import { asStep } from './failures';
import { glideinState } from './glidein';
import { tailFile } from './processes';
import { preloadEnv } from './proxychains';
import { heartbeat, sleep } from './kit';
import { siteAccess, type SiteAccess } from './site-access';
import { FailureType } from '../common/failure-types';

export function condorStatusArgv(profile: SiteProfile, instance: string, glideinId: string): string[] {
  return statusArgv(profile, instance, `GlideinLaunchId == "${glideinId}"`, ['Name', 'State', 'Activity']);
}

/** Every glidein we launched that reports to this collector (GlideinLaunchId, from condorConfig), by its id. */
export function collectorStatusArgv(profile: SiteProfile, instance: string): string[] {
  return statusArgv(profile, instance, 'GlideinLaunchId =!= undefined', [
    'GlideinLaunchId',
    'Name',
    'State',
    'Activity',
  ]);
}

function statusArgv(profile: SiteProfile, instance: string, constraint: string, attributes: string[]): string[] {
  return [
    containerRuntime(profile).executable,
    'exec',
    `instance://${instance}`,
    ...profile.glidein.statusCommand,
    '-pool',
    `${profile.collector.host}:${profile.collector.port}`,
    '-constraint',
    constraint,
    '-af',
    ...attributes,
  ];
}

/** `-af Name State Activity`: one ad per line, values separated by spaces. */
export function parseAutoformat(stdout: string): Registration[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('[proxychains]'))
    .map((l) => {
      const [name, state = 'undefined', activity = 'undefined'] = l.split(/\s+/);
      return { name, state, activity };
    });
}

/** `-af GlideinLaunchId Name State Activity`: the ads by launch id (ads without one are not ours). */
export function parseLaunchedAds(stdout: string): Map<string, Registration> {
  const ads = new Map<string, Registration>();
  for (const line of stdout.split('\n')) {
    const [id, name, state = 'undefined', activity = 'undefined'] = line.trim().split(/\s+/);
    if (!id || !name || id === 'undefined' || id.startsWith('[proxychains]')) continue;
    if (!ads.has(id)) ads.set(id, { name, state, activity });
  }
  return ads;
}

export type RegistrationCheck = { registered: Registration } | { registered: undefined; error?: string };

export async function queryRegistration(access: SiteAccess): Promise<RegistrationCheck> {
  const { profile, node } = access;
  const result = await node.run(
    condorStatusArgv(profile, access.instance, access.ref.glideinId),
    access.opts({ env: preloadEnv(profile, access.paths.proxychainsConf, true), timeoutMs: 30_000 }),
  );
  if (result.code !== 0)
    return { registered: undefined, error: `condor_status exited with ${result.code}: ${lastLines(result.stderr, 2)}` };
  const ads = parseAutoformat(result.stdout);
  return { registered: ads[0] };
}

/** Our glideins in the collector, asked from inside this glidein's container; throws when condor_status fails. */
export async function queryCollectorRegistrations(access: SiteAccess): Promise<Map<string, Registration>> {
  const { profile, node } = access;
  const result = await node.run(
    collectorStatusArgv(profile, access.instance),
    access.opts({ env: preloadEnv(profile, access.paths.proxychainsConf, true), timeoutMs: 30_000 }),
  );
  if (result.code !== 0)
    throw new Error(
      `condor_status for our glideins at ${profile.collector.host}:${profile.collector.port} exited with ${result.code}: ${lastLines(result.stderr, 2)}`,
    );
  return parseLaunchedAds(result.stdout);
}

interface ConfirmProgress {
  firstAttemptAt: number;
  polls: number;
  lastError?: string;
}

export function createRegistrationActivities(deps: ActivityDeps) {
  return {
    /** Polls until the collector lists this glidein, the glidein dies, or the timeout (counted from the first attempt). */
    async confirmRegistration(ref: GlideinRef, timeoutMs: number): Promise<Registration> {
      return asStep('confirmRegistration', async () => {
        const access = await siteAccess(deps, ref);
        const previous = activityInfo().heartbeatDetails as ConfirmProgress | undefined;
        const progress: ConfirmProgress = previous ?? { firstAttemptAt: Date.now(), polls: 0 };
        const pollMs = Math.min(2_000, Math.max(deps.pollMs ?? 1_000, 250));
        for (;;) {
          const check = await queryRegistration(access);
          progress.polls++;
          if (check.registered) return check.registered;
          progress.lastError = check.error;
          const glidein = await glideinState(access);
          if (!glidein.alive) {
            // The glidein's own log can echo its IDTOKEN or proxy; redacted here as well as in asStep.
            const log = redact(await tailFile(access.node, access.paths.glideinLog, 8, access.opts()));
            throw ApplicationFailure.nonRetryable(
              `confirmRegistration: the glidein exited before it registered with ${access.profile.collector.host}:${access.profile.collector.port}: ${log || 'no output'}`,
              FailureType.GlideinExited,
            );
          }
          if (Date.now() - progress.firstAttemptAt > timeoutMs) {
            throw ApplicationFailure.nonRetryable(
              `confirmRegistration: glidein ${ref.glideinId} did not appear in collector ${access.profile.collector.host}:${access.profile.collector.port} within ${Math.round(timeoutMs / 1000)} s` +
                ` (glidein.registrationTimeout)${progress.lastError ? `; last condor_status error: ${progress.lastError}` : ''}`,
              FailureType.RegistrationTimeout,
            );
          }
          heartbeat(progress);
          await sleep(pollMs);
        }
      });
    },
  };
}

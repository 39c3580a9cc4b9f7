/**
 * Is this glidein in the collector? `condor_status -pool <collector> -constraint 'GlideinLaunchId == "<id>"'
 * -af Name State Activity`, run inside the glidein's container through the same pre-loaded chain, so it works
 * where the glidein works.
 */
import { ApplicationFailure } from '@temporalio/common';
import { activityInfo } from './kit';
import { redact } from '../common/redact';
import type { GlideinRef, Registration } from '../common/types';
import { inspect, tailFile } from '../site/scripts/processes';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';
import { heartbeat, sleep } from './kit';
import { queryContext, siteAccess } from './site-access';
import { FailureType } from '../common/failure-types';

interface ConfirmProgress {
  firstAttemptAt: number;
  polls: number;
  lastError?: string;
}

export function createRegistrationActivities(deps: ActivityDeps) {
  return {
    /**
     * Polls until the collector lists this glidein, the glidein dies, or the timeout (counted from the first attempt).
     */
    async confirmRegistration(ref: GlideinRef, timeoutMs: number): Promise<Registration> {
      return asStep('confirmRegistration', async () => {
        const access = await siteAccess(deps, ref);
        const previous = activityInfo().heartbeatDetails as ConfirmProgress | undefined;
        const progress: ConfirmProgress = previous ?? { firstAttemptAt: Date.now(), polls: 0 };
        const pollMs = Math.min(2_000, Math.max(deps.pollMs ?? 1_000, 250));
        for (;;) {
          const check = await access.adapters.condor.queryRegistration(queryContext(access), ref.glideinId);
          progress.polls++;
          if (check.registered) return check.registered;
          progress.lastError = check.error;
          const look = await inspect(access.node, [access.paths.glideinPid], access.opts());
          if (!look.processes.get(access.paths.glideinPid)?.alive) {
            // The glidein's own log can echo its IDTOKEN or proxy; redacted here as well as in asStep.
            const log = redact(await tailFile(access.node, access.paths.glideinLog, 8, access.opts()));
            throw ApplicationFailure.nonRetryable(
              `confirmRegistration: the glidein exited before it registered with ` +
                `${access.profile.collector.host}:${access.profile.collector.port}: ${log || 'no output'}`,
              FailureType.GlideinExited,
            );
          }
          if (Date.now() - progress.firstAttemptAt > timeoutMs) {
            throw ApplicationFailure.nonRetryable(
              `confirmRegistration: glidein ${ref.glideinId} did not appear in collector ` +
                `${access.profile.collector.host}:${access.profile.collector.port} within ` +
                `${Math.round(timeoutMs / 1000)} s` +
                ' (glidein.registrationTimeout)' +
                (progress.lastError ? `; last condor_status error: ${progress.lastError}` : ''),
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

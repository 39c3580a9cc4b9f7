/**
 * Plans: the part of a site profile a workflow follows, worked out by a worker from the profile and recorded in
 * history (so secret-free): a LaunchGlidein's (planFor) and a GlideinFleet's (fleetPlanFor).
 */
import type { z } from 'zod';
import type { launchPlanSchema } from '../common/carried-state';
import { parseDuration } from '../common/duration';
import type { FleetLimits } from '../common/fleet-request';
import { batchFor } from './batch';
import { portCount, type SiteProfile } from './profile';

/** The part of a profile the workflow needs to plan a lifecycle; recorded in history, so secret-free. */
export type LaunchPlan = z.output<typeof launchPlanSchema>;
export type CredentialKind = NonNullable<LaunchPlan['credentials']>[number];

export function planFor(profile: SiteProfile, glideinId: string, lifetime: string | undefined): LaunchPlan {
  const batch = batchFor(profile);
  return {
    site: profile.name,
    glideinId,
    lifetimeMs: parseDuration(lifetime ?? profile.glidein.lifetime),
    registrationTimeoutMs: parseDuration(profile.glidein.registrationTimeout),
    monitorIntervalMs: parseDuration(profile.monitor.interval),
    monitorRoundMs: parseDuration(profile.monitor.reportEvery),
    drainGraceMs: parseDuration(profile.glidein.drainGrace),
    stopGraceMs: parseDuration(profile.glidein.stopGrace),
    repositories: profile.cvmfs.repositories,
    workDir: `${profile.workDir}/${glideinId}`,
    collector: `${profile.collector.host}:${profile.collector.port}`,
    historyEvents: profile.monitor.historyEvents,
    ...(batch ? { slurm: { ...batch.limits } } : {}),
    ...(profile.credentials
      ? { credentials: (['idToken', 'x509Proxy'] as const).filter((k) => profile.credentials![k] !== undefined) }
      : {}),
  };
}

/** The part of a profile a GlideinFleet follows; recorded in history, so secret-free. */
export interface FleetPlan {
  site: string;
  limits: FleetLimits;
  reconcileEveryMs: number;
  historyEvents: number;
  /** The profile has a demand probe (fleet.demand). */
  demandProbe: boolean;
}

export function fleetPlanFor(profile: SiteProfile): FleetPlan {
  const f = profile.fleet;
  return {
    site: profile.name,
    limits: {
      maxGlideins: f.maxGlideins,
      maxStarting: f.maxStarting,
      startsPerMinute: f.startsPerMinute,
      maxFailedStarts: f.maxFailedStarts,
      failureWindowMs: parseDuration(f.failureWindow),
      probeAfterMs: parseDuration(f.probeAfter),
      maxProbeDelayMs: Math.max(parseDuration(f.maxProbeDelay), parseDuration(f.probeAfter)),
      idleTimeMs: parseDuration(f.idleTime),
      maxLive: profile.workerNode.via === 'slurm' ? 2 * f.maxGlideins : portCount(profile.tunnel),
    },
    reconcileEveryMs: parseDuration(f.reconcileEvery),
    historyEvents: f.historyEvents,
    demandProbe: f.demand !== undefined,
  };
}

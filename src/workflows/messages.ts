/** Signals, queries and search attributes of LaunchGlidein: defined once, imported by clients and tests. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { HeldResource, MonitorReport, Registration, StepOutcome } from '../common/types';

export interface GlideinClaim {
  claimed: boolean;
  /** ISO time: without a job since then (absent while claimed). */
  idleSince?: string;
}

export type Phase = 'planning' | 'setup' | 'registering' | 'monitoring' | 'teardown' | 'done' | 'failed' | 'cancelled';

export interface GlideinStatus {
  site: string;
  glideinId: string;
  phase: Phase;
  /** Every step so far, teardown included, in order; carried across continue-as-new. */
  steps: StepOutcome[];
  /** What is held on the site now; teardown releases it in reverse. */
  held: HeldResource[];
  registration?: Registration;
  /** The Slurm job holding the worker node, on sites that allocate one. */
  allocation?: { jobId: string; node: string };
  lastCheck?: MonitorReport['last'];
  /**
   * Whether the glidein runs a job, as the monitor last saw its ad, and since when it has had none (its last claim,
   * or its registration). Also in the memo (`claim`), so that a fleet drains idle glideins before busy ones.
   */
  claim?: GlideinClaim;
  /** Epoch ms at which the glidein is drained for its lifetime. */
  deadline?: number;
  shutdown?: 'drain' | 'stop';
  /** Name of an ad the collector still lists for this glidein after its process ended. */
  ghost?: string;
  endReason?: string;
}

/** Graceful end: the glidein stops accepting jobs, finishes (within glidein.drainGrace), then teardown. */
export const drainSignal = defineSignal('drain');
/** Teardown now (glidein.stopGrace for the glidein to shut down). */
export const stopSignal = defineSignal('stop');
export const statusQuery = defineQuery<GlideinStatus>('status');

export { GlideinFleet, GlideinId, GlideinPhase, GlideinSite, SEARCH_ATTRIBUTES } from '../common/search-attributes';

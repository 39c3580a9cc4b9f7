/** Domain types shared by the workflow, activities and clients. All of them are recorded in history: no secrets. */
import type { z } from 'zod';
import type { StepName } from './step-names';
import type { heldResourceSchema } from './carried-state';

/** Names one glidein lifecycle on one site; every activity gets it and finds the rest in the site profile. */
export interface GlideinRef {
  site: string;
  glideinId: string;
  /** The allocated worker node, on sites where Slurm hands it out. */
  node?: string;
  /** The Slurm job that holds `node` (steps are started in it where the node is reached by srun). */
  jobId?: string;
  /** The SOCKS port this glidein's tunnel leased on its worker node (from the profile's tunnel.socksPorts). */
  socksPort?: number;
}

/** Something on the site that teardown must give back, in the order it was taken: one schema says what. */
export type HeldResource = z.output<typeof heldResourceSchema>;

/** Every step of a lifecycle: the step catalogue's names (src/workflows/steps.ts). */
export type { StepName };

export interface StepOutcome {
  step: StepName;
  status: 'running' | 'ok' | 'failed';
  /** Workflow time, ISO 8601. */
  startedAt: string;
  durationMs?: number;
  /** What the step found or did, in a few words. */
  detail?: string;
  error?: string;
}

export interface ProcessRef {
  pid: number;
  /** /proc/<pid>/stat start time: with the pid, names one process even after pid reuse. */
  startTime: string;
}

export interface TunnelInfo {
  socksPort: number;
  process: ProcessRef;
  reused: boolean;
}

export interface Registration {
  name: string;
  state: string;
  activity: string;
}

export type MonitorEnd =
  | 'round-complete'
  | 'deadline'
  | 'glidein-exited'
  | 'tunnel-down'
  | 'unregistered'
  /** The Slurm job holding the glidein's node ended (scancel from outside, its time limit, a node failure). */
  | 'allocation-ended';

export interface MonitorReport {
  end: MonitorEnd;
  checks: number;
  /** Workflow-visible summary of the latest check. */
  last?: {
    at: string;
    tunnel: boolean;
    glidein: boolean;
    registered: boolean;
    /** The startd is claimed (running a job, or about to): its ad says State = "Claimed". */
    claimed?: boolean;
    detail?: string;
  };
  detail?: string;
  /** The last check of this round that found the glidein claimed, if any did. */
  lastClaimedAt?: string;
  /** The collector still advertises a glidein whose process is gone. */
  ghost?: string;
}

export type ShutdownMode = 'drain' | 'stop';

export interface UndoOutcome {
  detail: string;
}

export interface Allocation {
  jobId: string;
  node: string;
  /** Time the job has left when it was found running, in ms (undefined: no limit). */
  timeLeftMs?: number;
  reused: boolean;
}

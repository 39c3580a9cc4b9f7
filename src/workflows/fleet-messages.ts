/** GlideinFleet's query, update and signals: defined once, imported by clients, tests and the schedule command. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { FLEET_PHASES } from '../common/fleet-request';
import type { FleetStatus } from './fleet-rules';

export type FleetPhase = (typeof FLEET_PHASES)[number];

export interface FleetView extends FleetStatus {
  fleet: string;
  site: string;
  phase: FleetPhase;
  /** Starts paused by the `pause` signal (resumed by `resume`). */
  paused: boolean;
  /** The schedule that runs this fleet is paused: no starts. */
  schedulePaused: boolean;
  drainAll: boolean;
  /** Every slot the fleet knows, as last observed. */
  slots: Array<{
    slot: number;
    id: string;
    state: 'free' | 'starting' | 'running' | 'draining' | 'closed';
    runId?: string;
    /** A running glidein's startd is claimed (runs a job), as its LaunchGlidein last said. */
    busy?: boolean;
  }>;
  rounds: number;
  lastRoundAt?: string;
  endReason?: string;
  /** Why the demand probe gave no number in the last round (the fleet keeps the last number it had). */
  demandError?: string;
}

export const fleetStatusQuery = defineQuery<FleetView>('status');
/** Sets the desired count (0-10000; clamped to the profile's fleet.maxGlideins) and acts on it at once. */
export const setCountUpdate = defineUpdate<FleetView, [number]>('setCount');
/** Drains every glidein of the fleet, starts none, and ends the fleet run once all have ended. */
export const drainAllSignal = defineSignal('drain-all');
/** No new starts (running glideins are left alone) until `resume`. */
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

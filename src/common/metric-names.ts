/**
 * The project's own Prometheus metrics (prefix `glidein_`), named once for the workflow side
 * (src/workflows/metrics.ts), the worker side (src/metrics.ts: histogram buckets, SSH and activity counters), the tests
 * and docs/ARCHITECTURE.md. Pure: workflow code imports it too.
 */
export const METRIC = {
  /** Counter {site, phase}: LaunchGlidein runs entering a phase (a continued run does not enter its phase again). */
  phaseEntered: 'glidein_phase_entered',
  /** Counter {site, phase}: runs leaving a phase. Entered minus left is the number of glideins in it now. */
  phaseLeft: 'glidein_phase_left',
  /** Histogram {site, step, status}: each lifecycle step, retries included, in seconds of workflow time. */
  stepDuration: 'glidein_step_duration_seconds',
  /**
   * Counter {site, step, type}: steps that failed after their retries, by failure type (src/common/failure-types.ts).
   */
  stepFailures: 'glidein_step_failures',
  /** Histogram {site}: from the workflow's start to confirmRegistration ok, in seconds. */
  registrationLatency: 'glidein_registration_latency_seconds',
  /** Counter {site, status}: tunnels reopened while monitoring, after the monitor found them down. */
  tunnelRepairs: 'glidein_tunnel_repairs',
  /** Counter {site, activityType, type}: activity attempts that failed (each retry counts), by failure type. */
  activityFailures: 'glidein_activity_failures',
  /** Counter {target}: SSH (TCP) connections the worker opened, by host:port (a jumped one too). */
  sshConnectionsOpened: 'glidein_ssh_connections_opened',
  /** Counter {target}: connections made again after a kept one dropped. */
  sshReconnects: 'glidein_ssh_reconnects',
  /** Counter {target, kind}: connection attempts that failed (kind: connect, host-key, auth, timeout, ...). */
  sshConnectFailures: 'glidein_ssh_connect_failures',
} as const;

/** Buckets (seconds) of the duration histograms: a quick check to an hour-long Slurm queue or registration. */
export const DURATION_BUCKETS_S = [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600];

/**
 * The `site` label of a site no worker has a profile for (or not yet: a glidein that is still planning). Label values
 * are bounded by the sites the workers know: a request naming any other cannot add series.
 */
export const UNKNOWN_SITE = 'unknown';

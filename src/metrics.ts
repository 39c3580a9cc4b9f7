/**
 * The worker's Prometheus endpoint: the Temporal runtime's own metrics (temporal_*: workflow and activity task
 * latencies, polls, slots, ...) and the project's (glidein_*, named in src/common/metric-names.ts), all served by
 * the SDK's Core at http://METRICS_ADDRESS/metrics.
 *   METRICS_ADDRESS  ip:port to serve on (default 127.0.0.1:9464; [::1]:9464 for IPv6), or `off` (or empty): none
 *
 * Where each glidein_ metric comes from: the workflow's phases, steps, registration and tunnel repairs through the
 * workflow metric meter (src/workflows/metrics.ts); failed activity attempts from an activity interceptor (below);
 * SSH connections from the SshPool's events (sshMetrics, below) on the runtime's meter.
 */
import { ApplicationFailure, CancelledFailure, type MetricMeter } from '@temporalio/common';
import { Runtime, type ActivityInterceptorsFactory, type MetricsExporterConfig } from '@temporalio/worker';
import { DURATION_BUCKETS_S, METRIC, UNKNOWN_SITE } from './common/metric-names';
import { FailureType } from './common/failure-types';
import { activitySubject } from './logger';
import type { SshEvents } from './remote/ssh-connect';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9464';

/** An IPv4 address or a bracketed IPv6 one, and a port: what Core's exporter binds to (it resolves no names). */
const BIND_ADDRESS = /^(?:(?:\d{1,3}\.){3}\d{1,3}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/** METRICS_ADDRESS as the exporter's bind address; undefined when metrics are off. */
export function metricsAddressFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const raw = env.METRICS_ADDRESS;
  if (raw === undefined) return DEFAULT_METRICS_ADDRESS;
  const value = raw.trim();
  if (value === '' || value.toLowerCase() === 'off') return undefined;
  const port = BIND_ADDRESS.exec(value)?.[1];
  if (port === undefined || Number(port) < 1 || Number(port) > 65535)
    throw new Error(
      `METRICS_ADDRESS: expected ip:port (e.g. ${DEFAULT_METRICS_ADDRESS}, 0.0.0.0:9464, [::1]:9464) or ` +
        `off, got ${JSON.stringify(raw)}`,
    );
  return value;
}

/** Core's Prometheus exporter on that address, with the duration histograms in seconds-sized buckets. */
export function prometheusExporter(bindAddress: string): MetricsExporterConfig {
  return {
    prometheus: {
      bindAddress,
      histogramBucketOverrides: {
        [METRIC.stepDuration]: DURATION_BUCKETS_S,
        [METRIC.registrationLatency]: DURATION_BUCKETS_S,
      },
    },
  };
}

/** A `site` label: the site when it is one `knows` accepts, `none` for an activity of no site, else `unknown`. */
export function siteLabel(site: string | undefined, knows: (site: string) => boolean): string {
  if (site === undefined) return 'none';
  return knows(site) ? site : UNKNOWN_SITE;
}

/** Counts the SshPool's connections (SshOptions.events) on the runtime's meter: process-wide, not per activity. */
export function sshMetrics(meter: MetricMeter = Runtime.instance().metricMeter): SshEvents {
  const opened = meter.createCounter(METRIC.sshConnectionsOpened, undefined, 'SSH connections opened');
  const reconnects = meter.createCounter(METRIC.sshReconnects, undefined, 'SSH connections made again after a drop');
  const failures = meter.createCounter(METRIC.sshConnectFailures, undefined, 'SSH connection attempts that failed');
  return {
    opened: (target) => opened.add(1, { target }),
    reconnected: (target) => reconnects.add(1, { target }),
    failed: (target, kind) => failures.add(1, { target, kind }),
  };
}

/**
 * Counts each failed activity attempt by its failure type (the activities raise ApplicationFailures typed from
 * FailureType; a cancellation is not a failure), with the site it worked on: a site `knows` says this worker has a
 * profile for, else `unknown` (an activity's arguments are anyone's to choose, its labels must not be). The
 * activity's meter adds namespace, taskQueue and activityType.
 */
export const activityFailureMetrics =
  (knows: (site: string) => boolean): ActivityInterceptorsFactory =>
  (ctx) => ({
    inbound: {
      async execute(input, next) {
        try {
          return await next(input);
        } catch (err) {
          if (!(err instanceof CancelledFailure) && !ctx.cancellationSignal.aborted) {
            const type = err instanceof ApplicationFailure && err.type ? err.type : FailureType.StepError;
            ctx.metricMeter
              .createCounter(METRIC.activityFailures, undefined, 'activity attempts that failed')
              .add(1, { site: siteLabel(activitySubject(input.args).site, knows), type });
          }
          throw err;
        }
      },
    },
  });

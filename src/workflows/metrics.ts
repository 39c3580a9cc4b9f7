/**
 * LaunchGlidein's metrics, through the SDK's workflow metric meter: it adds no command to the history and emits
 * nothing while a workflow replays, so a worker that picks a glidein up again does not count its past twice. The
 * worker adds namespace, taskQueue and workflowType to each; the names are src/common/metric-names.ts's.
 *
 * The SDK's workflow meter (1.24) has counters, histograms and gauges but no up-down counter, so glideins by phase
 * are two counters, entered and left: their difference is the number of glideins in a phase. Counted as increases
 * (`increase(...[2d])`) it survives worker restarts (see docs/ARCHITECTURE.md, "Metrics").
 */
import { isCancellation, metricMeter, workflowInfo } from '@temporalio/workflow';
import { METRIC, UNKNOWN_SITE } from '../common/metric-names';
import type { Phase } from './messages';
import type { StepName } from './steps';
import { failureType } from './closing-failure';

/**
 * What of GlideinLifecycle (./state.ts) these read; structural, so that state.ts and this file do not import each
 * other.
 */
interface Observed {
  readonly ref: { readonly site: string };
  readonly status: { readonly phase: Phase; readonly steps: readonly unknown[] };
  /** Set once planLaunch has found the site's profile on a worker. */
  readonly plan?: unknown;
}

/**
 * The `site` label: the request's site once a worker has planned the launch from its profile, `unknown` before (and
 * so for a site no worker knows). Anyone who may start a workflow chooses its site; only the workers' profiles may
 * add a label value.
 */
function siteLabel(lifecycle: Observed, planned = false): string {
  return planned || lifecycle.plan !== undefined ? lifecycle.ref.site : UNKNOWN_SITE;
}

/** The label each run's current phase was entered under, so that it is left under the same one. */
const enteredAs = new WeakMap<Observed, string>();

/**
 * Called by setPhase before the phase changes. A run's first call repeats its phase (setPhase(status.phase)): a new
 * glidein (no step yet) enters `planning` there; a continued run's phase was entered by the run before it.
 */
export function notePhase(lifecycle: Observed, next: Phase): void {
  const { phase, steps } = lifecycle.status;
  const site = siteLabel(lifecycle);
  if (phase === next) {
    if (steps.length === 0) {
      metricMeter.createCounter(METRIC.phaseEntered).add(1, { site, phase: next });
      enteredAs.set(lifecycle, site);
    }
    return;
  }
  metricMeter.createCounter(METRIC.phaseLeft).add(1, { site: enteredAs.get(lifecycle) ?? site, phase });
  metricMeter.createCounter(METRIC.phaseEntered).add(1, { site, phase: next });
  enteredAs.set(lifecycle, site);
}

/**
 * Wraps one step's run (GlideinLifecycle.step): its duration and outcome (ok, failed, cancelled), its failure type, a
 * tunnel repair (the tunnel reopened while monitoring), and the registration latency when confirmRegistration succeeds.
 */
export function observeStep<T>(lifecycle: Observed, step: StepName, run: () => Promise<T>): () => Promise<T> {
  return async () => {
    let site = siteLabel(lifecycle);
    const started = Date.now();
    const repair = step === 'openTunnel' && lifecycle.status.phase === 'monitoring';
    let status: 'ok' | 'failed' | 'cancelled' = 'failed';
    try {
      const result = await run();
      status = 'ok';
      // planLaunch's success is what makes the site a known one.
      site = siteLabel(lifecycle, step === 'planLaunch');
      if (step === 'confirmRegistration') {
        const since = workflowInfo().startTime.getTime();
        metricMeter
          .createHistogram(METRIC.registrationLatency, 'float', 's', 'workflow start to confirmed registration')
          .record(Math.max(0, (Date.now() - since) / 1000), { site });
      }
      return result;
    } catch (err) {
      // A drain or stop cancels the step under way: not a failure of the site.
      if (isCancellation(err)) {
        status = 'cancelled';
        throw err;
      }
      metricMeter.createCounter(METRIC.stepFailures).add(1, { site, step, type: failureType(err) ?? 'StepError' });
      throw err;
    } finally {
      metricMeter
        .createHistogram(METRIC.stepDuration, 'float', 's', 'a lifecycle step, retries included')
        .record(Math.max(0, (Date.now() - started) / 1000), { site, step, status });
      if (repair) metricMeter.createCounter(METRIC.tunnelRepairs).add(1, { site, status });
    }
  };
}

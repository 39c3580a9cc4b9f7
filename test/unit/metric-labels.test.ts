/**
 * The worker's `site` label is bounded by the profiles it has: an activity's arguments name any site they like, and
 * only a site whose profile this worker loaded becomes a label value (src/metrics.ts). The workflow side is in
 * workflow-metrics.test.ts.
 */
import * as path from 'node:path';
import { ApplicationFailure, type MetricMeter, type MetricTags } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { activityFailureMetrics, siteLabel } from '../../src/metrics';
import { SiteRegistry } from '../../src/site/load';

function recordingMeter(): { meter: MetricMeter; tags: MetricTags[] } {
  const tags: MetricTags[] = [];
  const meter: MetricMeter = {
    createCounter: (name) => ({
      name,
      kind: 'counter',
      valueType: 'int',
      add: (_value, t = {}) => void tags.push(t),
      withTags: () => {
        throw new Error('unused');
      },
    }),
    createHistogram: () => {
      throw new Error('unused');
    },
    createGauge: () => {
      throw new Error('unused');
    },
    withTags: () => meter,
  };
  return { meter, tags };
}

it('labels a failed attempt with its site only when the worker knows the site', async () => {
  const { meter, tags } = recordingMeter();
  const knows = (site: string) => site === 'jsc';
  const fail = async (_ref: { site: string }) => {
    throw ApplicationFailure.nonRetryable('no such profile', 'InvalidRequest');
  };
  for (const site of ['jsc', ...Array.from({ length: 20 }, (_, i) => `hostile-${i}`), 'x'.repeat(200)]) {
    const env = new MockActivityEnvironment(undefined, {
      interceptors: [activityFailureMetrics(knows)],
      metricMeter: meter,
    });
    await expect(env.run(fail, { site })).rejects.toThrow('no such profile');
  }
  expect(new Set(tags.map((t) => t.site))).toEqual(new Set(['jsc', 'unknown']));
  expect(siteLabel(undefined, knows)).toBe('none');
});

it('knows a site once its profile has loaded, and never one that failed to', async () => {
  const sites = new SiteRegistry(path.join(__dirname, '..', '..', 'sites'));
  expect(sites.knows('local')).toBe(false);
  await sites.get('local');
  expect(sites.knows('local')).toBe(true);
  await expect(sites.get('no-such-site')).rejects.toThrow('no profile named');
  expect(sites.knows('no-such-site')).toBe(false);
});

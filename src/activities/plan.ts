/** The first step: load the site profile in the worker and return the secret-free plan the workflow follows. */
import type { GlideinRef } from '../common/types';
import { planFor, type LaunchPlan } from '../site/plan';
import type { ActivityDeps } from './deps';
import { asStep } from './to-failure';

export function createPlanActivities(deps: ActivityDeps) {
  return {
    async planLaunch(ref: GlideinRef, lifetime?: string): Promise<LaunchPlan> {
      return asStep('planLaunch', async () => planFor(await deps.sites.get(ref.site), ref.glideinId, lifetime));
    },
  };
}

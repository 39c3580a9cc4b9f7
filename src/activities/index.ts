/** All activities of a glidein lifecycle, built from injected dependencies. */
import { createAllocationActivities } from './allocation';
import { atBoundary } from './boundary';
import { createCleanupActivities } from './cleanup';
import { createContainerActivities } from './container';
import { createCredentialActivities } from './credentials';
import { createCvmfsActivities } from './cvmfs';
import type { ActivityDeps } from './deps';
import { createFleetActivities } from './fleet';
import { createGlideinActivities } from './glidein';
import { createMonitorActivities } from './monitor';
import { createPlanActivities } from './plan';
import { createProxychainsActivities } from './proxychains';
import { createRegistrationActivities } from './registration';
import { createSiteToolActivities } from './operator-checks';
import { createTunnelActivities } from './tunnel';

/** Every activity, its results and failures redacted at the boundary (./boundary.ts). */
export function createActivities(deps: ActivityDeps) {
  return atBoundary({
    ...createPlanActivities(deps),
    ...createAllocationActivities(deps),
    ...createTunnelActivities(deps),
    ...createProxychainsActivities(deps),
    ...createCvmfsActivities(deps),
    ...createContainerActivities(deps),
    ...createCredentialActivities(deps),
    ...createGlideinActivities(deps),
    ...createRegistrationActivities(deps),
    ...createMonitorActivities(deps),
    ...createCleanupActivities(deps),
    ...createFleetActivities(deps),
    ...createSiteToolActivities(deps),
  });
}

export type GlideinActivities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './deps';

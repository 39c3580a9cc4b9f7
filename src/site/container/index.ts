/**
 * The container runtime (`container.runtime`), one kind per file: apptainer.ts (apptainer and singularity, one CLI
 * under two names).
 */
import type { SiteProfile } from '../profile';
import { apptainerFor } from './apptainer';
import type { ContainerRuntime } from './container-runtime';

export function containerFor(profile: SiteProfile): ContainerRuntime {
  switch (profile.container.runtime) {
    case 'apptainer':
    case 'singularity':
      return apptainerFor(profile);
  }
}

export type { ContainerRuntime, InstanceInfo } from './container-runtime';
export { CONTAINED, INSTANCE_START_PERMANENT } from './apptainer';

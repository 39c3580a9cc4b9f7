/** What activities are built from: injected, so tests can point them at another site or executor. */
import type { Client } from '@temporalio/client';
import type { SshPool } from '../remote/ssh';
import type { SiteProfile } from '../site/profile';
import type { SiteRegistry } from '../site/load';
import type { SiteExecutors } from '../site/adapters';

export interface ActivityDeps {
  sites: SiteRegistry;
  ssh: SshPool;
  /** Replaces the SSH executors (unit tests run the steps on this machine). */
  executorsFor?: (profile: SiteProfile) => SiteExecutors;
  /** The worker's Temporal client: GlideinFleet observes its glideins through it. */
  temporal?: Client;
  /** Poll period while waiting for something on the site (registration, a port, a process to end). */
  pollMs?: number;
}

export type { SiteExecutors };

/**
 * Jest globalSetup: every suite runs against one local test site (see docs/TEST-SITE.md); with
 * TEMPORAL_BACKEND=cluster, also against one two-node Temporal cluster on PostgreSQL (sandbox/cluster.ts).
 */
import { joinLocalSite } from '../../sandbox/local-site';
import { startCluster, temporalBackend } from '../../sandbox/cluster';

export default async function globalSetup(): Promise<void> {
  await joinLocalSite();
  if (temporalBackend() === 'cluster') {
    const started = Date.now();
    const { frontends, postgres } = await startCluster();
    console.log(
      `\nTemporal cluster on PostgreSQL ${postgres}: frontends ${frontends.join(', ')} (${Date.now() - started} ms)`,
    );
  }
}

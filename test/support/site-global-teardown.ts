/**
 * Jest globalTeardown: leave nothing of the local test site running (its directory stays), unless another
 * process on this machine still uses it; the last one out stops it. The run's Temporal cluster, if any, stops.
 */
import { leaveLocalSite } from '../../sandbox/local-site';
import { stopCluster, temporalBackend } from '../../sandbox/cluster';

export default async function globalTeardown(): Promise<void> {
  if (temporalBackend() === 'cluster') await stopCluster();
  const others = await leaveLocalSite();
  if (others.length > 0) console.log(`local test site left running: still used by process(es) ${others.join(', ')}`);
}

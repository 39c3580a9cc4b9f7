/**
 * Jest globalTeardown: leave nothing of the local test site running (its directory stays), unless another
 * process on this machine still uses it; the last one out stops it.
 */
import { leaveLocalSite } from '../../sandbox/local-site';

export default async function globalTeardown(): Promise<void> {
  const others = await leaveLocalSite();
  if (others.length > 0) console.log(`local test site left running: still used by process(es) ${others.join(', ')}`);
}

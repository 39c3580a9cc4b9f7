/**
 * Jest globalTeardown: leave nothing of the local test site running (its directory stays), unless another
 * test run on this machine still uses it; the last run out stops it.
 */
import { releaseSiteLease, stopLocalSite } from '../site/local-site';

export default async function globalTeardown(): Promise<void> {
  const others = releaseSiteLease();
  if (others.length > 0) {
    console.log(`local test site left running: still used by test run(s) ${others.join(', ')}`);
    return;
  }
  await stopLocalSite();
}

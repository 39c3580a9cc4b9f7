/** The in-memory fake site: the activities run against it through the Executor seam (ActivityDeps.executorsFor). */
export { EMPTY_FOOTPRINT, FakeExecutor, FakeSite } from './site';
export type { FakeFaults, FakeSiteConfig, Footprint, HostName, SiteCommand } from './site';
export { FAKE_SITE_DIR, fakeProfile, fakeSiteFor, fakeSitesDir, fakeSlurmProfile, writeFakeProfile } from './profile';

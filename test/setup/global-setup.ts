/** Jest globalSetup: every suite runs against one local test site (see docs/TEST-SITE.md). */
import { joinLocalSite } from '../../sandbox/local-site';

export default async function globalSetup(): Promise<void> {
  await joinLocalSite();
}

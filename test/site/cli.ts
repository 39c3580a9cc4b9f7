/**
 * The local test site from the command line (as root):
 *   npx ts-node test/site/cli.ts up       build the site and start its daemons (idempotent)
 *   npx ts-node test/site/cli.ts down     stop everything the site runs (the directory stays)
 *   npx ts-node test/site/cli.ts status   daemons, FUSE mounts and processes of user glidein
 */
import { SITE_DIR, SITE_PATHS, siteStatus, startLocalSite, stopLocalSite, type SiteStatus } from './local-site';

function printStatus(status: SiteStatus): void {
  for (const s of status.services) {
    const state = s.accepting ? 'up' : s.pids.length > 0 ? 'running, not accepting' : 'down';
    console.log(
      `${s.service.padEnd(10)} ${`${s.endpoint.host}:${s.endpoint.port}`.padEnd(16)} ${state.padEnd(24)} pids ${s.pids.join(',') || '-'}`,
    );
  }
  console.log(`mounts under ${SITE_DIR}: ${status.mounts.length === 0 ? 'none' : ''}`);
  for (const m of status.mounts) console.log(`  ${m.target} (${m.fstype}, ${m.source})`);
  console.log(`processes of user glidein: ${status.processes.length === 0 ? 'none' : ''}`);
  for (const p of status.processes) console.log(`  ${String(p.pid).padStart(7)} ${p.cmdline}`);
}

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up':
      await startLocalSite();
      console.log(`local test site is up in ${SITE_DIR} (profile sites/local.yaml)`);
      console.log(`  operator key ${SITE_PATHS.operatorKey}, known_hosts ${SITE_PATHS.operatorKnownHosts}`);
      printStatus(await siteStatus());
      return 0;
    case 'down':
      await stopLocalSite();
      console.log(`local test site is down (${SITE_DIR} kept)`);
      return 0;
    case 'status':
      printStatus(await siteStatus());
      return 0;
    default:
      console.error('usage: npx ts-node test/site/cli.ts up|down|status');
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);

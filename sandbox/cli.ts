/**
 * The two test sites from the command line (as root):
 *   npx ts-node sandbox/cli.ts local up        build the loopback site and start its daemons (idempotent)
 *   npx ts-node sandbox/cli.ts local down      stop everything it runs (the directory stays)
 *   npx ts-node sandbox/cli.ts local status    daemons, FUSE mounts and processes of user glidein
 *   npx ts-node sandbox/cli.ts jsc-box up      build JSC in a box and start everything (idempotent)
 *   npx ts-node sandbox/cli.ts jsc-box down    remove the namespaces, the bridge and every process (the directory
 *                                              stays)
 *   npx ts-node sandbox/cli.ts jsc-box status  namespaces, daemons, Slurm, processes and mounts of the box
 *   npx ts-node sandbox/cli.ts jsc-box strict on|off
 *                                              strict: no sshd on the worker node, from= on the login node's keys,
 *                                              the login node bans a source opening too many SSH connections
 *   npx ts-node sandbox/cli.ts cluster up      a fresh two-node Temporal cluster on PostgreSQL (sandbox/cluster.ts)
 *   npx ts-node sandbox/cli.ts cluster down    stop both nodes and PostgreSQL (the directory stays, for its logs)
 *   npx ts-node sandbox/cli.ts cluster status  the nodes, their frontends and PostgreSQL
 * (`npm run site -- up`, `npm run box -- up` and `npm run cluster -- up` are the same.) Each site is named after its
 * profile in sites/.
 */
import { BAN, BOX_DIR, BOX_PATHS, boxStatus, setStrict, startJscBox, stopJscBox, type BoxStatus } from './jsc-box';
import { CLUSTER_DIR, clusterStatus, startCluster, stopCluster } from './cluster';
import { SITE_DIR, SITE_PATHS, siteStatus, startLocalSite, stopLocalSite, type SiteStatus } from './local-site';

function printSiteStatus(status: SiteStatus): void {
  for (const s of status.services) {
    const state = s.accepting ? 'up' : s.pids.length > 0 ? 'running, not accepting' : 'down';
    console.log(
      `${s.service.padEnd(10)} ${`${s.endpoint.host}:${s.endpoint.port}`.padEnd(16)} ${state.padEnd(24)} ` +
        `pids ${s.pids.join(',') || '-'}`,
    );
  }
  console.log(`mounts under ${SITE_DIR}: ${status.mounts.length === 0 ? 'none' : ''}`);
  for (const m of status.mounts) console.log(`  ${m.target} (${m.fstype}, ${m.source})`);
  console.log(`processes of user glidein: ${status.processes.length === 0 ? 'none' : ''}`);
  for (const p of status.processes) console.log(`  ${String(p.pid).padStart(7)} ${p.cmdline}`);
}

function printBoxStatus(status: BoxStatus): void {
  console.log(
    status.strict
      ? `strict: no sshd on the worker node, from= keys, a source opening more than ${BAN.connections} SSH ` +
          `connections a minute is banned ${BAN.banSeconds} s; banned now: ${status.banned.join(' ') || 'none'}`
      : 'lenient: sshd on the worker node, keys from anywhere, no ban (`jsc-box strict on` makes it strict)',
  );
  console.log(`namespaces: ${status.namespaces.join(' ') || 'none'}; bridge glbr0: ${status.bridge ? 'up' : 'absent'}`);
  for (const s of status.services) {
    const where = s.endpoint ? `${s.endpoint.host}:${s.endpoint.port}` : 'unix socket';
    const state = s.ready ? 'up' : s.pids.length > 0 ? 'running, not ready' : 'down';
    console.log(
      `${s.service.padEnd(12)} ${s.node.padEnd(7)} ${where.padEnd(16)} ${state.padEnd(20)} pids ` +
        `${s.pids.join(',') || '-'}`,
    );
  }
  if (status.workerNode !== undefined) console.log(`worker node jwc01: ${status.workerNode}`);
  console.log(`jobs: ${status.jobs.length === 0 ? 'none' : ''}`);
  for (const j of status.jobs)
    console.log(`  ${j.id} ${j.user} ${j.state} ${j.nodes || '-'} left ${j.timeLeft} ${j.name}`);
  console.log(`mounts under ${BOX_DIR}: ${status.mounts.length === 0 ? 'none' : ''}`);
  for (const m of status.mounts) console.log(`  [${m.where}] ${m.target} (${m.fstype}, ${m.source})`);
  console.log(
    `processes of glidein, slurmstepd and sessions in the box: ${status.processes.length === 0 ? 'none' : ''}`,
  );
  for (const p of status.processes) console.log(`  ${String(p.pid).padStart(7)} [${p.node}] ${p.cmdline}`);
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

async function local(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up':
      await startLocalSite();
      console.log(`local test site is up in ${SITE_DIR} (profile sites/local.yaml)`);
      console.log(`  operator key ${SITE_PATHS.operatorKey}, known_hosts ${SITE_PATHS.operatorKnownHosts}`);
      printSiteStatus(await siteStatus());
      return 0;
    case 'down':
      await stopLocalSite();
      console.log(`local test site is down (${SITE_DIR} kept)`);
      return 0;
    case 'status':
      printSiteStatus(await siteStatus());
      return 0;
    default:
      return usage();
  }
}

async function jscBox(command: string | undefined): Promise<number> {
  const started = Date.now();
  switch (command) {
    case 'up':
      await startJscBox();
      console.log(`JSC in a box is up in ${BOX_DIR} (profile sites/jsc-box.yaml), ${seconds(started)}`);
      console.log(`  operator key ${BOX_PATHS.operatorKey}, known_hosts ${BOX_PATHS.operatorKnownHosts}`);
      console.log(
        `  ssh -F /dev/null -i ${BOX_PATHS.operatorKey} -o ` +
          `UserKnownHostsFile=${BOX_PATHS.operatorKnownHosts} glidein@10.77.0.2`,
      );
      printBoxStatus(await boxStatus());
      return 0;
    case 'down':
      await stopJscBox();
      console.log(`JSC in a box is down (${BOX_DIR} kept), ${seconds(started)}`);
      return 0;
    case 'status':
      printBoxStatus(await boxStatus());
      return 0;
    case 'strict': {
      const on = process.argv[4];
      if (on !== 'on' && on !== 'off') return usage();
      await setStrict(on === 'on');
      printBoxStatus(await boxStatus());
      return 0;
    }
    default:
      return usage();
  }
}

async function cluster(command: string | undefined): Promise<number> {
  const started = Date.now();
  switch (command) {
    case 'up': {
      const state = await startCluster();
      console.log(`Temporal cluster is up in ${CLUSTER_DIR}, ${seconds(started)}: PostgreSQL ${state.postgres}`);
      console.log(`  temporal workflow list --address ${state.frontends[0]}   (or ${state.frontends[1]})`);
      break;
    }
    case 'down':
      await stopCluster();
      console.log(`Temporal cluster is down (${CLUSTER_DIR} kept, with its logs), ${seconds(started)}`);
      return 0;
    case 'status':
      break;
    default:
      return usage();
  }
  const status = await clusterStatus();
  for (const n of status.nodes)
    console.log(
      `node ${n.node} ${n.frontend.padEnd(16)} ${n.serving ? 'serving' : 'not serving'}  pid ${n.pid ?? '-'}`,
    );
  console.log(`PostgreSQL: ${status.postgres ? 'running' : 'down'}`);
  return 0;
}

function usage(): number {
  console.error('usage: npx ts-node sandbox/cli.ts local|jsc-box|cluster up|down|status | jsc-box strict on|off');
  return 2;
}

const [site, command] = process.argv.slice(2);
const sites: Record<string, (command: string | undefined) => Promise<number>> = {
  local,
  'jsc-box': jscBox,
  cluster,
};
const run = sites[site ?? ''] ?? (async () => usage());
run(command).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);

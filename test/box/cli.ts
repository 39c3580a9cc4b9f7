/**
 * JSC in a box from the command line (as root):
 *   npx ts-node test/box/cli.ts up       build the box and start everything (idempotent)
 *   npx ts-node test/box/cli.ts down     remove the namespaces, the bridge and every process (the directory stays)
 *   npx ts-node test/box/cli.ts status   namespaces, daemons, Slurm, processes and mounts of the box
 */
import { BOX_DIR, BOX_PATHS, boxStatus, startJscBox, stopJscBox, type BoxStatus } from './jsc-box';

function printStatus(status: BoxStatus): void {
  console.log(`namespaces: ${status.namespaces.join(' ') || 'none'}; bridge glbr0: ${status.bridge ? 'up' : 'absent'}`);
  for (const s of status.services) {
    const where = s.endpoint ? `${s.endpoint.host}:${s.endpoint.port}` : 'unix socket';
    const state = s.ready ? 'up' : s.pids.length > 0 ? 'running, not ready' : 'down';
    console.log(
      `${s.service.padEnd(12)} ${s.node.padEnd(7)} ${where.padEnd(16)} ${state.padEnd(20)} pids ${s.pids.join(',') || '-'}`,
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

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up': {
      const started = Date.now();
      await startJscBox();
      console.log(
        `JSC in a box is up in ${BOX_DIR} (profile sites/jsc-box.yaml), ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      console.log(`  operator key ${BOX_PATHS.operatorKey}, known_hosts ${BOX_PATHS.operatorKnownHosts}`);
      console.log(
        `  ssh -F /dev/null -i ${BOX_PATHS.operatorKey} -o UserKnownHostsFile=${BOX_PATHS.operatorKnownHosts} glidein@10.77.0.2`,
      );
      printStatus(await boxStatus());
      return 0;
    }
    case 'down': {
      const started = Date.now();
      await stopJscBox();
      console.log(`JSC in a box is down (${BOX_DIR} kept), ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return 0;
    }
    case 'status':
      printStatus(await boxStatus());
      return 0;
    default:
      console.error('usage: npx ts-node test/box/cli.ts up|down|status');
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

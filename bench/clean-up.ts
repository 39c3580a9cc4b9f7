/**
 * Removes what an interrupted benchmark left on the loopback site: processes of glideins with `bench-` ids
 * (tunnels, container instance stand-ins, condor_master stand-ins), the benchmarks' cvmfsexec directories and
 * their mounts, and the glideins' work directories. Touches nothing of other test runs.
 *
 *   npx ts-node bench/clean-up.ts
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SITE_PATHS, siteProcesses } from '../sandbox/local-site';
import { benchProcesses, cleanUpBench } from './lib';

function main(): void {
  // Tunnels of benchmark glideins: ssh -D processes whose pid file lies in a bench- work directory.
  const tunnelPorts: number[] = [];
  for (const p of siteProcesses().filter((x) => x.argv[0] === 'ssh' && / -D 127\.0\.0\.1:\d+ /.test(x.cmdline))) {
    const port = Number(/ -D 127\.0\.0\.1:(\d+) /.exec(p.cmdline)![1]);
    // the benchmarks' SOCKS ports (other tests use 1080-1190)
    if (port >= 21_000 && port < 29_000) tunnelPorts.push(port);
  }
  const found = benchProcesses('bench-', tunnelPorts).length;
  let mounts = 0;
  for (const entry of fs.existsSync(SITE_PATHS.workDir) ? fs.readdirSync(SITE_PATHS.workDir) : []) {
    if (entry.startsWith('bench-cvmfsexec-'))
      mounts += cleanUpBench({
        idPrefix: 'bench-',
        ports: tunnelPorts,
        cvmfsexecDir: path.join(SITE_PATHS.workDir, entry),
      }).mounts;
  }
  cleanUpBench({ idPrefix: 'bench-', ports: tunnelPorts });
  console.log(
    `removed ${found} processes, ${mounts} mounts; ${benchProcesses('bench-', tunnelPorts).length} ` +
      `benchmark processes left`,
  );
}

main();

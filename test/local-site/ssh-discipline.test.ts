/**
 * JSC blocks hosts that open too many connections. Ten lifecycles at once on one worker must ride one TCP
 * connection per host (login node, and worker node through it), counted where it counts: in the sshds' logs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { drainSignal } from '../../src/workflows/messages';
import { SITES_DIR } from '../../sandbox/sites';
import { SITE_PATHS, siteProcesses, sshdLog } from '../../sandbox/local-site';
import { useDevServer, waitForPhase } from '../support/workflow-harness';

const { withWorker, start } = useDevServer();
const PARALLEL = 10;

/** Ten sites that are the same site with their own SOCKS port (one node can't give ten tunnels one port). */
function tenSites(): string {
  const base = parse(readFileSync(path.join(SITES_DIR, 'local.yaml'), 'utf8'));
  const dir = mkdtempSync(path.join(tmpdir(), 'glidein-ten-'));
  for (let i = 0; i < PARALLEL; i++) {
    writeFileSync(
      path.join(dir, `local-p${i}.yaml`),
      stringify({ ...base, name: `local-p${i}`, tunnel: { ...base.tunnel, socksPort: 1101 + i } }),
    );
  }
  return dir;
}

const fingerprint = (pub: string) => execFileSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }).split(' ')[1];

describe('SSH discipline', () => {
  it(`runs ${PARALLEL} lifecycles at once over one connection to the login node, one to the worker node`, async () => {
    const operator = fingerprint(`${SITE_PATHS.operatorKey}.pub`);
    const loginBefore = sshdLog('login').length;
    const workerBefore = sshdLog('worker').length;
    const ids = Array.from({ length: PARALLEL }, (_, i) => `wf-par${i}-${Date.now()}`);
    await withWorker(tenSites(), async (w) => {
      const handles = await Promise.all(ids.map((id, i) => start(w, id, { site: `local-p${i}`, lifetime: '10m' })));
      await Promise.all(handles.map((h) => waitForPhase(h, 'monitoring', 120_000)));
      expect(siteProcesses().filter((p) => p.cmdline.includes('condor_master'))).toHaveLength(PARALLEL);
      await Promise.all(handles.map((h) => h.signal(drainSignal)));
      const results = await Promise.all(handles.map((h) => h.result()));
      expect(results.map((r) => r.endReason)).toEqual(ids.map(() => 'drained'));
      expect(w.ssh.connectCounts()).toEqual({
        'glidein@127.0.0.1:2201': 1,
        'glidein@127.0.0.1:2201>glidein@127.0.0.2:2202': 1,
      });
    });
    // The operator's key logged in exactly once on each node (the tunnels log in to the login node with the site's
    // key).
    const logins = (log: string) =>
      log.split('\n').filter((l) => l.includes('Accepted publickey') && l.includes(operator));
    expect(logins(sshdLog('login').slice(loginBefore))).toHaveLength(1);
    expect(logins(sshdLog('worker').slice(workerBefore))).toHaveLength(1);
    expect(sshdLog('login').slice(loginBefore)).not.toMatch(/no more sessions/);
    expect(sshdLog('worker').slice(workerBefore)).not.toMatch(/no more sessions/);
  }, 240_000);
});

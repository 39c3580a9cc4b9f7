/**
 * A pool job runs in the glidein's own container as the site user (no nested containers at JSC): through a real
 * lifecycle on the local site, a job-shaped process in that container — a shell in HTCondor's execute directory,
 * exec'd into the instance as the glidein's daemons are — tries to reach what only the lifecycle may: the claim,
 * the pid files and logs, the tunnel's key and the site user's ~/.ssh, and to rewrite the pool credential. Each
 * fails, and the glidein goes on and drains cleanly. What a job can still read (the credential and
 * proxychains.conf, which the daemons read) is written in docs/ARCHITECTURE.md, "What a payload can see".
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { instanceName } from '../../src/common/naming';
import { drainSignal } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import { localSite, SITE_PATHS } from '../../sandbox/local-site';
import { ensureSigningKey, mintIdToken } from '../../sandbox/pool-token';
import { useDevServer, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start } = useDevServer();
const site = localSite();

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'payload-isolation-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(path.join(SITE_PATHS.poolKeysDir, 'ISOLATION'), { force: true });
});

describe('a payload in the glidein container', () => {
  it('cannot read the claim, the pid files or the site key, rewrite the token, or write ~/.ssh/rc', async () => {
    const id = `wf-isolation-${Date.now()}`;
    const token = mintIdToken(ensureSigningKey(SITE_PATHS.poolKeysDir, 'ISOLATION'), {
      kid: 'ISOLATION',
      exp: Math.floor(Date.now() / 1000) + 3600,
    });
    const tokenFile = path.join(dir, 'pool.idtoken');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const glideinDir = `${SITE_PATHS.workDir}/${id}`;
    const execute = `${glideinDir}/condor/execute/dir_1`;
    const rc = path.join(SITE_PATHS.home, '.ssh', 'rc');
    const sshBefore = readdirSync(path.join(SITE_PATHS.home, '.ssh')).sort();

    await withWorker(
      localSiteWith((p) => {
        p.credentials = { idToken: tokenFile };
      }),
      async (w) => {
        const handle = await start(w, id);
        await waitForPhase(handle, 'monitoring');
        const claimText = readFileSync(`${glideinDir}/.claim`, 'utf8');
        const job = (script: string) =>
          site.ssh('worker', [
            SITE_PATHS.apptainer,
            'exec',
            '--cleanenv',
            `instance://${instanceName(id)}`,
            'sh',
            '-c',
            `mkdir -p ${execute} && cd ${execute} && ${script}`,
          ]);

        // The lifecycle's own files are not in the container (where the glidein's directory lies under /tmp, as
        // here, the path a job names is in the instance's own /tmp: empty, and nothing written there reaches it).
        for (const file of ['.claim', 'glidein.pid', 'tunnel.pid', 'glidein.log', 'tunnel.log']) {
          const read = await job(`cat ${glideinDir}/${file}`);
          expect(read.code).not.toBe(0);
        }
        expect((await job(`cat ${SITE_PATHS.siteKey}`)).code).not.toBe(0);
        expect((await job(`ls -A ${glideinDir}`)).stdout.split('\n').filter(Boolean).sort()).toEqual([
          'condor',
          'config',
        ]);
        await job(`echo 'default someone-else' > ${glideinDir}/.claim`);
        expect(readFileSync(`${glideinDir}/.claim`, 'utf8')).toBe(claimText);

        // Nor through the host's processes: the instance has its own PID namespace.
        const escape = await job(
          `for p in /proc/[0-9]*; do cat $p/root${glideinDir}/.claim $p/root${SITE_PATHS.siteKey} 2>/dev/null; ` +
            `echo evil 2>/dev/null > $p/root${rc}; done; true`,
        );
        expect(escape.stdout).not.toContain(claimText.trim());
        expect(escape.stdout).not.toContain('PRIVATE KEY');

        // No home: ~/.ssh/rc, by $HOME or by its path, is never the site user's.
        await job('mkdir -p "$HOME/.ssh" 2>/dev/null; echo evil > "$HOME/.ssh/rc"');
        await job(`echo evil > ${rc}`);
        expect(existsSync(rc)).toBe(false);
        expect(readdirSync(path.join(SITE_PATHS.home, '.ssh')).sort()).toEqual(sshBefore);

        // The credential the daemons read is read-only: a job cannot swap it (it can read it: same uid).
        const tokenOnSite = `${glideinDir}/config/tokens.d/pool.idtoken`;
        const rewrite = await job(`echo forged > ${tokenOnSite}`);
        expect(rewrite.stderr).toMatch(/Read-only file system/);
        expect(readFileSync(tokenOnSite, 'utf8').trim()).toBe(token);

        // The host's environment stays outside.
        expect((await job('echo "[$SSH_CONNECTION]"')).stdout).toBe('[]\n');

        await handle.signal(drainSignal);
        expect((await handle.result()).endReason).toBe('drained');
      },
    );
    expect(await footprint(id)).toEqual(EMPTY);
  });
});

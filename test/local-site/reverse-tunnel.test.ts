/**
 * The tunnel that needs no key on the site: `ssh -R` from the login node into the worker node, authenticated by
 * the worker's key agent forwarded on that one channel. On the local site, end to end through the chain.
 */
import { execFileSync } from 'node:child_process';
import { drainSignal, statusQuery } from '../../src/workflows/messages';
import { localSiteWith } from '../../sandbox/sites';
import { SITE_PATHS, siteProcesses, sshdLog } from '../../sandbox/local-site';
import { SETUP, stepsOf, TEARDOWN, useDevServer, waitForPhase } from '../support/workflow-harness';
import { EMPTY, footprint } from '../../sandbox/site-state';

const { withWorker, start } = useDevServer();

const reverseSite = () =>
  localSiteWith((p) => {
    p.tunnel = { mode: 'reverse', socksPort: 1080, knownHostsFile: SITE_PATHS.siteKnownHosts };
  });

describe('LaunchGlidein with a reverse tunnel', () => {
  it('registers through ssh -R from the login node, no key stored on the site, and drains to nothing', async () => {
    const id = `wf-reverse-${Date.now()}`;
    const workerLogBefore = sshdLog('worker').length;
    await withWorker(reverseSite(), async (w) => {
      const handle = await start(w, id);
      const status = await waitForPhase(handle, 'monitoring');
      expect(stepsOf(status)).toEqual(SETUP);

      const tunnels = siteProcesses().filter((p) => p.argv[0] === 'ssh' && p.cmdline.includes(' -R 127.0.0.1:1080 '));
      expect(tunnels).toHaveLength(1);
      expect(tunnels[0].argv).not.toContain('-i'); // no identity file: the forwarded agent authenticated it
      expect((await footprint(id)).ads).toHaveLength(1);
      // The worker node's sshd accepted the operator's key (offered by the forwarded agent), not the site's.
      const fingerprint = (pub: string) => execFileSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }).split(' ')[1];
      const accepted = sshdLog('worker').slice(workerLogBefore);
      expect(accepted).toContain(`Accepted publickey for glidein from 127.0.0.1`);
      expect(accepted).toContain(fingerprint(`${SITE_PATHS.operatorKey}.pub`));
      expect(accepted).not.toContain(fingerprint(`${SITE_PATHS.siteKey}.pub`));

      await handle.signal(drainSignal);
      const result = await handle.result();
      expect(result.endReason).toBe('drained');
      expect(stepsOf(result).slice(-TEARDOWN.length)).toEqual(TEARDOWN);
      expect((await handle.query(statusQuery)).held).toEqual([]);
    });
    expect(await footprint(id)).toEqual(EMPTY);
  });
});

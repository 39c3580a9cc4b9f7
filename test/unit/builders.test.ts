import * as path from 'node:path';
import { SiteRegistry } from '../../src/site/load';
import type { SiteProfile } from '../../src/site/profile';
import {
  adaptersFor,
  condorConfig,
  parseAutoformat,
  parseChainReport,
  renderProxychainsConf,
  type Retirement,
} from '../../src/site/adapters';
import { pathsFor, type GlideinPaths } from '../../src/site/paths';
import { parseInspect } from '../../src/site/scripts';
import { findHostKeys, fingerprint, hostKeyAlgorithms } from '../../src/remote/known-hosts';
import { createHmac } from 'node:crypto';

// The builders as the site adapters give them for a profile.
const tunnelArgv = (p: SiteProfile, node?: string) =>
  adaptersFor(p).tunnel.argv(p.tunnel.socksPort, node, pathsFor(p, 'g'));
const instanceStartArgv = (p: SiteProfile, instance: string, glideinId: string) =>
  adaptersFor(p).instanceStartArgv(instance, pathsFor(p, glideinId));
const glideinEnv = (p: SiteProfile, id: string, paths: GlideinPaths, r?: Retirement) =>
  adaptersFor(p).condor.startEnv(id, paths, r);
const glideinArgv = (p: SiteProfile, instance: string) => adaptersFor(p).condor.startArgv(instance);
const condorStatusArgv = (p: SiteProfile, instance: string, id: string) =>
  adaptersFor(p).condor.statusArgv(instance, id);

let local: SiteProfile;
beforeAll(async () => {
  local = await new SiteRegistry(path.join(__dirname, '..', '..', 'sites')).get('local');
});

describe('command builders', () => {
  it('opens the tunnel with ssh -N -D, strict host keys, batch mode and the site key', () => {
    const argv = tunnelArgv(local);
    expect(argv.slice(0, 5)).toEqual(['ssh', '-F', '/dev/null', '-N', '-D']);
    expect(argv).toContain('127.0.0.1:1080');
    expect(argv).toEqual(
      expect.arrayContaining([
        'ExitOnForwardFailure=yes',
        'BatchMode=yes',
        'StrictHostKeyChecking=yes',
        'ServerAliveInterval=15',
      ]),
    );
    expect(argv.slice(-2)).toEqual(['--', '127.0.0.1']);
    expect(argv[argv.indexOf('-i') + 1]).toBe('/tmp/glidein-local-site/site/home/.ssh/id_ed25519');
  });

  it('opens a reverse tunnel from the login node into the worker node, without a key on the site', () => {
    const reverse = {
      ...local,
      tunnel: {
        mode: 'reverse' as const,
        socksPort: 1080,
        knownHostsFile: '/site/known_hosts',
        serverAliveInterval: '15s',
        startsInFlight: 3,
      },
    };
    const argv = tunnelArgv(reverse);
    expect(argv).toEqual(
      expect.arrayContaining([
        '-R',
        '127.0.0.1:1080',
        'ExitOnForwardFailure=yes',
        'StrictHostKeyChecking=yes',
        'UserKnownHostsFile=/site/known_hosts',
        'ForwardAgent=no',
        'IdentityFile=none',
      ]),
    );
    expect(argv).not.toContain('-i');
    expect(argv.slice(-4)).toEqual(['-l', 'glidein', '--', '127.0.0.2']);
    expect(argv[argv.indexOf('-p') + 1]).toBe('2202');
  });

  it('starts the instance contained, binding only /cvmfs, the proxychains library, config/ (ro), condor/', () => {
    const argv = instanceStartArgv({ ...local, workDir: '/w' }, 'glidein-x', 'x');
    expect(argv.slice(0, 3)).toEqual([local.container.executable, 'instance', 'start']);
    // No host /tmp, $HOME, working directory or /proc, and no host environment.
    expect(argv).toEqual(expect.arrayContaining(['--contain', '--no-home', '--pid', '--ipc', '--cleanenv']));
    expect(argv[argv.indexOf('--workdir') + 1]).toBe('/w/x/scratch');
    const binds = argv.flatMap((a, i) => (argv[i - 1] === '--bind' ? [a] : []));
    expect(binds).toEqual([
      `${local.cvmfs.cvmfsexecDir}/dist/cvmfs:/cvmfs`,
      '/usr/lib/x86_64-linux-gnu/libproxychains.so.4:/usr/lib/x86_64-linux-gnu/libproxychains.so.4:ro',
      '/w/x/config:/w/x/config:ro',
      '/w/x/condor:/w/x/condor:rw',
      ...local.container.binds,
    ]);
    // The glidein's directory itself (the claim, pid files, logs, the relay's secret) is never a bind's source.
    expect(binds.some((b) => b.split(':')[0] === '/w/x')).toBe(false);
    expect(argv.slice(-2)).toEqual([local.container.image, 'glidein-x']);
  });

  it('keeps what the daemons read in config/ and what only the lifecycle reads beside it', () => {
    const paths = pathsFor({ ...local, workDir: '/w' }, 'x');
    for (const inside of [paths.proxychainsConf, paths.idToken, paths.x509Proxy, paths.tokensDir])
      expect(inside.startsWith('/w/x/config/')).toBe(true);
    for (const outside of [paths.relaySecret, paths.relayProgram, paths.glideinPid, paths.tunnelPid, paths.glideinLog])
      expect(outside.startsWith('/w/x/config/') || outside.startsWith('/w/x/condor/')).toBe(false);
  });

  it('configures the glidein for an outbound-only node and pre-loads proxychains', () => {
    const paths = pathsFor(local, 'g1');
    const config = condorConfig(local, 'g1', paths);
    expect(config).toMatchObject({
      COLLECTOR_HOST: '127.0.0.4:9618',
      CCB_ADDRESS: '$(COLLECTOR_HOST)',
      UPDATE_COLLECTOR_WITH_TCP: 'True',
      WANT_UDP_COMMAND_SOCKET: 'False',
      GlideinLaunchId: '"g1"',
    });
    expect(config.STARTD_ATTRS).toContain('GlideinLaunchId');
    const env = glideinEnv(local, 'g1', paths);
    expect(env).toMatchObject({
      APPTAINERENV_LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libproxychains.so.4',
      APPTAINERENV_PROXYCHAINS_CONF_FILE: paths.proxychainsConf,
      APPTAINERENV__CONDOR_COLLECTOR_HOST: '127.0.0.4:9618',
    });
    expect(glideinArgv(local, 'glidein-g1')).toEqual([
      local.container.executable,
      'exec',
      '--cleanenv',
      'instance://glidein-g1',
      ...local.glidein.startCommand,
    ]);
  });

  it('tells HTCondor when to retire and when to be gone, like a GlideinWMS pilot', () => {
    const config = condorConfig(local, 'g1', pathsFor(local, 'g1'), { retireAt: 1000, dieAt: 1060 });
    expect(config).toMatchObject({
      GLIDEIN_ToRetire: '1000',
      GLIDEIN_ToDie: '1060',
      START: '($(START:True)) && (time() < GLIDEIN_ToRetire)',
      DAEMON_SHUTDOWN: 'time() > GLIDEIN_ToDie',
    });
    expect(config.STARTD_ATTRS).toContain('GLIDEIN_ToRetire GLIDEIN_ToDie');
    expect(condorConfig(local, 'g1', pathsFor(local, 'g1')).START).toBeUndefined();
  });

  it('asks the collector for exactly this glidein', () => {
    const argv = condorStatusArgv(local, 'glidein-g1', 'g1');
    expect(argv).toEqual(
      expect.arrayContaining([
        '-pool',
        '127.0.0.4:9618',
        '-constraint',
        'GlideinLaunchId == "g1"',
        '-af',
        'Name',
        'State',
        'Activity',
      ]),
    );
  });
});

describe('proxychains', () => {
  it('renders a strict chain: SOCKS tunnel, then KIT by numeric address', () => {
    const conf = renderProxychainsConf(local, '127.0.0.3', 'g1');
    expect(conf).toMatch(/^strict_chain$/m);
    expect(conf).toMatch(/\[ProxyList\]\nsocks5 127\.0\.0\.1 1080\nhttp 127\.0\.0\.3 80\n/);
    expect(conf).toMatch(/^localnet 127\.0\.0\.1\/255\.255\.255\.255$/m);
    expect(() => renderProxychainsConf(local, 'proxy.kit.edu', 'g1')).toThrow('numeric IPv4');
  });

  it.each([
    ['[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:80  ...  127.0.0.4:9618  ...  OK', { ok: true }],
    ['[proxychains] Strict chain  ...  127.0.0.1:1080 <--socket error or timeout!', { ok: false, failedHop: 'tunnel' }],
    [
      '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:80 <--socket error or timeout!',
      { ok: false, failedHop: 'kit' },
    ],
    [
      '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  127.0.0.3:80  ...  127.0.0.4:9618 <--denied',
      { ok: false, failedHop: 'target' },
    ],
  ])('reads which hop failed from %s', (line, expected) => {
    expect(parseChainReport(`[proxychains] config file found: x\n${line}\n`)).toMatchObject(expected);
  });

  it('reports no chain when proxychains said nothing (the preload did not happen)', () => {
    expect(parseChainReport('bash: connect: Connection refused')).toEqual({ ok: false });
  });
});

describe('parsers', () => {
  it('reads condor_status -af output', () => {
    expect(parseAutoformat('slot1@g1@host Unclaimed Idle\n')).toEqual([
      { name: 'slot1@g1@host', state: 'Unclaimed', activity: 'Idle' },
    ]);
    expect(parseAutoformat('')).toEqual([]);
  });

  it('reads process and port inspection, telling a reused pid from ours', () => {
    const snap = parseInspect(
      [
        'proc /w/tunnel.pid 100 555 555 ssh -N -D 127.0.0.1:1080',
        'proc /w/glidein.pid 200 777 999 other',
        'proc /w/none.pid - - - -',
        'listen 0438',
        'listen 0050',
      ].join('\n'),
    );
    expect(snap.processes.get('/w/tunnel.pid')).toMatchObject({
      alive: true,
      recorded: { pid: 100, startTime: '555' },
    });
    expect(snap.processes.get('/w/glidein.pid')).toMatchObject({ alive: false });
    expect(snap.processes.get('/w/none.pid')).toMatchObject({ alive: false, recorded: undefined });
    expect([...snap.listening]).toEqual([1080, 80]);
  });
});

describe('known_hosts', () => {
  const blob = Buffer.from('000000077373682d7273610000000301000100000081', 'hex');
  const b64 = blob.toString('base64');

  it('finds plain, bracketed and hashed entries and honours @revoked', () => {
    const salt = Buffer.from('0123456789abcdef0123');
    const hmac = createHmac('sha1', salt).update('[10.0.0.1]:2222').digest('base64');
    const hashed = `|1|${salt.toString('base64')}|${hmac}`;
    const text = [
      `login.example ssh-rsa ${b64}`,
      `[login.example]:2201 ssh-ed25519 ${b64}`,
      `${hashed} ssh-ed25519 ${b64}`,
      `@revoked bad.example ssh-rsa ${b64}`,
    ].join('\n');
    expect(findHostKeys(text, 'login.example', 22).keys.map((k) => k.type)).toEqual(['ssh-rsa']);
    expect(findHostKeys(text, 'login.example', 2201).keys.map((k) => k.type)).toEqual(['ssh-ed25519']);
    expect(findHostKeys(text, '10.0.0.1', 2222).keys).toHaveLength(1);
    expect(findHostKeys(text, 'bad.example', 22)).toMatchObject({ keys: [], revoked: [{ type: 'ssh-rsa' }] });
    expect(findHostKeys(text, 'unknown.example', 22).keys).toEqual([]);
  });

  it('offers only the algorithms of known keys, and fingerprints like ssh-keygen', () => {
    expect(hostKeyAlgorithms([{ type: 'ssh-rsa', blob }])).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(fingerprint(blob)).toMatch(/^SHA256:[A-Za-z0-9+/]+$/);
  });
});

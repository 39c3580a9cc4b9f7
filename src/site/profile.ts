/**
 * The site profile: everything the worker needs to know about one site. Paths and names only; key material
 * never appears here (identityFile is a path, resolved by the worker or by ssh on the site).
 */
import { z } from 'zod';
import {
  absolutePath,
  argWord,
  duration,
  hostname,
  port,
  repositoryName,
  siteName,
  username,
} from '../common/validation';

const DEFAULT_LIBRARY = '/usr/lib/x86_64-linux-gnu/libproxychains.so.4';

const endpoint = z.strictObject({ host: hostname, port });

/** A plain-HTTP URL as an HTTP proxy is asked for it (no credentials, no spaces, no fragments). */
const httpUrl = z
  .string()
  .max(512, 'expected at most 512 characters')
  .regex(/^http:\/\/[A-Za-z0-9.-]{1,253}(?::\d{1,5})?\/[A-Za-z0-9._~/?=&%+,;:-]*$/, 'expected an http:// URL');

/** CVMFS_HTTP_PROXY: proxy groups separated by ";", load-balanced members by "|", each http://host:port or DIRECT. */
const cvmfsProxyMember = 'http:\\/\\/[A-Za-z0-9.-]{1,253}:\\d{1,5}|DIRECT';
const cvmfsHttpProxy = z
  .string()
  .max(1024, 'expected at most 1024 characters')
  .regex(
    new RegExp(`^(?:${cvmfsProxyMember})(?:[;|](?:${cvmfsProxyMember}))*$`),
    'expected http://host:port or DIRECT, in groups separated by ";" and "|"',
  );

/**
 * A destination verifyOutbound proves through the chain: a TCP connection, or with `http` an HTTP GET of that URL
 * sent to host:port (a Frontier squid asked for a Frontier URL, as CMS jobs ask it), answered 2xx or 3xx.
 */
const outboundCheckEntry = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/, 'expected a short name (letters, digits, _ . -)'),
  host: hostname,
  port,
  http: httpUrl.optional(),
});

const login = z.strictObject({
  host: hostname,
  port: port.default(22),
  user: username,
  /** Private key on the worker's machine. */
  identityFile: absolutePath,
  /** known_hosts on the worker's machine; unknown or changed host keys are refused. */
  knownHostsFile: absolutePath,
});

/** Slurm partition, account, QOS and reservation names. */
const slurmName = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/, 'expected a Slurm name (letters, digits, _ . -)');

const workerNode = z.discriminatedUnion('via', [
  /** Commands run on the login node itself. */
  z.strictObject({ via: z.literal('login') }),
  /** Through the login node as an SSH jump host to the worker node's sshd. */
  z.strictObject({ via: z.literal('jump'), host: hostname, port: port.default(22), user: username.optional() }),
  /**
   * A Slurm holder job (sbatch from the login node) hands out the worker node. `access: ssh`: commands reach it by
   * ssh through the login node as a jump host (pam_slurm_adopt puts them in the job). `access: srun`: as
   * `srun --jobid --overlap` steps from the login node, no ssh into the node (JSC's psslurm); the holder job runs
   * what must outlive a step.
   */
  z.strictObject({
    via: z.literal('slurm'),
    access: z.enum(['ssh', 'srun']).default('ssh'),
    partition: slurmName,
    account: slurmName.optional(),
    qos: slurmName.optional(),
    reservation: slurmName.optional(),
    /** The holder job's walltime; the glidein is drained before it ends. */
    timeLimit: duration({ min: 60_000, max: 30 * 86_400_000 }),
    /** How long the job may wait in the queue before the launch gives up. */
    queueTimeout: duration({ min: 1_000 }).default('1h'),
    /**
     * Where nodes are shared between jobs: the holder job's share of a node (sbatch --mem, --cpus-per-task), so
     * that several glideins' jobs fit on one node. Unset, Slurm's defaults apply (at JSC, a job takes its node whole).
     */
    memory: z
      .string()
      .regex(/^[1-9][0-9]{0,6}[KMGT]?$/, 'expected a Slurm memory size such as 512M or 4G')
      .optional(),
    cpusPerTask: z.number().int().min(1).max(1024).optional(),
    port: port.default(22),
    user: username.optional(),
  }),
]);

/**
 * Tunnel connections this worker process sets up at once towards one sshd (the login node's for a forward
 * tunnel, the worker node's for a reverse one), held from the spawn until the tunnel is up. sshd drops
 * unauthenticated connections beyond its MaxStartups (10 by default; sites set less), so many glideins starting
 * together queue here instead of being refused there.
 */
const startsInFlight = z.number().int().min(1).max(10).default(3);

/**
 * The SOCKS port on the worker node: one (`socksPort`: one glidein per node), or a range (`socksPorts: 1080-1179`)
 * from which each glidein leases its own under the node's lock, so that many share a node or a login node.
 */
const socksPorts = {
  socksPort: port.optional(),
  socksPorts: z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/, 'expected a port range such as 1080-1179')
    .refine((r) => {
      const [first, last] = r.split('-').map(Number);
      return first >= 1024 && last <= 65535 && first <= last && last - first < 1000;
    }, 'expected first-last with 1024 <= first <= last <= 65535, at most 1000 ports')
    .optional(),
};

/** `socksPort` is always the first (or only) port, for every reader; portRange() gives the whole range. */
function withPortRange<T extends { socksPort?: number; socksPorts?: string }>(t: T, ctx: z.RefinementCtx) {
  if ((t.socksPort === undefined) === (t.socksPorts === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'expected either socksPort or socksPorts', path: ['socksPort'] });
    return z.NEVER;
  }
  return { ...t, socksPort: t.socksPort ?? Number(t.socksPorts!.split('-')[0]) };
}

export function portCount(t: { socksPort: number; socksPorts?: string }): number {
  const { first, last } = portRange(t);
  return last - first + 1;
}

/** The SOCKS ports a glidein may lease on its worker node: one port (first = last) or the profile's range. */
export function portRange(t: { socksPort: number; socksPorts?: string }): { first: number; last: number } {
  if (!t.socksPorts) return { first: t.socksPort, last: t.socksPort };
  const [first, last] = t.socksPorts.split('-').map(Number);
  return { first, last };
}

const tunnelModes = z.discriminatedUnion('mode', [
  /** The seed's tunnel: `ssh -D` started on the worker node towards the login node, with a key stored on the site. */
  z.strictObject({
    mode: z.literal('forward'),
    ...socksPorts,
    /** The login node as the worker node reaches it. */
    loginHost: hostname,
    loginPort: port.default(22),
    /** Paths on the site. */
    identityFile: absolutePath,
    knownHostsFile: absolutePath,
    serverAliveInterval: duration({ min: 1_000, max: 600_000 }).default('15s'),
    startsInFlight,
  }),
  /**
   * No key on the site: `ssh -R 127.0.0.1:<port>` started on the login node into the worker node (a reverse
   * dynamic forward, OpenSSH >= 7.6), authenticated by our key agent forwarded on that one SSH channel. The SOCKS
   * port appears on the worker node; connections leave from the login node.
   */
  z.strictObject({
    mode: z.literal('reverse'),
    ...socksPorts,
    /** On the login node: the worker nodes' host keys. */
    knownHostsFile: absolutePath,
    serverAliveInterval: duration({ min: 1_000, max: 600_000 }).default('15s'),
    startsInFlight,
  }),
  /**
   * No key on the site and no sshd on the worker node: an authenticated SOCKS5 relay (src/site/scripts/relay.ts)
   * started on the login node, listening on the login node's cluster address, connecting only to the KIT proxy.
   * proxychains on the worker node authenticates with the secret the relay keeps in the glidein's directory
   * (mode 600): the work directory must be one file system for the login and worker nodes.
   */
  z.strictObject({
    mode: z.literal('relay'),
    ...socksPorts,
    /**
     * The login node's IPv4 address as worker nodes reach it (proxychains wants it numeric); the relay listens there.
     */
    listenAddress: z.ipv4({ message: "expected the login node's IPv4 address as worker nodes reach it" }),
    /** Python 3 on the login node (3.6 or later). */
    python: z.union([absolutePath, z.literal('python3')]).default('python3'),
    startsInFlight,
  }),
]);

const tunnel = tunnelModes.transform(withPortRange);

const knob = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.]{0,63}$/, 'expected an HTCondor configuration knob name');

const glidein = z.strictObject({
  startCommand: z.array(argWord).min(1, 'expected the glidein start command as a non-empty argv list'),
  statusCommand: z.array(argWord).min(1, 'expected the condor_status command as a non-empty argv list'),
  lifetime: duration({ min: 10_000 }).default('24h'),
  registrationTimeout: duration({ min: 1_000 }).default('10m'),
  drainGrace: duration().default('10m'),
  stopGrace: duration().default('30s'),
  /** After a clean teardown the glidein's directory moves to <workDir>/.done/ and is removed this long after. */
  keepLogs: duration({ min: 0, max: 365 * 86_400_000 }).default('7d'),
  /** Extra HTCondor configuration, passed as _CONDOR_<knob> in the glidein's environment. */
  config: z.record(knob, argWord).default({}),
});

const count = (min: number, max: number) =>
  z.number().int('expected a whole number').min(min, `expected at least ${min}`).max(max, `expected at most ${max}`);

const FLEET_DEFAULTS = {
  maxGlideins: 1,
  maxStarting: 5,
  startsPerMinute: 10,
  maxFailedStarts: 3,
  failureWindow: '30m',
  probeAfter: '5m',
  maxProbeDelay: '1h',
  reconcileEvery: '30s',
  idleTime: '10m',
  historyEvents: 2_000,
};

/** What a GlideinFleet may do at this site: its share, its pace, and when failures stop it starting. */
const fleet = z.strictObject({
  /**
   * Most glideins running or starting at once (default 1: a site says how many it takes, and has the ports for them).
   */
  maxGlideins: count(1, 10_000).default(FLEET_DEFAULTS.maxGlideins),
  /** Most glideins in setup at once. */
  maxStarting: count(1, 1_000).default(FLEET_DEFAULTS.maxStarting),
  /** Starts in any rolling minute. */
  startsPerMinute: count(1, 600).default(FLEET_DEFAULTS.startsPerMinute),
  /** This many failed starts within failureWindow stop the fleet starting; then it probes one start at a time. */
  maxFailedStarts: count(1, 1_000).default(FLEET_DEFAULTS.maxFailedStarts),
  failureWindow: duration({ min: 1_000, max: 7 * 86_400_000 }).default(FLEET_DEFAULTS.failureWindow),
  /** The first probe this long after the last failure, each next one twice as long, at most maxProbeDelay. */
  probeAfter: duration({ min: 1_000, max: 86_400_000 }).default(FLEET_DEFAULTS.probeAfter),
  maxProbeDelay: duration({ min: 1_000, max: 7 * 86_400_000 }).default(FLEET_DEFAULTS.maxProbeDelay),
  /** How often the fleet looks at its glideins and acts. */
  reconcileEvery: duration({ min: 1_000, max: 3_600_000 }).default(FLEET_DEFAULTS.reconcileEvery),
  /**
   * A running glidein without a job this long counts as idle: when the demand falls, idle ones drain (never busy ones).
   */
  idleTime: duration({ min: 0, max: 7 * 86_400_000 }).default(FLEET_DEFAULTS.idleTime),
  /** A fleet run continues-as-new at this many events, after at least one round (no value can make it loop). */
  historyEvents: count(50, 50_000).default(FLEET_DEFAULTS.historyEvents),
  /**
   * How many glideins the pool wants here: a command run on the login node each round that prints a whole number
   * on its first line (for example a site script around `condor_q -global` counting idle jobs that match the
   * site). The fleet's count is then at most that; without it the count is static. A probe that fails or prints
   * anything else leaves the count as it was: a broken probe never drains a fleet.
   */
  demand: z
    .strictObject({ command: z.array(argWord).min(1, 'expected the demand probe as a non-empty argv list') })
    .optional(),
});

export const siteProfileSchema = z
  .strictObject({
    name: siteName,
    description: argWord.pipe(z.string().max(500)).optional(),
    login,
    workerNode,
    tunnel,
    kitProxy: endpoint,
    /** Where verify-outbound connects through the chain; defaults to the collector. */
    outboundCheck: endpoint.optional(),
    /** Further destinations verifyOutbound proves through the chain, after the collector (Frontier, others). */
    outboundChecks: z
      .array(outboundCheckEntry)
      .max(16, 'expected at most 16 checks')
      .refine((a) => new Set(a.map((c) => c.name)).size === a.length, 'expected distinct names')
      .optional(),
    collector: endpoint,
    /**
     * The pool's credential for the glidein, by path on the worker's machine (never on the site at rest): an
     * HTCondor IDTOKEN and/or an X.509 proxy. Staged into the glidein's directory (mode 600) before it starts,
     * renewed there while it runs when this file changes, removed at teardown.
     */
    credentials: z
      .strictObject({ idToken: absolutePath.optional(), x509Proxy: absolutePath.optional() })
      .refine((c) => c.idToken !== undefined || c.x509Proxy !== undefined, 'expected idToken, x509Proxy or both')
      .optional(),
    cvmfs: z.strictObject({
      cvmfsexecDir: absolutePath,
      repositories: z.array(repositoryName).min(1, 'expected at least one repository'),
      /**
       * CVMFS_HTTP_PROXY for cvmfsexec, written into its dist/etc/cvmfs/default.local before a mount (without it
       * cvmfs tries Web Proxy Auto-Discovery, which cannot work from a JSC compute node). The mount runs with
       * proxychains pre-loaded, so these proxies are reached through the same chain as everything else.
       */
      httpProxy: cvmfsHttpProxy.optional(),
    }),
    container: z.strictObject({
      runtime: z.enum(['apptainer', 'singularity']),
      executable: z.union([absolutePath, z.enum(['apptainer', 'singularity'])]).optional(),
      image: absolutePath,
      binds: z
        .array(
          z
            .string()
            .max(2048)
            .regex(
              /^\/[A-Za-z0-9._+@%=,/-]*(?::\/[A-Za-z0-9._+@%=,/-]*(?::(?:ro|rw))?)?$/,
              'expected src[:dst[:ro|rw]] with absolute paths',
            )
            .refine((b) => !b.split(/[:/]/).includes('..'), 'expected paths without ".." segments'),
        )
        .default([]),
    }),
    proxychains: z
      .strictObject({
        /** The library as seen inside the container; it is bind-mounted there from the same path on the node. */
        library: absolutePath.default(DEFAULT_LIBRARY),
        executable: z.union([absolutePath, z.literal('proxychains4')]).default('proxychains4'),
        /** Destinations that bypass the chain (the glidein's own daemons talk over loopback). */
        localnet: z
          .array(
            z
              .string()
              .regex(
                /^\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\/\d{1,3}(?:\.\d{1,3}){3}$/,
                'expected address[:port]/netmask, e.g. 127.0.0.0/255.0.0.0',
              ),
          )
          .default(['127.0.0.0/255.0.0.0']),
      })
      .default({ library: DEFAULT_LIBRARY, executable: 'proxychains4', localnet: ['127.0.0.0/255.0.0.0'] }),
    glidein,
    monitor: z
      .strictObject({
        /** How often the glidein, the tunnel and the registration are checked. */
        interval: duration({ min: 1_000, max: 3_600_000 }).default('60s'),
        /** How often the monitor reports back to the workflow (status query, continue-as-new point). */
        reportEvery: duration({ min: 1_000, max: 86_400_000 }).default('10m'),
        /**
         * Continue-as-new once a run's history reaches this many events (at the end of a monitor round, and never
         * before this run's first round: no value can make it loop). Worker-side, so no workflow input reaches it.
         */
        historyEvents: z
          .number()
          .int('expected a whole number')
          .min(50, 'expected at least 50')
          .max(50_000, 'expected at most 50000')
          .default(5_000),
      })
      .default({ interval: '60s', reportEvery: '10m', historyEvents: 5_000 }),
    /** Per-glidein state lives in <workDir>/<glideinId>/ on the site. */
    workDir: absolutePath,
    fleet: fleet.default(FLEET_DEFAULTS),
  })
  .refine((p) => !(p.tunnel.mode === 'forward' && p.workerNode.via === 'login'), {
    // ssh -D binds 127.0.0.1 without authentication: on a login node every co-tenant could use it as their own way out.
    message:
      'expected workerNode.via "jump" or "slurm" for a forward tunnel: on the login node itself its SOCKS ' +
      'port would be open to every user of that shared node (use tunnel.mode "relay", which authenticates, ' +
      'to run glideins from the login node)',
    path: ['tunnel', 'mode'],
  })
  .refine((p) => !(p.tunnel.mode === 'reverse' && p.workerNode.via === 'login'), {
    message:
      'expected workerNode.via "jump" or "slurm" for a reverse tunnel (it runs from the login node into ' +
      'the worker node)',
    path: ['tunnel', 'mode'],
  })
  .superRefine((p, ctx) => {
    // The pool's payloads run in the container as the glidein's own user: a bind that reaches the work directory
    // would hand them every glidein's credential, claim and relay secret on that node.
    p.container.binds.forEach((bind, i) => {
      const source = bind.split(':')[0].replace(/\/+$/, '') || '/';
      if (within(source, p.workDir) || within(p.workDir, source))
        ctx.addIssue({
          code: 'custom',
          message:
            `expected no bind of the work directory ${p.workDir}, inside it or above it: the pool's jobs ` +
            `would read every glidein's credential there (the glidein binds what it needs itself)`,
          path: ['container', 'binds', i],
        });
    });
  })
  .refine(
    // Glideins on one fixed node share its ports; a Slurm node is usually a glidein's own.
    (p) => {
      return p.workerNode.via === 'slurm' || p.fleet.maxGlideins <= portCount(p.tunnel);
    },
    {
      message:
        'expected at most as many glideins as SOCKS ports on the worker node (tunnel.socksPorts); leave ' +
        'some spare for glideins that are still tearing down',
      path: ['fleet', 'maxGlideins'],
    },
  );

/** Whether path `inner` is `outer` or inside it (both absolute, without `..`). */
function within(inner: string, outer: string): boolean {
  const o = outer.replace(/\/+$/, '');
  const i = inner.replace(/\/+$/, '');
  return o === '' || i === o || i.startsWith(`${o}/`);
}

export type SiteProfile = z.output<typeof siteProfileSchema>;

/**
 * HTCondor: how a glidein is configured for an outbound-only node and started in its container, and how its
 * registration is checked (`condor_status … -af`, run inside the glidein's container through the same pre-loaded
 * chain, so it works where the glidein works).
 */
import { FailureType } from '../../common/failure-types';
import type { Registration } from '../../common/types';
import { lastLines, type Executor, type RunOptions } from '../../remote/executor';
import { firstPermanent, type PermanentCause, type PermanentRule } from '../failure-rules';
import type { GlideinPaths } from '../paths';
import type { SiteProfile } from '../profile';
import type { ContainerRuntime } from '../container';
import type { ProxyChain } from '../chain';

/** When the glidein stops taking jobs and when it must be gone, in epoch seconds. */
export interface Retirement {
  retireAt: number;
  dieAt: number;
}

/** How long a started glidein must stay up, watched on the site in the spawn's round trip, to count as started. */
export const GLIDEIN_SETTLE_MS = 300;

export type RegistrationCheck = { registered: Registration } | { registered: undefined; error?: string };

/** Where a registration query runs: the worker node, in the glidein's instance, through its chain. */
export interface QueryContext {
  node: Executor;
  instance: string;
  confFile: string;
  opts: RunOptions;
}

export interface Condor {
  /** The glidein's start command in its instance, and the environment that configures and pre-loads it. */
  startArgv(instance: string): string[];
  startEnv(glideinId: string, paths: GlideinPaths, retirement?: Retirement): Record<string, string>;
  /** `condor_status … -constraint 'GlideinLaunchId == "<id>"' -af Name State Activity`. */
  statusArgv(instance: string, glideinId: string): string[];
  /** Every glidein we launched that reports to this collector, by its launch id. */
  collectorStatusArgv(instance: string): string[];
  /** The environment a status query runs with (pre-loaded, quiet). */
  statusEnv(confFile: string): Record<string, string>;
  /** Is this glidein in the collector? A failed query is an answer (`error`), not a throw. */
  queryRegistration(q: QueryContext, glideinId: string): Promise<RegistrationCheck>;
  /** Our glideins in the collector, by launch id; throws when condor_status fails. */
  queryCollector(q: QueryContext): Promise<Map<string, Registration>>;
  /** Whether what the glidein printed as it exited right after starting says retrying cannot help. */
  readonly permanentCause: PermanentCause;
}

/** What the glidein's start command says, in its instance, when retrying cannot help. */
export const GLIDEIN_START_PERMANENT: readonly PermanentRule[] = [
  {
    pattern: /executable file not found|no such file or directory|not found in \$PATH|exec: .*: not found/i,
    type: FailureType.GlideinStartFailed,
    fix: 'check glidein.startCommand',
  },
];

/**
 * HTCondor configuration for an outbound-only node, as _CONDOR_ variables, plus our identifying attributes.
 * With a retirement the glidein also retires and ends by itself, like a GlideinWMS pilot, even if nothing
 * orchestrates it any more: no new jobs after GLIDEIN_ToRetire, every daemon down after GLIDEIN_ToDie.
 */
export function condorConfig(
  profile: SiteProfile,
  glideinId: string,
  paths: GlideinPaths,
  retirement?: Retirement,
): Record<string, string> {
  const lifetime: Record<string, string> = retirement
    ? {
        GLIDEIN_ToRetire: String(retirement.retireAt),
        GLIDEIN_ToDie: String(retirement.dieAt),
        START: '($(START:True)) && (time() < GLIDEIN_ToRetire)',
        DAEMON_SHUTDOWN: 'time() > GLIDEIN_ToDie',
      }
    : {};
  // The pool admits the startd only with a credential: the staged IDTOKEN (and/or X.509 proxy) authenticates it.
  const creds = profile.credentials;
  const methods = [...(creds?.idToken ? ['IDTOKENS'] : []), ...(creds?.x509Proxy ? ['SSL'] : [])];
  const credentials: Record<string, string> = creds
    ? {
        ...(creds.idToken ? { SEC_TOKEN_DIRECTORY: paths.tokensDir } : {}),
        ...(creds.x509Proxy ? { X509_USER_PROXY: paths.x509Proxy } : {}),
        SEC_CLIENT_AUTHENTICATION_METHODS: methods.join(', '),
        SEC_DEFAULT_AUTHENTICATION: 'REQUIRED',
      }
    : {};
  return {
    COLLECTOR_HOST: `${profile.collector.host}:${profile.collector.port}`,
    // The collector brokers connections to us (CCB): nothing can connect into a JSC worker node.
    CCB_ADDRESS: '$(COLLECTOR_HOST)',
    // Updates over TCP, and no UDP socket: proxychains carries TCP only.
    UPDATE_COLLECTOR_WITH_TCP: 'True',
    WANT_UDP_COMMAND_SOCKET: 'False',
    LOCAL_DIR: paths.condorLocal,
    GLIDEIN_NAME: glideinId,
    GlideinLaunchId: `"${glideinId}"`,
    GlideinSite: `"${profile.name}"`,
    STARTD_ATTRS: `$(STARTD_ATTRS) GlideinLaunchId GlideinSite${retirement ? ' GLIDEIN_ToRetire GLIDEIN_ToDie' : ''}`,
    ...lifetime,
    ...credentials,
    ...profile.glidein.config,
  };
}

/** `-af Name State Activity`: one ad per line, values separated by spaces. */
export function parseAutoformat(stdout: string): Registration[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('[proxychains]'))
    .map((l) => {
      const [name, state = 'undefined', activity = 'undefined'] = l.split(/\s+/);
      return { name, state, activity };
    });
}

/** `-af GlideinLaunchId Name State Activity`: the ads by launch id (ads without one are not ours). */
export function parseLaunchedAds(stdout: string): Map<string, Registration> {
  const ads = new Map<string, Registration>();
  for (const line of stdout.split('\n')) {
    const [id, name, state = 'undefined', activity = 'undefined'] = line.trim().split(/\s+/);
    if (!id || !name || id === 'undefined' || id.startsWith('[proxychains]')) continue;
    if (!ads.has(id)) ads.set(id, { name, state, activity });
  }
  return ads;
}

export function condorFor(profile: SiteProfile, container: ContainerRuntime, chain: ProxyChain): Condor {
  const collector = `${profile.collector.host}:${profile.collector.port}`;
  const status = (instance: string, constraint: string, attributes: string[]) =>
    container.execArgv(instance, [
      ...profile.glidein.statusCommand,
      '-pool',
      collector,
      '-constraint',
      constraint,
      '-af',
      ...attributes,
    ]);
  const query = (q: QueryContext, argv: string[]) =>
    q.node.run(argv, { ...q.opts, env: chain.preloadEnv(q.confFile, true), timeoutMs: 30_000 });
  const condor: Condor = {
    permanentCause: (output, attempt) => firstPermanent(GLIDEIN_START_PERMANENT, output, attempt),
    startArgv: (instance) => container.execArgv(instance, profile.glidein.startCommand),
    startEnv(glideinId, paths, retirement) {
      const knobs = condorConfig(profile, glideinId, paths, retirement);
      return {
        ...chain.preloadEnv(paths.proxychainsConf, true),
        ...container.env(Object.fromEntries(Object.entries(knobs).map(([k, v]) => [`_CONDOR_${k}`, v]))),
      };
    },
    statusArgv: (instance, glideinId) =>
      status(instance, `GlideinLaunchId == "${glideinId}"`, ['Name', 'State', 'Activity']),
    collectorStatusArgv: (instance) =>
      status(instance, 'GlideinLaunchId =!= undefined', ['GlideinLaunchId', 'Name', 'State', 'Activity']),
    statusEnv: (confFile) => chain.preloadEnv(confFile, true),
    async queryRegistration(q, glideinId) {
      const result = await query(q, condor.statusArgv(q.instance, glideinId));
      if (result.code !== 0)
        return {
          registered: undefined,
          error: `condor_status exited with ${result.code}: ${lastLines(result.stderr, 2)}`,
        };
      return { registered: parseAutoformat(result.stdout)[0] };
    },
    async queryCollector(q) {
      const result = await query(q, condor.collectorStatusArgv(q.instance));
      if (result.code !== 0)
        throw new Error(
          `condor_status for our glideins at ${collector} exited with ${result.code}: ${lastLines(result.stderr, 2)}`,
        );
      return parseLaunchedAds(result.stdout);
    },
  };
  return condor;
}

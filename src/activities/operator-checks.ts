/**
 * The operator's tools, run by the worker with its own SSH access (the command needs no key): `checkSite` tests
 * each hop a glidein will use, in order, without launching anything; `readGlideinLog` reads a part of one of a
 * glidein's logs on the site, redacted. Both only read: no claim, no lease, nothing left behind.
 */
import { redact } from '../common/redact';
import { logWindow } from './log-window';
import { hostname, siteName } from '../common/validation';
import {
  readLogRequestSchema,
  type HopResult,
  type LogChunk,
  type ReadLogRequest,
  type SiteCheck,
  type SiteHop,
} from '../common/operator-requests';
import { FailureType, PermanentFault } from '../common/failure-types';
import type { Executor, RunOptions } from '../remote/executor';
import { adaptersFor, type SiteExecutors } from '../site/adapters';
import { pathsFor } from '../site/paths';
import type { SiteProfile } from '../site/profile';
import {
  connectProbeArgv,
  parseReadClaim,
  parseReadLog,
  readClaimArgv,
  readLogArgv,
  tcpProbeArgv,
} from '../site/scripts';
import { glideinIdFor, legacyGlideinIdFor } from '../common/request';
import { instanceName } from '../common/naming';
import { checkLifetime, readCredentials } from './credential-files';
import type { ActivityDeps } from './deps';
import { activityOwner, cancellationSignal } from './kit';
import { parseDuration } from '../common/duration';

const CHECK_TIMEOUT_MS = 30_000;
/** Context read on either side of a log window: more than a PEM block (an X.509 proxy's chain, a 4096-bit key). */
const CONTEXT_BYTES = 16 * 1024;
/** The largest window one read returns: with its context, in base64, within the executor's 1 MiB of output. */
const MAX_WINDOW_BYTES = 720 * 1024;

/**
 * A log is read only for its own glidein's workflow: the claim on its directory must name this activity's namespace
 * and a workflow whose glidein id this is. Anything else is refused, and nothing of it is read.
 */
function checkReader(claimLine: string, glideinId: string, where: string): void {
  let claim: { namespace?: unknown; workflowId?: unknown };
  try {
    claim = JSON.parse(claimLine) as typeof claim;
  } catch {
    claim = {};
  }
  const { namespace } = activityOwner();
  const workflowId = typeof claim.workflowId === 'string' ? claim.workflowId : undefined;
  const derives =
    workflowId !== undefined && [glideinIdFor(workflowId), legacyGlideinIdFor(workflowId)].includes(glideinId);
  if (claim.namespace !== namespace || !derives)
    throw new PermanentFault(
      `glidein ${glideinId}: ${where} is claimed by ` +
        `${claim.namespace === namespace ? 'another workflow' : 'another namespace'}, not by a workflow of ` +
        `namespace ${namespace} that launched it; nothing was read`,
      FailureType.GlideinIdConflict,
    );
}

export function createSiteToolActivities(deps: ActivityDeps) {
  const executorsFor = (profile: SiteProfile, allocated?: { node?: string; jobId?: string }): SiteExecutors =>
    deps.executorsFor ? deps.executorsFor(profile) : adaptersFor(profile).nodeAccess.executors(deps.ssh, allocated);
  const opts = (extra?: RunOptions): RunOptions => ({
    timeoutMs: CHECK_TIMEOUT_MS,
    signal: cancellationSignal(),
    ...extra,
  });
  /** Where a batch system runs the glidein: its holder job, found by name in the queue (none: not running now). */
  const allocationOf = async (profile: SiteProfile, glideinId: string): Promise<{ node?: string; jobId?: string }> => {
    const batch = adaptersFor(profile).batch;
    if (!batch) return {};
    const { login } = executorsFor(profile);
    const job = batch
      .parseQueue(await mustRun(login, batch.queueArgv(glideinId), `looking for its ${batch.name} job`, opts()))
      .filter((j) => batch.isRunning(j) && hostname.safeParse(j.node).success)
      .at(0);
    return job ? { node: job.node, jobId: job.jobId } : {};
  };

  return {
    async checkSite(site: string): Promise<SiteCheck> {
      const hops: HopResult[] = [];
      let failedHop: SiteHop | undefined;
      const hop = async (name: SiteHop, run: () => Promise<string>) => {
        const started = Date.now();
        if (failedHop) {
          hops.push({ hop: name, status: 'not checked', detail: `after ${failedHop} failed`, ms: 0 });
          return;
        }
        try {
          const detail = await run();
          hops.push({
            hop: name,
            status: detail.startsWith('not checked') ? 'not checked' : 'ok',
            detail,
            ms: Date.now() - started,
          });
        } catch (err) {
          failedHop = name;
          hops.push({ hop: name, status: 'failed', detail: redact(messageOf(err)), ms: Date.now() - started });
        }
      };
      let profile: SiteProfile | undefined;
      await hop('profile', async () => {
        if (!siteName.safeParse(site).success) throw new Error(`site: ${JSON.stringify(site)} is not a site name`);
        profile = await deps.sites.get(site);
        return `sites/${site}.yaml is valid (${profile.workerNode.via} node access, ${profile.tunnel.mode} tunnel)`;
      });
      const p = () => profile!;
      await hop('credentials', async () => {
        const files = await readCredentials(p());
        if (files.length === 0) return 'not checked: the profile names no pool credential';
        const lifetime = parseDuration(p().glidein.lifetime) + parseDuration(p().glidein.drainGrace);
        checkLifetime(files, Date.now() + lifetime);
        return files
          .map(
            (f) => `${f.kind} ${f.file}${f.expiresAtMs ? ` valid until ${new Date(f.expiresAtMs).toISOString()}` : ''}`,
          )
          .join('; ');
      });
      let executors: SiteExecutors | undefined;
      await hop('login', async () => {
        executors = executorsFor(p());
        await mustRun(executors.login, ['true'], 'a command on the login node', opts());
        return `ssh ${executors.login.target}: host key known, key accepted`;
      });
      await hop('nodeAccess', () =>
        adaptersFor(p()).nodeAccess.check(executors!, (exec, argv, what) => mustRun(exec, argv, what, opts())),
      );
      await hop('tunnel', async () => {
        const { tunnel, batch } = adaptersFor(p());
        const host = tunnel.host(executors!);
        if (host !== executors!.login && batch)
          return `not checked: the tunnel runs on the worker node, which exists only once ${batch.name} allocates it`;
        const program = tunnel.argv(tunnel.ports.first, undefined, pathsFor(p(), 'site-check'))[0];
        const found = await mustRun(
          host,
          ['sh', '-c', 'command -v "$1"', 'which', program],
          `finding ${program}`,
          opts(),
        );
        return `${program} found on ${host.target} (${found.trim()})`;
      });
      await hop('kitProxy', async () => {
        const { host, port } = p().kitProxy;
        await mustRun(executors!.login, tcpProbeArgv(host, port), `connecting to ${host}:${port}`, opts());
        return `${host}:${port} accepts connections from the login node`;
      });
      await hop('collector', async () => {
        const kit = p().kitProxy;
        const target = `${p().collector.host}:${p().collector.port}`;
        const out = await mustRun(
          executors!.login,
          connectProbeArgv(kit.host, kit.port, target),
          `CONNECT ${target} through ${kit.host}:${kit.port}`,
          opts(),
        );
        const status = /^status (.*)$/m.exec(out)?.[1] ?? '';
        if (!/^HTTP\/\d(\.\d)? 200\b/.test(status))
          throw new Error(`the proxy ${kit.host}:${kit.port} refused CONNECT ${target}: ${status || 'no answer'}`);
        return `${target} reached through ${kit.host}:${kit.port} (${status})`;
      });
      return { site, ok: failedHop === undefined, ...(failedHop ? { failedHop } : {}), hops };
    },

    async readGlideinLog(input: ReadLogRequest): Promise<LogChunk> {
      const parsed = readLogRequestSchema.safeParse(input);
      if (!parsed.success)
        throw new PermanentFault(
          `readGlideinLog: ` +
            `${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`,
          FailureType.InvalidRequest,
        );
      const req = parsed.data;
      const profile = await deps.sites.get(req.site);
      const adapters = adaptersFor(profile);
      const paths = pathsFor(profile, req.glideinId);
      const retired = { dir: `${profile.workDir}/.done`, glideinId: req.glideinId };
      // The node and the job are the glidein's own, found on the site: a caller never points the worker at a job.
      const executors = executorsFor(profile, await allocationOf(profile, req.glideinId));
      // Whose glidein it is, before anything of it is read: a workflow of this namespace that derives this id.
      const none = (host: Executor): LogChunk => ({
        which: req.which,
        host: host.target,
        size: 0,
        offset: 0,
        text: '',
      });
      const claimHost = adapters.nodeAccess.directoryOnLogin ? executors.login : executors.node;
      const claim = parseReadClaim(
        await mustRun(
          claimHost,
          readClaimArgv(paths.dir, retired.dir, req.glideinId),
          'checking whose glidein it is',
          opts(),
        ),
      );
      if (claim === undefined) return none(claimHost);
      checkReader(claim, req.glideinId, `${paths.dir} on ${claimHost.target}`);
      let host: Executor;
      let file: string;
      if (req.which === 'tunnel') {
        host = adapters.tunnel.host(executors);
        file = paths.tunnelLog;
      } else if (req.which === 'glidein') {
        host = executors.node;
        file = paths.glideinLog;
      } else {
        host = executors.node;
        const runtime = adapters.container;
        const listed = await mustRun(
          host,
          runtime.listArgv(instanceName(req.glideinId)),
          'listing the container instance',
          opts(),
        );
        const instance = runtime.parseList(listed, instanceName(req.glideinId));
        if (!instance?.logErrPath) return none(host);
        // Read back from the site, so not trusted: only ever an instance log of the runtime's own log directory.
        if (!runtime.isInstanceLog(instance.logErrPath))
          throw new PermanentFault(
            `instance list named ${JSON.stringify(instance.logErrPath.slice(0, 200))} as the container's ` +
              `log, which is not an instance log`,
            FailureType.CommandFailed,
          );
        file = instance.logErrPath;
      }
      // Redaction runs on whole lines read with context on either side, before the window is cut (./log-window.ts);
      // the read, in base64, must fit the executor's 1 MiB of output.
      const window = {
        offset: req.offset,
        tail: req.tail,
        maxBytes: Math.min(req.maxBytes, MAX_WINDOW_BYTES),
        margin: CONTEXT_BYTES,
      };
      const argv = readLogArgv(file, window, req.which === 'container' ? undefined : retired);
      const read = async () => {
        try {
          return parseReadLog(await mustRun(host, argv, `reading ${file}`, opts()));
        } catch (err) {
          // The node's job has ended (or the node is out of reach): where the work directory is on a file system
          // the login node shares (batch-system sites), the login node reads it.
          if (host === executors.login || !adapters.nodeAccess.directoryOnLogin) throw err;
          host = executors.login;
          return parseReadLog(await mustRun(host, argv, `reading ${file}`, opts()));
        }
      };
      const bytes = await read();
      if (!bytes) return { which: req.which, host: host.target, size: 0, offset: req.offset, text: '' };
      const shown = logWindow(bytes, window.maxBytes);
      return {
        which: req.which,
        path: bytes.path,
        host: host.target,
        size: bytes.size,
        offset: shown.offset,
        end: shown.end,
        text: shown.text,
      };
    },
  };
}

async function mustRun(exec: Executor, argv: string[], what: string, options: RunOptions): Promise<string> {
  const result = await exec.run(argv, options);
  if (result.code !== 0) {
    const said = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(
      `${what} on ${exec.target} failed (exit ${result.code ?? result.signal})${said ? `: ${said}` : ''}`,
    );
  }
  return result.stdout;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The one place that decides, from what a site tool printed, that a failure is permanent (retrying cannot fix
 * it: a wrong name in the profile, a missing image, a refused key) and which failure type it is. Anything no
 * rule matches is retried. Each rule says how to fix what it matched, for the message.
 */
import { FailureType, type FailureTypeName } from '../common/failure-types';

export interface PermanentRule {
  pattern: RegExp;
  type: FailureTypeName;
  fix?: string;
  /** The profile field the fix is about, when the caller's default is not it. */
  field?: string;
  /**
   * The step's attempt from which the output is taken as permanent; earlier attempts retry. For words a passing
   * outage prints as well as a wrong profile (cvmfs says the same when its proxy is briefly unreachable as when the
   * repository does not exist): a glidein is not lost to a hiccup, and a wrong name still fails in seconds.
   */
  fromAttempt?: number;
}

/** What each tool says when retrying cannot help. */
export const PERMANENT_OUTPUT = {
  /** `sbatch` refusing the holder job. */
  sbatch: [
    {
      pattern: /invalid (partition|account|qos)|not available|Requested time limit is invalid|access denied/i,
      type: FailureType.AllocationRefused,
      fix: 'check workerNode.partition, account, qos and timeLimit against what the site grants',
    },
  ],
  /** `mountrepo` of cvmfsexec. */
  mountrepo: [
    {
      pattern: /proxy auto-discovery failed|CVMFS_HTTP_PROXY is not set/i,
      type: FailureType.CvmfsMountFailed,
      fix: 'set cvmfs.httpProxy: a compute node cannot discover a proxy by itself',
      field: 'cvmfs.httpProxy',
    },
    {
      pattern: /catalog|not found|no such|Failed to initialize/i,
      type: FailureType.CvmfsMountFailed,
      fix: 'check cvmfs.repositories, and that cvmfs.httpProxy serves them',
      fromAttempt: 3,
    },
  ],
  /** `apptainer|singularity instance start`. */
  instanceStart: [
    {
      pattern: /could not open image|no such file|mount source .* doesn't exist/i,
      type: FailureType.ContainerStartFailed,
      fix: 'check container.image and container.binds',
    },
  ],
  /** The glidein's start command inside the instance. */
  glideinStart: [
    {
      pattern: /executable file not found|no such file or directory|not found in \$PATH|exec: .*: not found/i,
      type: FailureType.GlideinStartFailed,
      fix: 'check glidein.startCommand',
    },
  ],
  /** The tunnel's own `ssh` on the site. */
  tunnelSsh: [
    {
      pattern: /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i,
      type: FailureType.TunnelHostKeyRejected,
      fix: 'add the verified host key to tunnel.knownHostsFile on the site',
    },
    {
      pattern: /Permission denied|Too many authentication failures/i,
      type: FailureType.TunnelAuthRejected,
      fix:
        "check the key (tunnel.identityFile, or the worker's login key for a reverse tunnel) and its " +
        'authorized_keys entry',
    },
    {
      // Something bound the port between our look and the spawn: a squatter, never to be taken for the tunnel.
      pattern: /Address already in use|cannot listen to port|Could not request local forwarding/i,
      type: FailureType.TunnelPortInUse,
      fix:
        'another process on that node listens on the leased SOCKS port; free it, or leave it out of ' +
        'tunnel.socksPorts',
    },
    {
      pattern: /Could not resolve hostname/i,
      type: FailureType.TunnelHostUnknown,
      fix: "check the tunnel's host name",
    },
  ],
} satisfies Record<string, PermanentRule[]>;

export type ToolName = keyof typeof PERMANENT_OUTPUT;

/**
 * The rule `output` of `tool` matches, if it says the failure is permanent at this attempt of the step (1 is the
 * first); undefined: retry.
 */
export function permanentCause(tool: ToolName, output: string, attempt = 1): PermanentRule | undefined {
  return (PERMANENT_OUTPUT[tool] as PermanentRule[]).find(
    (rule) => attempt >= (rule.fromAttempt ?? 1) && rule.pattern.test(output),
  );
}

/**
 * Every failure type LaunchGlidein and its activities raise: one vocabulary for code, tests and clients (search
 * for them in the Web UI, branch on them in scripts). Non-retryable ones are faults that retrying cannot fix.
 */
export const FailureType = {
  /** The workflow input (or a carried state, a signal) is not valid; nothing ran on the site. */
  InvalidRequest: 'InvalidRequest',
  InvalidSiteProfile: 'InvalidSiteProfile',
  /** The glidein's directory on the site is claimed by another workflow: nothing was touched. */
  GlideinIdConflict: 'GlideinIdConflict',
  /**
   * A path on the site (the glidein directory, its claim, a lease directory, cvmfsexec) is a symbolic link, someone
   * else's, or writable by others: refused before it is trusted; the message names it.
   */
  SitePathUnsafe: 'SitePathUnsafe',
  HostKeyRejected: 'HostKeyRejected',
  AuthRejected: 'AuthRejected',
  SshConnect: 'SshConnect',
  SshChannel: 'SshChannel',
  SshTimeout: 'SshTimeout',
  SshAborted: 'SshAborted',
  NoNodeAllocated: 'NoNodeAllocated',
  AllocationRefused: 'AllocationRefused',
  /** The Slurm job holding the node has ended: its steps cannot start, and what ran in it ended with it. */
  AllocationEnded: 'AllocationEnded',
  QueueTimeout: 'QueueTimeout',
  TunnelPortInUse: 'TunnelPortInUse',
  TunnelHostKeyRejected: 'TunnelHostKeyRejected',
  TunnelAuthRejected: 'TunnelAuthRejected',
  TunnelHostUnknown: 'TunnelHostUnknown',
  TunnelUnstable: 'TunnelUnstable',
  CvmfsMountFailed: 'CvmfsMountFailed',
  ContainerStartFailed: 'ContainerStartFailed',
  PreloadFailed: 'PreloadFailed',
  GlideinStartFailed: 'GlideinStartFailed',
  /** The pool credential (credentials.idToken / x509Proxy) cannot be read or is not one. */
  CredentialUnusable: 'CredentialUnusable',
  /** The pool credential expires before the glidein would end (or has expired). */
  CredentialExpired: 'CredentialExpired',
  GlideinExited: 'GlideinExited',
  RegistrationTimeout: 'RegistrationTimeout',
  GlideinUnregistered: 'GlideinUnregistered',
  /** An activity ran out of time (start-to-close, heartbeat or schedule-to-close) on every attempt. */
  ActivityTimedOut: 'ActivityTimedOut',
  /** The state a run was to carry into its next failed its own schema: drained and torn down instead. */
  CarriedStateInvalid: 'CarriedStateInvalid',
  /** Teardown could not release everything; the message names what is still held. */
  TeardownIncomplete: 'TeardownIncomplete',
  CommandFailed: 'CommandFailed',
  StepError: 'StepError',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/**
 * A fault that retrying cannot fix, with the failure type an operator searches for. Here, on the ground floor, so
 * that the site adapters can raise one without importing the activities' failure conversion
 * (src/activities/to-failure.ts) that turns it into a non-retryable Temporal failure.
 */
export class PermanentFault extends Error {
  override name = 'PermanentFault';
  constructor(
    message: string,
    readonly type: FailureTypeName,
  ) {
    super(message);
  }
}

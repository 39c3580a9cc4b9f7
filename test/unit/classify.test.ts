/** What site tools print when retrying cannot help, and what they print when it can: one classifier decides. */
import { permanentCause, type ToolName } from '../../src/site/adapters';
import { FailureType } from '../../src/common/failure-types';

describe('permanent failures, told from what the tool printed', () => {
  it.each<[ToolName, string, string]>([
    ['sbatch', 'sbatch: error: invalid partition specified: batchx', FailureType.AllocationRefused],
    [
      'sbatch',
      'sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified',
      FailureType.AllocationRefused,
    ],
    [
      'sbatch',
      'sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)',
      FailureType.AllocationRefused,
    ],
    [
      'instanceStart',
      'FATAL:   could not open image /p/images/missing.sif: failed to retrieve path',
      FailureType.ContainerStartFailed,
    ],
    [
      'glideinStart',
      'exec: "/cvmfs/cms.cern.ch/glidein/sbin/condor_master": executable file not found in $PATH',
      FailureType.GlideinStartFailed,
    ],
    ['tunnelSsh', 'Host key verification failed.', FailureType.TunnelHostKeyRejected],
    ['tunnelSsh', 'glidein@jwlogin: Permission denied (publickey).', FailureType.TunnelAuthRejected],
    [
      'tunnelSsh',
      'ssh: Could not resolve hostname jwlogin99: Name or service not known',
      FailureType.TunnelHostUnknown,
    ],
  ])('%s: %j is permanent (%s)', (tool, output, type) => {
    expect(permanentCause(tool, output)).toMatchObject({ type });
    expect(permanentCause(tool, output)?.fix).toBeTruthy();
  });

  it.each([
    'Failed to initialize root file catalog (16 - file catalog failure)',
    'Repository nosuch.example.org not found',
  ])('mountrepo: %j is retried twice (a proxy outage prints it too), then permanent', (output) => {
    expect(permanentCause('mountrepo', output)).toBeUndefined();
    expect(permanentCause('mountrepo', output, 2)).toBeUndefined();
    expect(permanentCause('mountrepo', output, 3)).toMatchObject({ type: FailureType.CvmfsMountFailed });
    expect(permanentCause('mountrepo', output, 4)?.fix).toBeTruthy();
  });

  it('mountrepo: no proxy set is permanent at once', () => {
    const output = 'Failed to discover HTTP proxy servers (22 - proxy auto-discovery failed)';
    expect(permanentCause('mountrepo', output)).toMatchObject({ field: 'cvmfs.httpProxy' });
  });

  it.each<[ToolName, string]>([
    ['sbatch', 'sbatch: error: Batch job submission failed: Socket timed out on send/recv operation'],
    ['mountrepo', 'Failed to connect to proxy: connection refused'],
    ['instanceStart', 'FATAL:   container creation failed: timeout'],
    ['glideinStart', 'condor_master: killed by signal 9'],
    ['tunnelSsh', 'ssh: connect to host jwlogin port 22: Connection timed out'],
    ['tunnelSsh', 'kex_exchange_identification: read: Connection reset by peer'],
  ])('%s: %j is retried', (tool, output) => {
    expect(permanentCause(tool, output)).toBeUndefined();
  });
});

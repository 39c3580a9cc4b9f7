/**
 * How a glidein reads in the Web UI, without a server: its static summary and details wherever it is started, its
 * current details as the status changes, and every step's activity summary naming what it touches.
 */
import { launchStartOptions } from '../../src/workflows/launch-options';
import { currentDetails, memoIdentity } from '../../src/workflows/details';
import type { GlideinStatus } from '../../src/workflows/messages';
import type { LaunchPlan } from '../../src/site/plan';
import { activitySummary, STEP_NAMES, STEPS } from '../../src/workflows/steps';

const PLAN: LaunchPlan = {
  site: 'jsc-box',
  glideinId: 'glidein-jsc-3',
  lifetimeMs: 3_600_000,
  registrationTimeoutMs: 300_000,
  monitorIntervalMs: 30_000,
  drainGraceMs: 600_000,
  stopGraceMs: 60_000,
  repositories: ['cms.cern.ch'],
  workDir: '/p/scratch/glideins/glidein-jsc-3',
  collector: 'collector.example.org:9618',
  slurm: { timeLimitMs: 7_200_000, queueTimeoutMs: 600_000 },
};

describe('the Web UI', () => {
  it('summarises a launch in one line, naming the fleet and slot of a fleet glidein', () => {
    expect(launchStartOptions({ site: 'jsc-box', lifetime: '12h' }).staticSummary).toBe('Glidein at jsc-box for 12h');
    const { staticSummary, staticDetails } = launchStartOptions({ site: 'jsc-box' }, { fleet: 'jsc', slot: 3 });
    expect(staticSummary).toBe("Glidein at jsc-box for the profile's lifetime · fleet jsc slot 3");
    expect(staticDetails).toContain('- **Requested by:** GlideinFleet `jsc`, slot 3');
    expect(staticDetails).toContain("the site profile's `glidein.lifetime`");
    expect(staticDetails).toContain('allocateNode (Slurm sites) → openTunnel');
  });

  it('keeps a requester one plain line: free text never breaks the markdown', () => {
    const { staticSummary, staticDetails } = launchStartOptions(
      { site: 'local' },
      { requestedBy: 'alice\n# **boss** `rm` <b>' + 'x'.repeat(500) },
    );
    expect(staticSummary).not.toContain('alice');
    const line = staticDetails.split('\n').find((l) => l.includes('Requested by'))!;
    expect(line).toMatch(/^- \*\*Requested by:\*\* alice boss rm bx+$/);
    expect(line.length).toBeLessThan(160);
  });

  it('shows the phase, node, registration, holdings, deadline and last check as they become known', () => {
    const status: GlideinStatus = {
      site: 'jsc-box',
      glideinId: 'glidein-jsc-3',
      phase: 'planning',
      steps: [],
      held: [],
    };
    expect(currentDetails(status)).toBe(
      "- **Phase:** planning\n- **Node:** the profile's worker node\n- **Registration:** not yet\n- **Holds:** nothing",
    );
    expect(memoIdentity(status)).toEqual({ site: 'jsc-box', glideinId: 'glidein-jsc-3' });
    Object.assign(status, {
      phase: 'monitoring',
      allocation: { jobId: '4711', node: 'jsccpu12' },
      registration: { name: 'slot1@glidein-jsc-3@jsccpu12', state: 'Claimed', activity: 'Busy' },
      held: [
        { kind: 'allocation', jobName: 'glidein-jsc-3', jobId: '4711' },
        { kind: 'tunnel', socksPort: 1081 },
        { kind: 'glidein' },
      ],
      deadline: Date.UTC(2026, 0, 1),
      lastCheck: { at: '2025-12-31T12:00:00.000Z', tunnel: true, glidein: true, registered: true, claimed: true },
      claim: { claimed: true },
      shutdown: 'drain',
    } satisfies Partial<GlideinStatus>);
    const details = currentDetails(status);
    expect(details).toContain('- **Phase:** monitoring (drain requested)');
    expect(details).toContain('- **Node:** jsccpu12 (Slurm job 4711)');
    expect(details).toContain('- **Registration:** slot1@glidein-jsc-3@jsccpu12 (Claimed/Busy)');
    expect(details).toContain('- **Holds:** Slurm job 4711, tunnel :1081, glidein');
    expect(details).toContain('- **Deadline:** 2026-01-01T00:00:00.000Z');
    expect(details).toContain(
      '- **Last check:** 2025-12-31T12:00:00.000Z: tunnel up, glidein up, registered, running a job',
    );
    expect(memoIdentity(status)).toEqual({
      site: 'jsc-box',
      glideinId: 'glidein-jsc-3',
      node: 'jsccpu12',
      jobId: '4711',
      registration: 'slot1@glidein-jsc-3@jsccpu12',
    });
  });

  it('names what every step touches, on its node and through its port', () => {
    const ref = { site: 'jsc-box', glideinId: 'glidein-jsc-3', node: 'jsccpu12', jobId: '4711', socksPort: 1081 };
    const ctx = { ref, plan: PLAN, status: {} as GlideinStatus, mode: 'drain' as const };
    for (const name of STEP_NAMES) {
      const summary = activitySummary(name, ctx);
      expect(summary.startsWith(`${STEPS[name].activity} jsc-box `)).toBe(true);
      expect(summary).not.toMatch(/undefined|\n/);
    }
    expect(activitySummary('openTunnel', ctx)).toBe('openTunnel jsc-box login→jsccpu12:1081');
    expect(activitySummary('openTunnel', { ref: { site: 'local', glideinId: 'g' } } as never)).toBe(
      'openTunnel local login→worker:<leased port>',
    );
    expect(activitySummary('releaseNode', ctx)).toBe('releaseNode jsc-box Slurm job 4711');
    expect(activitySummary('stopGlidein', ctx)).toBe('stopGlidein jsc-box drain glidein-jsc-3 on jsccpu12');
  });
});

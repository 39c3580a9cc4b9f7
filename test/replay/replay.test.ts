/**
 * Determinism guard: histories recorded from real runs (scripts/record-histories.ts) must replay against the
 * current workflow code. A change that would break running workflows fails here; put it behind patched().
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../../sandbox/temporal';

const DIR = path.join(__dirname, '..', 'histories');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has the recorded lifecycles', () => {
    expect(FILES.sort()).toEqual([
      'cancellation.json',
      'failure-compensation.json',
      'fleet-drain.json',
      'happy-drain.json',
      'idle-claim.json',
      'parallel-drain.json',
      'parallel-mount-fault.json',
      'slurm-drain.json',
      'slurm-scancel.json',
    ]);
  });

  it.each(FILES)('replays %s deterministically', async (file) => {
    const history = historyFromJSON(JSON.parse(readFileSync(path.join(DIR, file), 'utf8')));
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file);
  });
});

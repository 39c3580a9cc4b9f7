/**
 * observeFleet against a stand-in Temporal client: one visibility list for the running glideins, a describe only
 * for the slots the fleet knows a run in that the list does not show (closed, or too new to be listed), and
 * nothing at all for the free slots of its share, however large the share.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { createFleetActivities, type FleetObservation } from '../../src/activities/fleet';
import { GlideinPhase } from '../../src/common/search-attributes';
import type { ActivityDeps } from '../../src/activities/deps';
import type { SiteRegistry } from '../../src/site/load';
import type { SshPool } from '../../src/remote/ssh';

const FLEET = 'f1';
const T = new Date('2026-12-02T12:00:00Z');

interface Run {
  id: string;
  runId: string;
  status: 'RUNNING' | 'COMPLETED';
  phase?: string;
  memo?: Record<string, unknown>;
  listed?: boolean;
}

function stubClient(runs: Run[]) {
  const described: string[] = [];
  const attributes = (run: Run) => ({ get: (key: unknown) => (key === GlideinPhase ? run.phase : undefined) });
  const client = {
    workflow: {
      async *list({ query }: { query: string }) {
        if (query.includes("WorkflowType = 'GlideinFleet'")) return;
        for (const run of runs.filter((r) => r.status === 'RUNNING' && r.listed !== false))
          yield {
            workflowId: run.id,
            runId: run.runId,
            startTime: T,
            typedSearchAttributes: attributes(run),
            memo: run.memo,
          };
      },
      getHandle(id: string) {
        return {
          async describe() {
            described.push(id);
            const run = runs.find((r) => r.id === id);
            if (!run) throw new WorkflowNotFoundError('not found', id, undefined);
            return {
              runId: run.runId,
              status: { name: run.status },
              startTime: T,
              closeTime: run.status === 'RUNNING' ? undefined : T,
              typedSearchAttributes: attributes(run),
              memo: run.memo,
            };
          },
          async result() {
            return {};
          },
        };
      },
    },
  };
  return { client: client as unknown as Client, described };
}

const deps = (client: Client): ActivityDeps => ({
  sites: { get: async () => ({ fleet: {} }) } as unknown as SiteRegistry,
  ssh: {} as SshPool,
  temporal: client,
});

const observe = (client: Client, request: Record<string, unknown>): Promise<FleetObservation> =>
  new MockActivityEnvironment().run(() =>
    createFleetActivities(deps(client)).observeFleet({
      fleet: FLEET,
      site: 'local',
      slots: Array.from({ length: 200 }, (_, i) => i + 1),
      uncounted: [],
      ...request,
    } as never),
  );

describe('observeFleet', () => {
  it('lists the running glideins once and describes only known slots the list does not show', async () => {
    const { client, described } = stubClient([
      { id: 'glidein-f1-1', runId: 'r1', status: 'RUNNING', phase: 'monitoring', memo: { claim: { claimed: true } } },
      { id: 'glidein-f1-2', runId: 'r2', status: 'RUNNING', phase: 'setup' },
      // Too new for the list: the fleet knows it, so it is described.
      { id: 'glidein-f1-3', runId: 'r3', status: 'RUNNING', phase: 'planning', listed: false },
      // Closed: known and uncounted, so described (and why it ended asked).
      { id: 'glidein-f1-4', runId: 'r4', status: 'COMPLETED' },
      // Not this fleet's slot naming: ignored.
      { id: 'glidein-f1-x', runId: 'rx', status: 'RUNNING', phase: 'monitoring' },
    ]);
    const seen = await observe(client, { known: [1, 2, 3, 4], uncounted: [{ slot: 4, runId: 'r4' }] });
    expect(described.sort()).toEqual(['glidein-f1-3', 'glidein-f1-4']);
    const bySlot = new Map(seen.slots.map((s) => [s.slot, s]));
    expect(bySlot.get(1)).toMatchObject({ state: 'running', runId: 'r1', busy: true });
    expect(bySlot.get(2)).toMatchObject({ state: 'starting', runId: 'r2' });
    expect(bySlot.get(3)).toMatchObject({ state: 'starting', runId: 'r3' });
    expect(bySlot.get(4)).toMatchObject({ state: 'closed', runId: 'r4', outcome: 'completed' });
    expect(seen.slots.filter((s) => s.state === 'free')).toHaveLength(196);
  });

  it('describes every slot for a fleet run made before the list (no known slots in its request)', async () => {
    const { client, described } = stubClient([
      { id: 'glidein-f1-1', runId: 'r1', status: 'RUNNING', phase: 'monitoring' },
    ]);
    const seen = await observe(client, { slots: [1, 2, 3] });
    expect(described.sort()).toEqual(['glidein-f1-1', 'glidein-f1-2', 'glidein-f1-3']);
    expect(seen.slots.map((s) => s.state)).toEqual(['running', 'free', 'free']);
  });
});

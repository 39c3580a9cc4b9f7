/** What a workflow's history says, read through any client (no worker needed). */
import type { WorkflowHandle } from '@temporalio/client';

/** Activity types that have completed, in order. */
export async function completedActivities(handle: WorkflowHandle): Promise<string[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map<string, string>();
  const done: string[] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    const c = e.activityTaskCompletedEventAttributes;
    if (c) done.push(scheduled.get(String(c.scheduledEventId)) ?? '?');
  }
  return done;
}

/**
 * The list of what a lifecycle holds on the site: one entry per kind, in the order taken (teardown releases it
 * in reverse). Pure: the workflow sandbox runs it.
 */
import type { HeldResource } from './types';

/** Records a resource before the step that takes it, or replaces the entry of its kind with what the step learnt. */
export function holdResource(held: HeldResource[], resource: HeldResource): void {
  const at = held.findIndex((h) => h.kind === resource.kind);
  if (at < 0) held.push(resource);
  else held[at] = resource;
}

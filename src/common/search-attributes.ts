/**
 * The search attributes of glideins and fleets, defined once: the workflows upsert them, the fleet's activity and
 * the schedule read or set them, the worker checks the namespace has them.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const GlideinSite = defineSearchAttributeKey('GlideinSite', SearchAttributeType.KEYWORD);
export const GlideinId = defineSearchAttributeKey('GlideinId', SearchAttributeType.KEYWORD);
export const GlideinPhase = defineSearchAttributeKey('GlideinPhase', SearchAttributeType.KEYWORD);
/** On a fleet and on each glidein it started: one Web UI query lists a fleet's glideins. */
export const GlideinFleet = defineSearchAttributeKey('GlideinFleet', SearchAttributeType.KEYWORD);

/** For `temporal server start-dev --search-attribute …` and TestWorkflowEnvironment. */
export const SEARCH_ATTRIBUTES = {
  GlideinSite: 'Keyword',
  GlideinId: 'Keyword',
  GlideinPhase: 'Keyword',
  GlideinFleet: 'Keyword',
} as const;

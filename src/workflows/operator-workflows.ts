/**
 * The operator's tools as short workflows on the glideins' task queue, so that they run in the worker, with its
 * profiles and its SSH access (`glidein site check`, `glidein logs`): the command holds no key. Each runs one
 * read-only activity once; what it returns and throws is redacted by the activity (whole lines of the log, before its
 * window is cut: src/activities/log-window.ts), and a refused request's message here.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { GlideinActivities } from '../activities';
import { FailureType } from '../common/failure-types';
import { redact } from '../common/redact';
import {
  parseReadLogRequest,
  parseSiteName,
  type LogChunk,
  type ReadLogRequest,
  type SiteCheck,
} from '../common/operator-requests';

const { checkSite, readGlideinLog } = proxyActivities<GlideinActivities>({
  // Every hop has its own 30 s limit; a stuck check ends here, and is not repeated (the operator runs it again).
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 1 },
  summary: 'read-only: launches nothing, changes nothing',
});

/** The request is refused, its message redacted: it quotes what the caller sent. */
function refuse(err: unknown): never {
  throw ApplicationFailure.nonRetryable(
    redact(err instanceof Error ? err.message : String(err)),
    FailureType.InvalidRequest,
  );
}

/** Tests each hop a glidein at `site` would use (profile, credentials, login, node access, tunnel, KIT, collector). */
export async function CheckSite(site: unknown): Promise<SiteCheck> {
  let name: string;
  try {
    name = parseSiteName(site);
  } catch (err) {
    refuse(err);
  }
  return checkSite(name);
}

/** Reads part of a glidein's log (glidein, tunnel or container) from the site. */
export async function ReadGlideinLog(request: ReadLogRequest): Promise<LogChunk> {
  let parsed;
  try {
    parsed = parseReadLogRequest(request);
  } catch (err) {
    refuse(err);
  }
  return readGlideinLog(parsed);
}

/**
 * A lookup shared by the activities of one worker process: callers asking for the same key at about the same
 * time share one query. A query still running is joined whatever its age; a finished one is reused while it
 * started no longer than the caller's `maxAgeMs` ago; a failed one is forgotten at once, so the next caller
 * asks again (and the callers that shared it see its error).
 */

interface Entry<V> {
  /** When the query started (the answer is at least this fresh). */
  startedAt: number;
  promise: Promise<V>;
  settled: boolean;
}

export interface Shared<V> {
  value: V;
  /** False when this call ran the query itself; true when it reused or joined another caller's. */
  shared: boolean;
}

export class SharedLookup<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * The value for `key`: an answer started at most `maxAgeMs` ago, the query in flight, or a new `query()`.
   * `signal` ends this caller's wait (not a query others share; the query has its own cancellation).
   */
  async get(key: string, maxAgeMs: number, query: () => Promise<V>, signal?: AbortSignal): Promise<Shared<V>> {
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry && (!entry.settled || now - entry.startedAt <= maxAgeMs)) {
      return { value: await abortable(entry.promise, signal), shared: true };
    }
    const started: Entry<V> = { startedAt: now, promise: Promise.resolve().then(query), settled: false };
    this.entries.set(key, started);
    started.promise.then(
      () => (started.settled = true),
      () => {
        if (this.entries.get(key) === started) this.entries.delete(key);
      },
    );
    return { value: await abortable(started.promise, signal), shared: false };
  }
}

function abortable<V>(promise: Promise<V>, signal?: AbortSignal): Promise<V> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Small promise helpers for tests that assert how a call fails and how long it took. */

/** The rejection of `promise`, which must reject. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: Error) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

/** The value of `body` and how many milliseconds it took. */
export async function timed<T>(body: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  const value = await body();
  return { value, ms: Date.now() - start };
}

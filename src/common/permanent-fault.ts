/**
 * A fault that retrying cannot fix, with the failure type an operator searches for. Here rather than beside the
 * activities' failure conversion (src/activities/failures.ts, which re-exports it) so that the site adapters can
 * raise one without importing the activity layer they sit under.
 */
import type { FailureTypeName } from './failure-types';

export class PermanentFault extends Error {
  override name = 'PermanentFault';
  constructor(
    message: string,
    readonly type: FailureTypeName,
  ) {
    super(message);
  }
}

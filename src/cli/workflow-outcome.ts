/** How a closed workflow ended, as one line an operator can act on. */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';

export interface ClosedOutcome {
  status: string;
  /** The failure's message, innermost cause first where it says more. */
  message?: string;
  result?: unknown;
}

export async function closedOutcome(handle: WorkflowHandle): Promise<ClosedOutcome> {
  const { status } = await handle.describe();
  try {
    return { status: status.name, result: await handle.result() };
  } catch (err) {
    return { status: status.name, message: failureMessage(err) };
  }
}

export function failureMessage(err: unknown): string {
  if (err instanceof WorkflowFailedError) {
    const messages: string[] = [];
    let cause: unknown = err.cause;
    while (cause instanceof Error) {
      // A cause its parent already quotes says nothing new.
      const message = cause.message;
      if (message && !messages.some((m) => m.includes(message))) messages.push(message);
      cause = (cause as { cause?: unknown }).cause;
    }
    return messages.join(': ') || err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

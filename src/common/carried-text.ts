/**
 * Site-derived text as a status records it: clipped to what a carried status may hold (carried-state.ts checks the
 * same limits on the way in), so that a long collector ad, step detail or log line never makes the next run refuse
 * its own state. Pure: the workflow sandbox runs it.
 */

/** How much site-derived text a status may carry in each field. */
export const CARRIED_TEXT = {
  detail: 4_000,
  error: 8_000,
  registrationName: 512,
  registrationField: 64,
  ghost: 512,
  endReason: 8_000,
} as const;

/** `text` cut to at most `max` characters, marked as cut. */
export function clipText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A monitor check as a status records it: its detail clipped to what a carried status holds. */
export function recordedCheck<C extends { detail?: string }>(check: C): C {
  return check.detail === undefined ? check : { ...check, detail: clipText(check.detail, CARRIED_TEXT.detail) };
}

/** The collector's answer as a status records it: each field clipped to what a carried status holds. */
export function recordedRegistration(r: { name: string; state: string; activity: string }): {
  name: string;
  state: string;
  activity: string;
} {
  return {
    name: clipText(r.name, CARRIED_TEXT.registrationName),
    state: clipText(r.state, CARRIED_TEXT.registrationField),
    activity: clipText(r.activity, CARRIED_TEXT.registrationField),
  };
}

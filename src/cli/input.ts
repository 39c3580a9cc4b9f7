/**
 * What the `glidein` command checks before it starts or writes anything: the same schemas the workflows check their
 * inputs with (src/common/request.ts, src/common/fleet-request.ts), so that what the command accepts the workflow
 * accepts too. Pure: no Temporal client, so each is tested on its own (test/unit/cli-input.test.ts).
 */
import { randomInt } from 'node:crypto';
import { fleetCount, fleetRequestSchema, fleetSlotOf, type FleetRequest } from '../common/fleet-request';
import { glideinRequestSchema, type GlideinRequest } from '../common/request';
import { siteName } from '../common/validation';
import type { z } from 'zod';

/** Bad usage or input: the command ends with exit code 2 and this message, having started nothing. */
export class UsageError extends Error {}

/** Each issue as `<option>: <value>: <what was expected>`, the option named as the operator wrote it. */
function usageIssues(error: z.ZodError, input: Record<string, unknown>, options: Record<string, string>): string {
  return error.issues
    .map((issue) => {
      const field = String(issue.path[0] ?? '');
      const shown = field in input ? `${JSON.stringify(input[field])}: ` : '';
      return `${options[field] ?? (field || '(input)')}: ${shown}${issue.message}`;
    })
    .join('\n');
}

/** A site profile's name, as `<site>` and `--site` take it. */
export function checkSite(site: string): string {
  if (!siteName.safeParse(site).success)
    throw new UsageError(
      `site: ${JSON.stringify(site)} is not a site profile name (lowercase letters, digits, inner hyphens)`,
    );
  return site;
}

/** A workflow id as Temporal takes it: printable ASCII, no spaces, 1-255 characters. */
export function checkWorkflowId(id: string, what = 'workflow id'): string {
  if (!/^[\x21-\x7e]{1,255}$/.test(id)) throw new UsageError(`${what}: ${JSON.stringify(id)} is not a workflow id`);
  return id;
}

/**
 * A default launch id, `glidein-<site>-<time>-<random>`: its random part is letters, so it never has the form of a
 * fleet's slot (`glidein-<fleet>-<number>`).
 */
export function newLaunchId(site: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  const random = Array.from({ length: 5 }, () => String.fromCharCode(97 + randomInt(26))).join('');
  return `glidein-${site}-${stamp}-${random}`;
}

/**
 * `glidein launch <site> [--lifetime] [--id]`: the LaunchGlidein request, checked by the workflow's own schema (a
 * lifetime the workflow would refuse is refused here, before anything starts), and its workflow id, which must not
 * be a fleet slot's.
 */
export function launchInput(
  site: string,
  opts: { lifetime?: string; id?: string },
  defaultId: (site: string) => string = newLaunchId,
): { request: GlideinRequest; workflowId: string } {
  const input = { site: checkSite(site), ...(opts.lifetime !== undefined ? { lifetime: opts.lifetime } : {}) };
  const parsed = glideinRequestSchema.safeParse(input);
  if (!parsed.success)
    throw new UsageError(usageIssues(parsed.error, input, { site: '<site>', lifetime: '--lifetime' }));
  const workflowId = checkWorkflowId(opts.id ?? defaultId(site), '--id');
  const slot = fleetSlotOf(workflowId);
  if (slot)
    throw new UsageError(
      `--id: ${JSON.stringify(workflowId)} is slot ${slot.slot} of fleet "${slot.fleet}" (a fleet names its glideins ` +
        `glidein-<fleet>-<slot>); launched by hand it would hold that slot, ` +
        `and the fleet would count it as its own.\n` +
        `Leave out --id for a fresh id (glidein-${site}-<time>-<random>), choose one not ending in -<number>, or ` +
        `change the fleet's size: glidein fleet count <schedule> <n>`,
    );
  return { request: parsed.data, workflowId };
}

/**
 * `glidein fleet count <schedule> <n>`, `--count <n>`: a count the fleet accepts (its request's bound), else a usage
 * error.
 */
export function fleetCountInput(text: string | undefined, what = 'count'): number {
  if (text === undefined || !/^[0-9]{1,9}$/.test(text))
    throw new UsageError(`${what}: expected a whole number, got ${JSON.stringify(text ?? '')}`);
  const checked = fleetCount.safeParse(Number(text));
  if (!checked.success) throw new UsageError(`${what}: ${text}: ${checked.error.issues[0].message}`);
  return checked.data;
}

/** `glidein fleet create|update`: the request the schedule will start its fleet with, checked by the fleet's schema. */
export function fleetRequestInput(
  scheduleId: string,
  values: { site?: string; count?: string; fleet?: string; lifetime?: string },
): FleetRequest {
  if (values.site === undefined) throw new UsageError('--site: expected a site profile name');
  const input = {
    site: values.site,
    count: fleetCountInput(values.count, '--count'),
    ...(values.fleet !== undefined ? { fleet: values.fleet } : {}),
    ...(values.lifetime !== undefined ? { lifetime: values.lifetime } : {}),
    scheduleId,
  };
  const parsed = fleetRequestSchema.safeParse(input);
  if (!parsed.success)
    throw new UsageError(
      usageIssues(parsed.error, input, {
        site: '--site',
        count: '--count',
        fleet: '--fleet',
        lifetime: '--lifetime',
        scheduleId: '<schedule>',
      }),
    );
  return parsed.data;
}

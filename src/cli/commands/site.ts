/**
 * `glidein site check <site>`: the CheckSite tool workflow, each hop with its outcome; `glidein site schema`: the
 * JSON Schema of a site profile.
 */
import { z } from 'zod';
import type { SiteCheck } from '../../common/operator-requests';
import { siteProfileSchema } from '../../site/profile';
import { runTool, type Context } from '../context';
import { CliError, EXIT } from '../errors';
import type { InputOf } from '../parse';
import { oneLine } from '../terminal';

const MARK = { ok: '✔', failed: '✖', 'not checked': '-' } as const;

export async function siteCheck({ site }: InputOf<'site check'>, ctx: Context): Promise<void> {
  const result = await runTool<SiteCheck>(ctx, 'CheckSite', `check-${site}`, site);
  ctx.print(result, () =>
    [
      ...result.hops.map(
        (h) => `${MARK[h.status]} ${h.hop}: ${oneLine(h.detail)}${h.status === 'not checked' ? '' : ` (${h.ms} ms)`}`,
      ),
      result.ok ? `${site}: every hop checked is open` : `${site}: first failing hop: ${result.failedHop}`,
    ].join('\n'),
  );
  if (!result.ok) throw new CliError('', EXIT.failed);
}

export function siteSchema(_input: InputOf<'site schema'>, ctx: Context): void {
  ctx.io.out(JSON.stringify(z.toJSONSchema(siteProfileSchema, { io: 'input', unrepresentable: 'any' }), null, 2));
}

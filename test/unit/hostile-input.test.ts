/**
 * Every field of the site profile and of the LaunchGlidein input against a corpus of hostile values: each is
 * refused by the schema, with an error that names the field — before anything could reach a command.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { parseGlideinRequest } from '../../src/common/request';
import { parseSiteProfile } from '../../src/site/load';
import { ALWAYS_REFUSED, HOSTILE_STRINGS, HOSTILE_TYPES } from '../support/corpus/hostile';

const SITES = path.join(__dirname, '..', '..', 'sites');

/** Fields whose content never reaches a shell unquoted or a path lookup: free text, and argv words. */
const FREE_TEXT = /^description$/;
const ARGV_WORDS = /^glidein\.(startCommand|statusCommand)\[\d+\]$|^glidein\.config\.[A-Za-z_]+$/;

type Leaf = { path: string; keys: Array<string | number>; value: unknown };

function leaves(value: unknown, keys: Array<string | number> = []): Leaf[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(v, [...keys, i]));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leaves(v, [...keys, k]));
  return [
    {
      path: keys
        .map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`))
        .join('')
        .replace(/^\./, ''),
      keys,
      value,
    },
  ];
}

function setAt(obj: any, keys: Array<string | number>, value: unknown): void {
  let at = obj;
  for (const k of keys.slice(0, -1)) at = at[k];
  at[keys[keys.length - 1]] = value;
}

/** Every object of the profile whose keys are fixed (glidein.config is a map of HTCondor knobs). */
function objects(value: unknown, keys: string[] = []): string[][] {
  if (!value || typeof value !== 'object' || Array.isArray(value) || keys.join('.') === 'glidein.config') return [];
  return [keys, ...Object.entries(value).flatMap(([k, v]) => objects(v, [...keys, k]))];
}

describe.each(['local', 'jsc-box', 'jsc-box-strict', 'jsc-example'])(
  'site profile %s against the hostile corpus',
  (site) => {
    const original = parse(readFileSync(path.join(SITES, `${site}.yaml`), 'utf8'));
    const fields = leaves(original).filter((l) => l.path !== 'name');

    it.each(fields.map((f) => [f.path, f]))(
      '%s: refuses every hostile value it must, naming the field',
      (_p, field) => {
        const { path: where, keys } = field as Leaf;
        const leaf = field as Leaf;
        let checked = 0;
        for (const [what, value] of [...HOSTILE_STRINGS, ...HOSTILE_TYPES]) {
          const lenient =
            (FREE_TEXT.test(where) || ARGV_WORDS.test(where)) && typeof value === 'string' && !ALWAYS_REFUSED.has(what);
          const sameType = typeof value === typeof leaf.value && typeof value !== 'string'; // 42 is a fine port
          if (lenient || sameType) continue;
          const profile = structuredClone(original);
          setAt(profile, keys, value);
          let message = '';
          try {
            parseSiteProfile(stringify(profile), `${site}.yaml`);
          } catch (err) {
            message = (err as Error).message;
          }
          // An array element may be reported by its index or by the array; a discriminator by its parent.
          const named = [where, where.replace(/\[\d+\]$/, ''), where.split('.').slice(0, -1).join('.')].some(
            (p) => p && message.includes(`${p}:`),
          );
          if (!message || !named)
            throw new Error(
              `${where} = ${what} (${JSON.stringify(value).slice(0, 40)}) was ` +
                `${message ? `refused without naming the field: ${message}` : 'accepted'}`,
            );
          checked++;
        }
        expect(checked).toBeGreaterThan(0);
      },
    );

    it.each(objects(original).map((k) => [k.join('.') || '(top level)', k]))(
      '%s: refuses an unknown field, naming where',
      (_p, keys) => {
        const profile = structuredClone(original);
        let at = profile;
        for (const k of keys as string[]) at = at[k];
        at.sneaky = 'x';
        expect(() => parseSiteProfile(stringify(profile), `${site}.yaml`)).toThrow(
          `${(keys as string[]).join('.') || '(top level)'}: Unrecognized key: "sneaky"`,
        );
      },
    );
  },
);

describe('LaunchGlidein input against the hostile corpus', () => {
  it.each([...HOSTILE_STRINGS, ...HOSTILE_TYPES])('site = %s is refused, naming the field', (_what, value) => {
    expect(() => parseGlideinRequest({ site: value })).toThrow(/site: /);
  });

  it.each([...HOSTILE_STRINGS, ...HOSTILE_TYPES])('lifetime = %s is refused, naming the field', (_what, value) => {
    expect(() => parseGlideinRequest({ site: 'local', lifetime: value })).toThrow(/lifetime: /);
  });

  it.each([[null], [[]], ['local'], [42]])('an input that is not an object (%j) is refused', (input) => {
    expect(() => parseGlideinRequest(input)).toThrow('LaunchGlidein input is invalid');
  });
});

/**
 * What the deployment tests read from the repository: the Dockerfile's stages and instructions, and the environment
 * variable names the worker's code reads (src/worker.ts and every file it imports, found by scanning the source).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');

export interface Instruction {
  op: string;
  /** The instruction's text after its keyword, continuation lines joined. */
  args: string;
}

export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

/** The Dockerfile's stages, in order; comments and blank lines dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) throw new Error(`Dockerfile: cannot read ${JSON.stringify(line)}`);
    const op = match[1].toUpperCase();
    const args = match[2].trim();
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`Dockerfile: cannot read FROM ${args}`);
      stages.push({ image: from[1], name: from[2], instructions: [] });
      continue;
    }
    if (stages.length === 0) throw new Error(`Dockerfile: ${op} before FROM`);
    stages[stages.length - 1].instructions.push({ op, args });
  }
  return stages;
}

export function readDockerfile(): Stage[] {
  return parseDockerfile(readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
}

/** An exec-form (JSON array) CMD or ENTRYPOINT. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new Error(`expected the exec form ["…", …], got ${args}`);
  return parsed;
}

/** A COPY's options (`--from=…`), its sources and its destination. */
export function parseCopy(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const option = words.shift()!;
    const m = /^--from=(.+)$/.exec(option);
    if (!m) throw new Error(`COPY option ${option} is not handled`);
    from = m[1];
  }
  if (words.length < 2) throw new Error(`COPY ${args}: expected sources and a destination`);
  return { from, sources: words.slice(0, -1), dest: words[words.length - 1] };
}

/** Relative imports of a TypeScript file, resolved to files. */
function relativeImports(file: string, text: string): string[] {
  const found: string[] = [];
  const pattern = /(?:from\s+|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of text.matchAll(pattern)) {
    const base = path.resolve(path.dirname(file), m[1]);
    const candidate = [`${base}.ts`, path.join(base, 'index.ts'), base].find((f) => existsSync(f) && f.endsWith('.ts'));
    if (candidate) found.push(candidate);
  }
  return found;
}

/** Names read as `env.NAME`, `process.env.NAME`, `env['NAME']`, or passed as `f(env, 'NAME', …)`. */
function envNames(text: string): string[] {
  const names: string[] = [];
  const patterns = [
    /\benv\.([A-Z][A-Z0-9_]*)\b/g,
    /\benv\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\]/g,
    /\(\s*(?:process\.)?env\s*,\s*['"]([A-Z][A-Z0-9_]*)['"]/g,
  ];
  for (const pattern of patterns) for (const m of text.matchAll(pattern)) names.push(m[1]);
  return names;
}

/** The variables @temporalio/envconfig reads (`envProvider['TEMPORAL_…']`), from its own code. */
function envconfigNames(): string[] {
  const code = readFileSync(require.resolve('@temporalio/envconfig/lib/envconfig-toml.js'), 'utf8');
  return [...code.matchAll(/envProvider\[\s*['"](TEMPORAL_[A-Z0-9_]+)['"]\s*\]/g)].map((m) => m[1]);
}

/** The environment variables `entry` and the files it imports (transitively, within the repository) read. */
export function envNamesRead(entry = path.join(REPO, 'src', 'worker.ts')): { names: Set<string>; files: string[] } {
  const names = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const name of envNames(text)) names.add(name);
    queue.push(...relativeImports(file, text));
    // Temporal's environment configuration reads the TEMPORAL_* variables every Temporal tool reads.
    if (text.includes("from '@temporalio/envconfig'")) for (const name of envconfigNames()) names.add(name);
  }
  return { names, files: [...seen].map((f) => path.relative(REPO, f)).sort() };
}

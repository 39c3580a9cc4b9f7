/**
 * The secrets of the test sites (private keys, munge key, pool signing keys and IDTOKENs) and a check that none of
 * them reached a workflow history: every test file that runs workflows scans all of its server's histories before it
 * stops it.
 */
import { readFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { BOX_PATHS } from '../../sandbox/jsc-box';
import { SITE_PATHS } from '../../sandbox/local-site';

const SECRET_FILES = [
  SITE_PATHS.operatorKey,
  SITE_PATHS.siteKey,
  BOX_PATHS.operatorKey,
  BOX_PATHS.siteKey,
  BOX_PATHS.mungeKey,
  SITE_PATHS.operatorToken,
  BOX_PATHS.operatorToken,
  `${SITE_PATHS.poolKeysDir}/POOL`,
  `${BOX_PATHS.poolKeysDir}/POOL`,
];

/** A JWT: its signature is what makes it a credential (its header and claims are not secret). */
const JWT = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{16,})$/;

/** Fragments that must never appear: each base64 line of each key that exists, and PEM armour. */
export function secretFragments(): string[] {
  const fragments = ['PRIVATE KEY-----'];
  for (const file of SECRET_FILES) {
    let content: Buffer;
    try {
      content = readFileSync(file);
    } catch {
      continue; // that site was never built here
    }
    const text = content.toString('latin1');
    const jwt = JWT.exec(text.trim());
    if (jwt) {
      fragments.push(jwt[3]);
    } else if (text.includes('-----BEGIN')) {
      // The first base64 line of an OpenSSH key is its header and public key, alike in every key: not a secret.
      const lines = text
        .split('\n')
        .filter((l) => l && !l.startsWith('-----'))
        .map((l) => l.trim());
      fragments.push(...lines.slice(1).filter((l) => l.length >= 16));
    } else {
      fragments.push(content.toString('base64').slice(0, 24), content.toString('hex').slice(0, 32)); // a binary key
    }
  }
  return [...new Set(fragments)];
}

export interface SecretLeak {
  workflowId: string;
  fragment: string;
}

/** Fetches the history of every workflow on the server and reports any secret fragment found in it. */
export async function findSecretsInHistories(client: Client): Promise<{ scanned: number; leaks: SecretLeak[] }> {
  const fragments = secretFragments();
  const leaks: SecretLeak[] = [];
  let scanned = 0;
  for await (const execution of client.workflow.list()) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    scanned++;
    for (const fragment of leaksIn(historyText(history), fragments))
      leaks.push({ workflowId: execution.workflowId, fragment });
  }
  return { scanned, leaks };
}

/** A history as text with every payload decoded: inputs, results, details and memos are bytes in the protobuf. */
export function historyText(history: unknown): string {
  return JSON.stringify(history, function (this: unknown, key, value) {
    if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
    // A history's protobuf messages serialise themselves first (toJSON), their payloads' bytes as base64.
    if (key === 'data' && typeof value === 'string' && this && typeof this === 'object' && 'metadata' in this)
      return Buffer.from(value, 'base64').toString('utf8');
    if (value && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data))
      return Buffer.from(value.data).toString('utf8');
    return value;
  });
}

/** The fragments found in `text`, shortened so that a report does not print the secret again. */
export function leaksIn(text: string, fragments: string[]): string[] {
  return fragments.filter((f) => text.includes(f)).map((f) => `${f.slice(0, 8)}…`);
}

/**
 * Who owns a glidein's directory on the site, and its retirement: CLAIM_GLIDEIN writes or checks the claim
 * (`<dir>/.claim`, one line naming the workflow, created with `ln` so that two racing creators cannot both win),
 * RETIRE_GLIDEIN moves a torn-down glidein's directory aside if the claim is ours and prunes old ones.
 */

import { SAFE_PATH, UNSAFE_PATH_EXIT } from './prelude';

/** The claim file, beside the pid files and logs it protects. */
export const CLAIM_FILE = '.claim';

/**
 * $1 directory, $2 the claim line, $3 `claim` (create the directory if need be) or `verify`. Prints `ours`,
 * `absent` (verify, and no directory: nothing of anyone's to protect) or `theirs <the claim found>`. An existing
 * directory without a claim (made before claims existed) is claimed by the first workflow that looks. Exits 1
 * when the directory or the claim cannot be written or read, 77 (UNSAFE_PATH_EXIT) when either is a symbolic link,
 * someone else's, or writable by others: the claim would protect nothing there.
 */
export const CLAIM_GLIDEIN = `${SAFE_PATH}umask 077; dir=$1; claim=$2; mode=$3; f="$dir/${CLAIM_FILE}"
safe_path "$dir" || exit ${UNSAFE_PATH_EXIT}
if [ ! -f "$f" ]; then
  if [ ! -d "$dir" ]; then
    [ "$mode" = claim ] || { echo absent; exit 0; }
    mkdir -p "$dir" || exit 1
  fi
  tmp=$(mktemp "$f.XXXXXXXX") || exit 1
  printf '%s\\n' "$claim" > "$tmp" || exit 1
  ln "$tmp" "$f" 2>/dev/null; rm -f "$tmp"
fi
safe_path "$f" || exit ${UNSAFE_PATH_EXIT}
found=$(cat "$f") || exit 1
if [ "$found" = "$claim" ]; then echo ours; else printf 'theirs %s\\n' "$found"; fi`;

export type ClaimMode = 'claim' | 'verify';
export type ClaimOutcome = { state: 'ours' | 'absent' } | { state: 'theirs'; claim: string };

export function claimArgv(dir: string, claim: string, mode: ClaimMode): string[] {
  return ['sh', '-c', CLAIM_GLIDEIN, 'sh', dir, claim, mode];
}

export function parseClaim(stdout: string): ClaimOutcome {
  const answer = stdout.trim();
  if (answer === 'ours' || answer === 'absent') return { state: answer };
  if (answer === 'theirs' || answer.startsWith('theirs ')) return { state: 'theirs', claim: answer.slice(7) };
  throw new Error(`the ownership check answered ${JSON.stringify(answer.slice(0, 200))}`);
}

/**
 * $1 directory, $2 the claim line, $3 the directory of finished glideins, $4 minutes to keep them. Moves this
 * glidein's directory (logs and all) there under `<id>.<epoch seconds>` if the claim is ours, then removes
 * finished directories older than the keep time. Prints `moved <dest>`, `absent` or `theirs`; exits 1 when the
 * move fails.
 */
export const RETIRE_GLIDEIN = `${SAFE_PATH}umask 077; dir=$1; claim=$2; done=$3; keep=$4
safe_path "$done" || exit ${UNSAFE_PATH_EXIT}
if [ -d "$dir" ]; then
  safe_path "$dir" || exit ${UNSAFE_PATH_EXIT}
  found=$(cat "$dir/${CLAIM_FILE}" 2>/dev/null)
  if [ -n "$found" ] && [ "$found" != "$claim" ]; then echo theirs; exit 0; fi
  mkdir -p "$done" || exit 1
  dest="$done/$(basename "$dir").$(date +%s)"
  mv "$dir" "$dest" && touch "$dest" || exit 1
  echo "moved $dest"
else
  echo absent
fi
find "$done" -mindepth 1 -maxdepth 1 -mmin +"$keep" -exec rm -rf {} + 2>/dev/null
exit 0`;

export type RetireOutcome = { state: 'absent' | 'theirs' } | { state: 'moved'; to: string };

export function retireArgv(dir: string, claim: string, doneDir: string, keepMinutes: number): string[] {
  return ['sh', '-c', RETIRE_GLIDEIN, 'sh', dir, claim, doneDir, String(keepMinutes)];
}

export function parseRetire(stdout: string): RetireOutcome {
  const answer = stdout.trim();
  if (answer === 'absent' || answer === 'theirs') return { state: answer };
  if (answer.startsWith('moved ')) return { state: 'moved', to: answer.slice(6) };
  throw new Error(`the retirement script answered ${JSON.stringify(answer.slice(0, 200))}`);
}

/**
 * READ_CLAIM dir=$1 done=$2 id=$3: the claim of a glidein's directory, or of its newest retired copy in `done`
 * (`<id>.<epoch>`), for a reader that must know whose glidein it is before it reads anything of it. Prints
 * `claim <line>` or `absent`; exits 77 when the directory or its claim is a symbolic link, someone else's, or
 * writable by others (nothing there can be trusted to say whose it is).
 */
export const READ_CLAIM = `${SAFE_PATH}dir=$1
if [ ! -d "$dir" ] && [ -d "$2" ]; then
  for d in "$2"/"$3".*; do [ -f "$d/${CLAIM_FILE}" ] && dir=$d; done
fi
[ -f "$dir/${CLAIM_FILE}" ] || { echo absent; exit 0; }
for p in "$dir" "$dir/${CLAIM_FILE}"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
IFS= read -r line < "$dir/${CLAIM_FILE}" || exit 1
printf 'claim %s\\n' "$line"`;

export function readClaimArgv(dir: string, doneDir: string, glideinId: string): string[] {
  return ['sh', '-c', READ_CLAIM, 'sh', dir, doneDir, glideinId];
}

/** READ_CLAIM's answer: the claim line, or undefined when there is no directory (or claim) of that glidein. */
export function parseReadClaim(stdout: string): string | undefined {
  const answer = stdout.replace(/\n$/, '');
  if (answer === 'absent') return undefined;
  if (answer.startsWith('claim ') && !answer.includes('\n')) return answer.slice(6);
  throw new Error(`the claim reader answered ${JSON.stringify(answer.slice(0, 200))}`);
}

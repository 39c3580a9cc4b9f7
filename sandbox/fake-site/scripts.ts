/**
 * The site scripts the fake recognises, by identity with the constants the activities send: the one file of the
 * fake that knows where they live (when they move, only these imports change).
 */
import { HOLDER_SCRIPT } from '../../src/site/batch';
import { BASH_SCRIPTS, SITE_SCRIPTS } from '../../src/site/scripts';

/** Scripts run as `sh -c <script> sh <args…>`: every site script but the bash ones. */
export type ShScript = Exclude<keyof typeof SITE_SCRIPTS, 'TCP_PROBE' | 'HTTP_PROBE'>;
export const SH_SCRIPTS = Object.fromEntries(
  Object.entries(SITE_SCRIPTS).filter(([name]) => !BASH_SCRIPTS.has(name)),
) as Record<ShScript, string>;

const byText = new Map<string, ShScript>(Object.entries(SH_SCRIPTS).map(([name, text]) => [text, name as ShScript]));

/** Which constant script this is, or undefined for any other text (the fake then refuses the command). */
export function shScriptNamed(text: string): ShScript | undefined {
  return byText.get(text);
}

/** Run as `bash -c <TCP_PROBE> probe <host> <port>`, under proxychains or in a container. */
export const TCP_PROBE = SITE_SCRIPTS.TCP_PROBE;
/** The holder job sbatch reads on stdin. */
export { HOLDER_SCRIPT };

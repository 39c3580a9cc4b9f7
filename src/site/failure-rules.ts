/**
 * The shape of a tool's failure rules: what it prints when retrying cannot help (a wrong name in the profile, a
 * missing image, a refused key) and which failure type that is. Each adapter keeps the rules of the tools it runs
 * (sbatch: the batch system; mountrepo: cvmfs; instance start: the container runtime; the glidein's start: HTCondor;
 * the tunnel's ssh: the tunnel); anything no rule matches is retried. Each rule says how to fix what it matched.
 */
import type { FailureTypeName } from '../common/failure-types';

export interface PermanentRule {
  pattern: RegExp;
  type: FailureTypeName;
  fix?: string;
  /** The profile field the fix is about, when the caller's default is not it. */
  field?: string;
  /**
   * The step's attempt from which the output is taken as permanent; earlier attempts retry. For words a passing
   * outage prints as well as a wrong profile (cvmfs says the same when its proxy is briefly unreachable as when the
   * repository does not exist): a glidein is not lost to a hiccup, and a wrong name still fails in seconds.
   */
  fromAttempt?: number;
}

/** A tool's answer to "is this output permanent at this attempt of the step (1 is the first)?"; undefined: retry. */
export type PermanentCause = (output: string, attempt?: number) => PermanentRule | undefined;

/** The first of `rules` that `output` matches at this attempt (1 is the first); undefined: retry. */
export function firstPermanent(
  rules: readonly PermanentRule[],
  output: string,
  attempt = 1,
): PermanentRule | undefined {
  return rules.find((rule) => attempt >= (rule.fromAttempt ?? 1) && rule.pattern.test(output));
}

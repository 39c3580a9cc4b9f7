/**
 * HTCondor: the glidein's configuration, start and registration queries. One kind, the HTCondor glidein in its
 * container (condor.ts), and no profile field to choose another.
 */
export type { Condor, QueryContext, RegistrationCheck, Retirement } from './condor';
export {
  condorConfig,
  condorFor,
  GLIDEIN_SETTLE_MS,
  GLIDEIN_START_PERMANENT,
  parseAutoformat,
  parseLaunchedAds,
} from './condor';

export { LaunchGlidein } from './launch-glidein';
export { GlideinFleet } from './fleet';

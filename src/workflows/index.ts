export { LaunchGlidein } from './launch-glidein';
export { GlideinFleet } from './fleet';
export { CheckSite, ReadGlideinLog } from './operator-workflows';

export { LaunchGlidein } from './launch-glidein';

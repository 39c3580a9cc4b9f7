/** The worker's configuration from its environment: fleet-sized defaults, and bad values refused by name. */
import { configFromEnv, fleetOptions } from '../../src/worker';

describe('worker configuration', () => {
  it('is sized for a fleet by default: 1200 activity slots (one per monitored glidein), 100 cached workflows', () => {
    const config = configFromEnv({});
    expect(config).toMatchObject({
      address: 'localhost:7233',
      namespace: 'default',
      taskQueue: 'glideins',
      maxConcurrentActivities: 1200,
      workflowCacheSize: 100,
    });
    expect(fleetOptions(config)).toEqual({ maxConcurrentActivityTaskExecutions: 1200, maxCachedWorkflows: 100 });
  });

  it('takes MAX_CONCURRENT_ACTIVITIES and WORKFLOW_CACHE_SIZE from the environment', () => {
    expect(fleetOptions(configFromEnv({ MAX_CONCURRENT_ACTIVITIES: '3000', WORKFLOW_CACHE_SIZE: '50' }))).toEqual({
      maxConcurrentActivityTaskExecutions: 3000,
      maxCachedWorkflows: 50,
    });
  });

  it.each([
    ['MAX_CONCURRENT_ACTIVITIES', '0'],
    ['MAX_CONCURRENT_ACTIVITIES', '12abc'],
    ['WORKFLOW_CACHE_SIZE', '-1'],
    ['WORKFLOW_CACHE_SIZE', '1e9'],
  ])('refuses %s=%s, naming it', (name, value) => {
    expect(() => configFromEnv({ [name]: value })).toThrow(`${name}: expected a positive whole number, got "${value}"`);
  });
});

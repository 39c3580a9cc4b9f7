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

describe('the metrics address', () => {
  it('is 127.0.0.1:9464 by default, any ip:port when given, and off when `off` or empty', () => {
    expect(configFromEnv({}).metricsAddress).toBe('127.0.0.1:9464');
    expect(configFromEnv({ METRICS_ADDRESS: '0.0.0.0:9100' }).metricsAddress).toBe('0.0.0.0:9100');
    expect(configFromEnv({ METRICS_ADDRESS: '[::1]:9464' }).metricsAddress).toBe('[::1]:9464');
    expect(configFromEnv({ METRICS_ADDRESS: 'off' }).metricsAddress).toBeUndefined();
    expect(configFromEnv({ METRICS_ADDRESS: 'OFF' }).metricsAddress).toBeUndefined();
    expect(configFromEnv({ METRICS_ADDRESS: '' }).metricsAddress).toBeUndefined();
  });

  it.each(['localhost:9464', '9464', '127.0.0.1', '127.0.0.1:70000', 'http://127.0.0.1:9464'])(
    'refuses METRICS_ADDRESS=%s, saying what it takes',
    (value) => {
      expect(() => configFromEnv({ METRICS_ADDRESS: value })).toThrow('METRICS_ADDRESS: expected ip:port');
    },
  );
});

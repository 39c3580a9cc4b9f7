/**
 * The SDK runtime for the fast suites, installed before sandbox/temporal's: errors only, the native core's too
 * (a monitor round that ends after its workflow closed is expected here, and its warning is noise).
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';

try {
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
  });
} catch {
  // already installed in this process
}

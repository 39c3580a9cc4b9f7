/**
 * Where the Temporal server is and how to reach it, as every Temporal tool finds it: Temporal's environment
 * configuration (@temporalio/envconfig): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*,
 * TEMPORAL_GRPC_META_*, and the named profiles of the TOML file the `temporal` CLI reads (TEMPORAL_CONFIG_FILE,
 * else ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE picks one). The worker and the `glidein` command use
 * this one function, so a profile that works for `temporal workflow list` works for them.
 */
import { Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** For NativeConnection.connect (the worker) and Connection.connect (clients): address, TLS, API key, metadata. */
  connection: NativeConnectionOptions;
  /** Whether TLS or an API key is in use (said in logs; never the key itself). */
  secured: { tls: boolean; apiKey: boolean };
}

export class ConnectionConfigError extends Error {
  override name = 'ConnectionConfigError';
}

export function temporalTarget(env: NodeJS.ProcessEnv = process.env, profile?: string): TemporalTarget {
  let loaded;
  try {
    loaded = loadClientConnectConfig({
      ...(profile ? { profile } : {}),
      overrideEnvVars: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ConnectionConfigError(
      `Temporal connection settings (TEMPORAL_* variables, TEMPORAL_PROFILE, the TOML file): ${message}`,
    );
  }
  const connection = { ...loaded.connectionOptions };
  connection.address ??= DEFAULT_ADDRESS;
  return {
    address: connection.address,
    namespace: loaded.namespace ?? DEFAULT_NAMESPACE,
    connection,
    secured: { tls: Boolean(connection.tls), apiKey: Boolean(connection.apiKey) },
  };
}

/** A client connection (for the `glidein` command, tests and scripts) to the target. */
export function connectClient(target: TemporalTarget): Promise<Connection> {
  const { address, tls, apiKey, metadata } = target.connection;
  return Connection.connect({
    address,
    ...(tls !== undefined ? { tls } : {}),
    ...(typeof apiKey === 'string' ? { apiKey } : {}),
    ...(metadata ? { metadata } : {}),
  });
}

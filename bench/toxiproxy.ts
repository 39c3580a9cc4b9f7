/**
 * toxiproxy (Shopify's TCP proxy with injected faults; scripts/ensure-toxiproxy builds its server once) for
 * the benchmarks: a server of the benchmark's own on loopback, driven through its HTTP API — proxies with a
 * latency toxic each way, so a connection through one sees the round trip a WAN would add. There is no netem
 * in this machine's kernel; toxiproxy delays every chunk by the toxic's latency, pipelined (a chunk waits its
 * latency from its arrival, not behind the previous chunk's delay).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, sleep } from './lib';

export function toxiproxyServer(): string {
  return execFileSync(path.join(ROOT, 'scripts', 'ensure-toxiproxy'), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

export interface LatencyProxy {
  name: string;
  /** host:port the proxy listens on. */
  listen: string;
  port: number;
  upstream: string;
  /** The round trip it adds: rttMs/2 each way (the odd millisecond downstream). */
  rttMs: number;
}

export class Toxiproxy {
  private constructor(
    private readonly child: ChildProcess,
    readonly api: string,
    readonly logFile: string,
  ) {}

  /** Starts a server on 127.0.0.1:<apiPort>, its log in `logFile`; resolves once its API answers. */
  static async start(apiPort: number, logFile: string): Promise<Toxiproxy> {
    const log = fs.openSync(logFile, 'a');
    const child = spawn(toxiproxyServer(), ['-host', '127.0.0.1', '-port', String(apiPort)], {
      stdio: ['ignore', log, log],
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
    });
    fs.closeSync(log);
    const proxy = new Toxiproxy(child, `http://127.0.0.1:${apiPort}`, logFile);
    let exited: string | undefined;
    child.once('exit', (code, signal) => (exited = `exited (${code ?? signal})`));
    child.once('error', (err) => (exited = err.message));
    for (let i = 0; ; i++) {
      if (exited) throw new Error(`toxiproxy ${exited}; see ${logFile}`);
      try {
        const r = await fetch(`${proxy.api}/version`);
        if (r.ok) return proxy;
      } catch {
        // not listening yet
      }
      if (i > 100) {
        await proxy.stop();
        throw new Error(`toxiproxy's API did not answer at ${proxy.api} in 10 s; see ${logFile}`);
      }
      await sleep(100);
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private async call(method: string, route: string, body: unknown): Promise<unknown> {
    const r = await fetch(`${this.api}${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`toxiproxy ${method} ${route}: HTTP ${r.status} ${text.trim()}`);
    return text ? JSON.parse(text) : undefined;
  }

  /** A proxy 127.0.0.1:<port> → upstream adding rttMs of round trip (none at 0: the proxy alone). */
  async latencyProxy(name: string, port: number, upstream: string, rttMs: number): Promise<LatencyProxy> {
    const listen = `127.0.0.1:${port}`;
    await this.call('POST', '/proxies', { name, listen, upstream, enabled: true });
    if (rttMs > 0) {
      const up = Math.floor(rttMs / 2);
      for (const [stream, latency] of [
        ['upstream', up],
        ['downstream', rttMs - up],
      ] as const) {
        await this.call('POST', `/proxies/${name}/toxics`, {
          name: `latency_${stream}`,
          type: 'latency',
          stream,
          toxicity: 1,
          attributes: { latency, jitter: 0 },
        });
      }
    }
    return { name, listen, port, upstream, rttMs };
  }

  /** Ends the server (SIGTERM, then SIGKILL after 3 s); resolves when it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

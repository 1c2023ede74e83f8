/**
 * A real etcd server for a test: `/usr/bin/etcd` (Debian's `etcd-server`; `.ci/run` installs
 * it) on 127.0.0.1 with a temporary data directory and ports the OS chose (bound to port 0
 * first, then handed to etcd; a clash with another process in between is retried with new
 * ports). `stop()` ends it by its pid and `start()` brings it back on the same ports and data;
 * the `useEtcd` teardown stops it and removes the directory whether the test passed or failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';
import { freePort } from '../../bench/postgres.js';
import { exited, killAndWait } from './temp.js';

export const etcdPath = '/usr/bin/etcd';

/** A port clash (another process took a port between our probe and etcd's bind) is retried. */
const startAttemptsMax = 5;
const healthyWaitMsMax = 30_000;
const stopWaitMsMax = 10_000;
/** The tail of etcd's output kept for error messages. */
const outputCharactersMax = 16_384;

export interface EtcdServer {
  /** `127.0.0.1:PORT` for clients. */
  readonly endpoint: string;
  readonly dataDir: string;
  readonly running: boolean;
  /** Ends the server by its pid (SIGTERM, or SIGKILL for a crash) and waits for it to exit. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same ports and data directory, and waits until it is healthy. */
  start(): Promise<void>;
}

export function useEtcd(): () => Promise<EtcdServer> {
  const started: EtcdHandle[] = [];
  afterEach(async () => {
    for (const server of started.splice(0)) {
      await server.stop('SIGKILL');
      rmSync(server.dataDir, { recursive: true, force: true });
    }
  });
  return async () => {
    if (!existsSync(etcdPath)) throw new Error(`${etcdPath} is missing: apt-get install etcd-server (see README, "Arbiter")`);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'txlog-etcd-'));
    for (let attempt = 1; ; attempt++) {
      const server = new EtcdHandle(dataDir, await freePort(), await freePort());
      started.push(server);
      try {
        await server.start();
        return server;
      } catch (error) {
        if (!(error instanceof PortClash) || attempt === startAttemptsMax) throw error;
        started.pop();
        rmSync(path.join(dataDir, 'data'), { recursive: true, force: true });
      }
    }
  };
}

class PortClash extends Error {}

class EtcdHandle implements EtcdServer {
  private child: ChildProcess | undefined;
  private output = '';

  constructor(
    readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) throw new Error('etcd is already running');
    const clientUrl = `http://127.0.0.1:${this.clientPort}`;
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    this.output = '';
    const child = spawn(
      etcdPath,
      [
        '--name', 'test',
        '--data-dir', path.join(this.dataDir, 'data'),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `test=${peerUrl}`,
        '--initial-cluster-state', 'new',
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-outputCharactersMax);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    await this.waitHealthy(child);
  }

  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    if (signal === 'SIGKILL') return killAndWait(child);
    const done = exited(child);
    process.kill(child.pid!, 'SIGTERM');
    const timedOut = await Promise.race([done.then(() => false), sleep(stopWaitMsMax).then(() => true)]);
    if (timedOut) await killAndWait(child);
  }

  private async waitHealthy(child: ChildProcess): Promise<void> {
    const deadline = performance.now() + healthyWaitMsMax;
    while (performance.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        if (/address already in use/.test(this.output)) throw new PortClash(this.output);
        throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${this.output}`);
      }
      if (await this.healthy()) return;
      await sleep(100);
    }
    await killAndWait(child);
    throw new Error(`etcd was not healthy within ${healthyWaitMsMax} ms:\n${this.output}`);
  }

  private async healthy(): Promise<boolean> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.clientPort}/health`, { signal: AbortSignal.timeout(1000) });
      const body: unknown = await response.json();
      return typeof body === 'object' && body !== null && (body as Record<string, unknown>)['health'] === 'true';
    } catch {
      return false;
    }
  }
}

export function sleep(durationMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, durationMs));
}

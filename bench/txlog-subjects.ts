/**
 * The txlog systems under test: the embedded store (`openStore` in this process) and a real
 * primary/backup pair (two `txlog serve` child processes, clients in this process). Both run
 * the built-in `append` of one event per transaction, one stream and one client id per worker,
 * with exactly-once request ids.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { encodePayload, type FsyncPolicy } from '../wal/index.js';
import { openStore, type Store, type StoreOptions } from '../engine/index.js';
import { createPrometheusMetrics } from '../replication/metrics.js';
import type { CommitPayload } from '../engine/records.js';
import { connect, type Client } from '../replication/client.js';
import { spawnNode, type SpawnedNode } from '../replication/spawn-node.js';
import type { PairTls } from './bench-types.js';
import type { Transaction } from './load.js';
import { settleSpare } from './spare.js';

export interface BenchEvent {
  type: string;
  data: { note: string };
}

/** An event whose msgpack encoding is `eventBytes` long (give or take a byte of length prefix). */
export function eventOf(eventBytes: number): BenchEvent {
  const base = encodePayload({ type: 'Deposited', data: { note: '' } }).length;
  return { type: 'Deposited', data: { note: 'x'.repeat(Math.max(0, eventBytes - base - 2)) } };
}

/** The commit record of one built-in append of `event`: what a one-event transaction writes. */
export function commitRecordOf(event: BenchEvent): CommitPayload {
  return {
    clientId: 'client-0',
    requestId: 1,
    command: 'append',
    args: { stream: 'stream-0', events: [event] },
    events: [{ stream: 'stream-0', firstVersion: 0, events: [event] }],
    firstPosition: 0,
    reply: { stream: 'stream-0', version: 0, position: 0 },
    now: [],
    random: [],
    readSet: [],
    calls: 0,
    digest: '0123456789abcdef0123456789abcdef',
  };
}

/** Bytes of the WAL frame of one such transaction's commit record (what the floors write). */
export function commitRecordBytes(event: BenchEvent, frameHeaderBytes: number): number {
  return encodePayload(commitRecordOf(event)).length + frameHeaderBytes;
}

export interface TxlogSubject {
  /** A transaction for the given worker; the same worker keeps its client id and stream. */
  transaction: Transaction;
  close(): Promise<void>;
}

/** One embedded store per fsync policy, reused across concurrencies (request ids continue). */
export async function openEmbedded(dir: string, fsync: FsyncPolicy, event: BenchEvent, metrics = false): Promise<TxlogSubject & { store: Store }> {
  const options: StoreOptions = { dir, fsync, log: () => {} };
  if (metrics) options.metrics = await createPrometheusMetrics();
  const store = await openStore(options);
  await settleSpare(path.join(dir, 'wal'));
  const nextRequestId: number[] = [];
  const argsOf: Array<{ stream: string; events: BenchEvent[] }> = [];
  const transaction: Transaction = async (worker) => {
    const requestId = nextRequestId[worker] ?? 1;
    nextRequestId[worker] = requestId + 1;
    const args = (argsOf[worker] ??= { stream: `stream-${worker}`, events: [event] });
    await store.execute('append', args, { clientId: `client-${worker}`, requestId });
  };
  return { store, transaction, close: () => store.close() };
}

/** Whether `taskset` runs here (the pair's nodes are pinned with it when it does). */
export function tasksetAvailable(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface PairPlacement {
  /** `taskset -c` CPU lists, or undefined for unpinned. */
  primaryCpus: string | undefined;
  backupCpus: string | undefined;
}

export interface ReplicatedSubject extends TxlogSubject {
  primary: SpawnedNode;
  backup: SpawnedNode;
}

/** Client connections the bench opens to the primary; workers share them round-robin. */
export const clientConnectionsMax = 16;

/** The secret of a pair benchmarked with TLS (`--tls psk`): any secret gives the same cost. */
const benchSecret = 'txlog-bench-secret';

export interface ReplicatedOptions {
  /** Arguments for the primary's node itself (e.g. `--cpu-prof`). @default none */
  primaryNodeArgs?: string[] | undefined;
  /** Arguments for the backup's node itself. @default none */
  backupNodeArgs?: string[] | undefined;
  /** `--metrics-listen` on both nodes. @default false */
  metrics?: boolean;
  /** @default 'off' */
  tls?: PairTls;
  /** Nodes run with node's own garbage-collector settings, not txlog's (spawnNode's `gcNodeArgs`). @default false */
  defaultGc?: boolean;
}

/**
 * Starts a pair as `txlog demo` does (primary with --expect-peer on port 0, backup with --peer),
 * waits until the primary says it has a backup in sync, and opens the client connections. With
 * `tls: 'psk'` both nodes and every client get a secret, so every link runs TLS 1.3 with the key
 * derived from it (and the handshake proves it), as a production pair with a secret does.
 */
export async function startReplicated(
  dir: string,
  fsync: FsyncPolicy,
  event: BenchEvent,
  placement: PairPlacement,
  options: ReplicatedOptions = {},
): Promise<ReplicatedSubject> {
  const common = ['--fsync', fsync, '--segment-bytes', String(256 * 1024 * 1024), ...(options.metrics === true ? ['--metrics-listen', '127.0.0.1:0'] : [])];
  const secret = options.tls === 'psk' ? { secret: benchSecret } : {};
  const env = options.tls === 'psk' ? { ...process.env, TXLOG_SECRET: benchSecret } : process.env;
  const primary = await spawnNode({
    args: ['--dir', path.join(dir, 'primary'), '--listen', '127.0.0.1:0', '--expect-peer', '--role', 'primary', '--node-id', 'P', ...common],
    env,
    ...(options.primaryNodeArgs === undefined ? {} : { nodeArgs: options.primaryNodeArgs }),
    ...(placement.primaryCpus === undefined ? {} : { cpus: placement.primaryCpus }),
    ...(options.defaultGc === true ? { defaultGc: true } : {}),
  });
  let backup: SpawnedNode;
  try {
    backup = await spawnNode({
      args: ['--dir', path.join(dir, 'backup'), '--listen', '127.0.0.1:0', '--peer', primary.addresses[0]!, '--role', 'backup', '--node-id', 'B', ...common],
      env,
      ...(options.backupNodeArgs === undefined ? {} : { nodeArgs: options.backupNodeArgs }),
      ...(placement.backupCpus === undefined ? {} : { cpus: placement.backupCpus }),
      ...(options.defaultGc === true ? { defaultGc: true } : {}),
    });
  } catch (error) {
    await primary.stop();
    throw error;
  }
  const servers = [primary.addresses[0]!, backup.addresses[0]!];
  const clients: Client[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(clients.map((client) => client.close()));
    await primary.stop();
    await backup.stop();
  };
  try {
    await waitInSync(primary.addresses[0]!, 30_000, secret);
    await settleSpare(path.join(dir, 'primary', 'wal'));
    await settleSpare(path.join(dir, 'backup', 'wal'));
    for (let index = 0; index < clientConnectionsMax; index++) {
      clients.push(await connect({ servers, clientId: `bench-client-${index}`, deadlineMs: 60_000, ...secret }));
    }
  } catch (error) {
    await close();
    throw error;
  }
  const argsOf: Array<{ stream: string; events: BenchEvent[] }> = [];
  const transaction: Transaction = async (worker) => {
    const client = clients[worker % clients.length]!;
    const args = (argsOf[worker] ??= { stream: `stream-${worker}`, events: [event] });
    await client.execute('append', args);
  };
  return { primary, backup, transaction, close };
}

async function waitInSync(address: string, timeoutMs: number, secret: { secret?: string }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const client = await connect({ servers: [address], deadlineMs: 1000, connectTimeoutMs: 1000, ...secret });
      try {
        const status = await client.status();
        if (status.role === 'primary' && status.inSync && !status.alone) return;
        last = `role ${status.role}, inSync ${String(status.inSync)}, alone ${String(status.alone)}`;
      } finally {
        await client.close();
      }
    } catch (error) {
      last = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the pair did not get in sync within ${timeoutMs} ms (${last})`);
}

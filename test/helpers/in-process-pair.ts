/**
 * Nodes in this test's own process: the real `startNode` on real loopback sockets, each in a
 * fresh temporary directory, all closed (clients first, then nodes) and their directories removed
 * after the test, whether it passed or failed. `startPair` makes a primary and a backup in one
 * call and resolves when the pair is in sync, as Hypercore's test helpers make a replicating
 * pair. Node logs are kept and printed when a test fails.
 *
 * Tests that must kill a node abruptly (SIGKILL, SIGSTOP) use real processes instead
 * (`test/replication/pair.ts`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';
import { connect, type Client, type ClientOptions } from '../../replication/client.js';
import { startNode, type NodeStatus, type TxlogNode } from '../../replication/node.js';
import type { NodeOptions } from '../../replication/options.js';

/** Loopback, port 0, small segments, no fdatasync: several engineers share two cores. */
function lightOptions(): Pick<NodeOptions, 'listen' | 'peers' | 'fsync' | 'segmentBytes' | 'preallocate'> {
  return { listen: '127.0.0.1:0', peers: [], fsync: 'never', segmentBytes: 1024 * 1024, preallocate: false };
}

export interface InProcessPair {
  primary: TxlogNode;
  backup: TxlogNode;
  /** Client-facing addresses, primary first. */
  servers: string[];
}

export interface InProcessNodes {
  /** Starts a node (a primary alone unless `options` say otherwise) in a fresh directory. */
  start(options?: Partial<NodeOptions>): Promise<TxlogNode>;
  /** Starts a primary `A` and a backup `B` that dials it; resolves once they are in sync. */
  startPair(options?: { both?: Partial<NodeOptions>; primary?: Partial<NodeOptions>; backup?: Partial<NodeOptions> }): Promise<InProcessPair>;
  /** A client that is closed after the test, before the nodes. */
  connect(servers: string[], options?: Partial<ClientOptions>): Promise<Client>;
  /** A fresh directory, removed after the test. */
  newDir(): string;
  /** Every line the nodes of this test logged, each prefixed with its node id by the node. */
  logs(): string;
}

/** Call at the top level of a test file. */
export function useInProcessNodes(prefix = 'txlog-in-process-'): InProcessNodes {
  const nodes: TxlogNode[] = [];
  const clients: Client[] = [];
  const dirs: string[] = [];
  const lines: string[] = [];
  afterEach(async (context) => {
    for (const client of clients.splice(0).reverse()) await client.close();
    for (const node of nodes.splice(0).reverse()) await node.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    if (context.task.result?.state === 'fail') console.log(`----- node logs -----\n${lines.join('\n')}`);
    lines.length = 0;
  });
  const newDir = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  const start = async (options: Partial<NodeOptions> = {}): Promise<TxlogNode> => {
    const node = await startNode({
      dir: newDir(),
      role: 'primary',
      forcePrimary: true,
      log: (line) => lines.push(line),
      ...lightOptions(),
      ...options,
    });
    nodes.push(node);
    return node;
  };
  return {
    start,
    newDir,
    async startPair(options = {}) {
      const primary = await start({ nodeId: 'A', forcePrimary: false, ...options.both, ...options.primary });
      const backup = await start({
        nodeId: 'B',
        role: 'backup',
        forcePrimary: false,
        peers: [primary.addresses[0]!],
        ...options.both,
        ...options.backup,
      });
      // Both sides: the primary counts its backup in sync at its acknowledgement, and the backup
      // learns it from the `synced` message that follows (a moment later on a busy machine).
      await waitForInProcess('the pair to be in sync, as both nodes see it', () => inSyncPrimary(primary.status()) && backup.status().inSync, 30_000);
      return { primary, backup, servers: [primary.addresses[0]!, backup.addresses[0]!] };
    },
    async connect(servers, options = {}) {
      const client = await connect({ servers, deadlineMs: 10_000, connectTimeoutMs: 500, ...options });
      clients.push(client);
      return client;
    },
    logs: () => lines.join('\n'),
  };
}

function inSyncPrimary(status: NodeStatus): boolean {
  return status.role === 'primary' && status.inSync && !status.alone;
}

/** Polls `check` every 10 ms until it holds, or fails after `timeoutMs`. */
export async function waitForInProcess(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

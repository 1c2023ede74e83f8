/**
 * Helpers for the replication tests: start `txlog serve` nodes as real child processes (from
 * dist/, like `txlog demo`), start a primary/backup pair and wait until it is in sync, ask a
 * node for its status, wait for a condition, read a node's WAL back, and an HTTP "external
 * system" that counts calls per idempotency key. Every node started through `useNodes` is
 * SIGKILLed by its pid after the test (SIGCONT first, in case a test stopped it), and its log is
 * printed when the test failed.
 */
import { existsSync, statSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, expect } from 'vitest';
import { startPaymentGateway, type PaymentGateway } from '../../cli/payment-gateway.js';
import { connect, type Client, type ClientOptions } from '../../replication/client.js';
import type { NodeStatus } from '../../replication/node.js';
import { Wal, recordPayload } from '../../wal/wal.js';
import { recordTypes, type CommitPayload, type JournalPayload } from '../../engine/records.js';
import type { RecordedEvent } from '../../engine/service.js';
// The compiled helper is what `txlog demo` uses; the nodes it starts run dist/cli/main.js.
import { spawnNode, type SpawnedNode } from '../../dist/replication/spawn-node.js';
import { useTempDir } from '../helpers/temp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repositoryRoot = path.resolve(here, '..', '..');
export const bankServicePath = path.join(here, 'bank-service.mjs');

/** Small segments and no fdatasync unless a test asks: several engineers share two cores. */
export const lightArgs = ['--segment-bytes', String(1024 * 1024), '--fsync', 'never'];

/** Fails the file early when a compiled file the nodes run is missing or older than its source. */
export function requireFreshBuild(): void {
  beforeAll(() => {
    const sources = [
      ...['engine', 'wal', 'replication'].flatMap((dir) =>
        readdirSync(path.join(repositoryRoot, dir))
          .filter((name) => name.endsWith('.ts'))
          .map((name) => path.join(dir, name)),
      ),
      'cli/serve.ts',
      'cli/main.ts',
    ];
    for (const source of sources) {
      const built = path.join(repositoryRoot, 'dist', source.replace(/\.ts$/, '.js'));
      if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
      if (statSync(built).mtimeMs < statSync(path.join(repositoryRoot, source)).mtimeMs) {
        throw new Error(`dist/ is older than ${source}: run \`npm run build\``);
      }
    }
  });
}

export interface PairFixture {
  /** Starts nodes that die with the test. */
  nodes: Nodes;
  /** A fresh directory, removed after the test. */
  newDir(): string;
  /** Fresh directories for a pair under one root: `root/a` (primary) and `root/b` (backup). */
  pairDirs(): { root: string; primary: string; backup: string };
}

/**
 * The preamble of every real-process pair test, called at the top level of its file: fails the
 * file early without a fresh build, and gives it temporary directories and nodes that die with
 * each test.
 */
export function usePairFixture(prefix: string): PairFixture {
  requireFreshBuild();
  const newDir = useTempDir(prefix);
  const nodes = useNodes();
  return {
    nodes,
    newDir,
    pairDirs() {
      const root = newDir();
      return { root, primary: path.join(root, 'a'), backup: path.join(root, 'b') };
    },
  };
}

export interface TestNode extends SpawnedNode {
  name: string;
  dir: string;
  /** SIGSTOP / SIGCONT by pid. */
  pause(): void;
  resume(): void;
}

export interface Nodes {
  /** Starts `txlog serve` with `args`; the node is killed after the test. */
  start(name: string, dir: string, args: string[], env?: NodeJS.ProcessEnv): Promise<TestNode>;
  /** Logs of every node started in this test, for failure messages. */
  logs(): string;
}

/** Call at the top level of a test file: returns a starter whose nodes die with the test. */
export function useNodes(): Nodes {
  const started: TestNode[] = [];
  afterEach(async (context) => {
    const nodes = started.splice(0);
    if (context.task.result?.state === 'fail') {
      for (const node of nodes) console.log(`----- log of node ${node.name} (pid ${node.pid}) -----\n${node.log()}`);
    }
    for (const node of nodes) {
      try {
        if (node.process.exitCode === null && node.process.signalCode === null) process.kill(node.pid, 'SIGCONT');
      } catch {
        // Already gone: nothing to resume.
      }
    }
    await Promise.all(nodes.map((node) => node.kill()));
  });
  return {
    async start(name, dir, args, env) {
      const spawned = await spawnNode({
        args: ['--dir', dir, '--node-id', name, ...args],
        env: { ...process.env, ...env },
        startTimeoutMs: 30_000,
      });
      const node: TestNode = {
        ...spawned,
        name,
        dir,
        pause: () => process.kill(spawned.pid, 'SIGSTOP'),
        resume: () => process.kill(spawned.pid, 'SIGCONT'),
      };
      started.push(node);
      return node;
    },
    logs: () => started.map((node) => `----- ${node.name} -----\n${node.log()}`).join('\n'),
  };
}

export interface Pair {
  primary: TestNode;
  backup: TestNode;
  /** Client-facing addresses, primary first. */
  servers: string[];
}

export interface PairOptions {
  /** Arguments for both nodes (after the defaults: loopback port 0, light segments). */
  args?: string[];
  primaryArgs?: string[];
  backupArgs?: string[];
  env?: NodeJS.ProcessEnv;
  primaryEnv?: NodeJS.ProcessEnv;
  backupEnv?: NodeJS.ProcessEnv;
  /** @default '127.0.0.1:0' */
  listen?: string;
  /** The backup's --peer (default: the primary's addresses). */
  peerOf?: (primary: TestNode) => string;
  /** What the status client needs to reach the nodes (a secret, certificates). */
  client?: Partial<ClientOptions>;
}

/**
 * Starts a primary (`--expect-peer`) and a backup (`--peer <primary>`) and resolves when the
 * primary reports its backup in sync.
 */
export async function startPair(nodes: Nodes, dirs: { primary: string; backup: string }, options: PairOptions = {}): Promise<Pair> {
  const listen = options.listen ?? '127.0.0.1:0';
  const common = [...lightArgs, ...(options.args ?? [])];
  const primary = await nodes.start(
    'A',
    dirs.primary,
    ['--listen', listen, '--expect-peer', '--role', 'primary', ...common, ...(options.primaryArgs ?? [])],
    { ...options.env, ...options.primaryEnv },
  );
  const peer = options.peerOf?.(primary) ?? primary.addresses.join(',');
  const backup = await nodes.start(
    'B',
    dirs.backup,
    ['--listen', listen, '--peer', peer, '--role', 'backup', ...common, ...(options.backupArgs ?? [])],
    { ...options.env, ...options.backupEnv },
  );
  const servers = [primary.addresses[0]!, backup.addresses[0]!];
  await waitForPrimaryInSync(primary.addresses[0]!, 30_000, nodes, options.client);
  return { primary, backup, servers };
}

/** The status of one node, asked over a fresh client connection. */
export async function statusOf(address: string, deadlineMs = 2000, options: Partial<ClientOptions> = {}): Promise<NodeStatus> {
  const client = await connect({ servers: [address], deadlineMs, connectTimeoutMs: Math.min(1000, deadlineMs), ...options });
  try {
    return await client.status();
  } finally {
    await client.close();
  }
}

/** Polls `check` every 25 ms until it returns true; its errors count as false. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, nodes?: Nodes): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(25);
  }
  const logs = nodes === undefined ? '' : `\n${nodes.logs()}`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}${logs}`);
}

export async function waitForPrimaryInSync(address: string, timeoutMs: number, nodes?: Nodes, options: Partial<ClientOptions> = {}): Promise<NodeStatus> {
  let status: NodeStatus | undefined;
  await waitFor(
    `${address} to be a primary with its backup in sync`,
    async () => {
      status = await statusOf(address, 2000, options);
      return status.role === 'primary' && status.inSync && !status.alone;
    },
    timeoutMs,
    nodes,
  );
  return status!;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function connectClient(servers: string[], options: Partial<ClientOptions> = {}): Promise<Client> {
  return connect({ servers, deadlineMs: 20_000, connectTimeoutMs: 500, ...options });
}

/** Every event of the store in global order, read from its primary through `client`, page by page. */
export async function readAllEvents(client: Client): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const event of client.readAll()) {
    if (event.position !== events.length) throw new Error(`readAll returned position ${event.position} at ${events.length}`);
    events.push(event);
  }
  return events;
}

export interface WalContent {
  records: Array<{ lsn: number; epoch: number; type: number; frame: Buffer; payload: unknown }>;
  commits: Array<{ lsn: number; commit: CommitPayload }>;
  journal: Array<{ lsn: number; entry: JournalPayload }>;
}

/** Reads a node's WAL read-only (the node should be stopped, or its tail may be in flight). */
export async function readWal(dir: string): Promise<WalContent> {
  const wal = await Wal.open({ dir: path.join(dir, 'wal'), readOnly: true, log: () => undefined });
  try {
    const content: WalContent = { records: [], commits: [], journal: [] };
    for (const record of wal.read(wal.firstLsn)) {
      const payload = recordPayload(record);
      content.records.push({ lsn: record.lsn, epoch: record.epoch, type: record.type, frame: record.frame, payload });
      if (record.type === recordTypes.commit) content.commits.push({ lsn: record.lsn, commit: payload as CommitPayload });
      if (record.type === recordTypes.journal) content.journal.push({ lsn: record.lsn, entry: payload as JournalPayload });
    }
    return content;
  } finally {
    await wal.close();
  }
}

/**
 * Reads both nodes' WALs (stop the nodes first) and checks they hold the same records, frame
 * for frame; returns the second node's content for further checks.
 */
export async function expectIdenticalLogs(dirA: string, dirB: string): Promise<WalContent> {
  const [walA, walB] = await Promise.all([readWal(dirA), readWal(dirB)]);
  expect(walA.records.length, 'both logs have the same length').toBe(walB.records.length);
  for (let index = 0; index < walB.records.length; index++) {
    const mine = walA.records[index]!;
    const theirs = walB.records[index]!;
    expect(mine.lsn).toBe(theirs.lsn);
    expect(mine.frame.equals(theirs.frame), `record ${theirs.lsn} differs`).toBe(true);
  }
  return walB;
}

// ------------------------------------------------------------------ the external system

export type ExternalSystem = PaymentGateway;

/**
 * A payment gateway on loopback that does NOT deduplicate: every request gets a fresh charge
 * id (`key#n`), so a charge made twice shows up as two different results. Closed after the test.
 */
export function useExternalSystem(): () => Promise<ExternalSystem> {
  const open: ExternalSystem[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((system) => system.close()));
  });
  return async () => {
    const system = await startPaymentGateway({ deduplicate: false });
    open.push(system);
    return system;
  };
}

// ------------------------------------------------------------------ deposits

export interface DepositArgs {
  account: string;
  amount: number;
}

/** The deposit a client sends as its request `requestId`: a pure function of the two. */
export function depositFor(clientIndex: number, requestId: number, accounts: number): DepositArgs {
  const mix = (clientIndex * 7919 + requestId * 104_729) >>> 0;
  return { account: `${mix % accounts}`, amount: 1 + (mix % 9) };
}

export interface DepositEvent {
  amount: number;
  chargeId: string;
  clientId: string;
  requestId: number;
  variant: string;
}

export function depositData(event: RecordedEvent): DepositEvent {
  return event.data as DepositEvent;
}

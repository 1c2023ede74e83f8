/**
 * What every simulated world shares: the bank service the nodes run (a deposit makes one
 * journaled call to an outside gateway, then appends to an account with an expected version),
 * the gateway that counts its calls per idempotency key and the results handlers saw, and the invariant checks on a state.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as lmdb from 'lmdb';
import type { Context } from '../../engine/index.js';
import type { RecordedEvent } from '../../engine/service.js';
import type { ProcessClock, Scheduler } from './scheduler.js';
import type { SeededRandom } from '../helpers/random.js';

export const accountCount = 3;

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
  constructor(
    readonly invariant: string,
    message: string,
    readonly trace: string[],
  ) {
    super(`${invariant}: ${message}`);
  }
}

/** A process incarnation as the gateway sees it: a dead one makes no more calls. */
export interface Caller {
  alive: boolean;
  clock: ProcessClock;
}

export class Gateway {
  readonly calls = new Map<string, number>();
  /**
   * The journaled result a handler saw for each key (the call was journaled and released). A
   * later call for the same key is allowed only from a run whose journal record is never
   * acknowledged (a stale primary, a killed process): no handler may ever see another result.
   */
  readonly seen = new Map<string, string>();
  /** Calls made for a key after a handler had seen its journaled result. */
  repeatsAfterSeen = 0;

  constructor(
    private readonly random: SeededRandom,
    private readonly fail: (invariant: string, message: string) => never,
  ) {}

  charge(key: string, caller: Caller): Promise<string> {
    if (!caller.alive) return new Promise(() => undefined);
    if (this.seen.has(key)) this.repeatsAfterSeen += 1;
    const calls = (this.calls.get(key) ?? 0) + 1;
    this.calls.set(key, calls);
    return new Promise((resolve) => caller.clock.setTimeout(() => resolve(`receipt:${key}:${calls}`), this.random.float() * 3));
  }

  /** A handler saw `receipt` as the journaled result of `key`. */
  sawResult(key: string, receipt: string): void {
    const first = this.seen.get(key);
    if (first === undefined) this.seen.set(key, receipt);
    else if (first !== receipt) this.fail('journaled-call-repeated', `handlers saw two results for ${key}: ${first}, then ${receipt}`);
  }

  service(caller: Caller) {
    return {
      name: 'sim-bank',
      commands: {
        deposit: async (ctx: Context, args: { account: string; amount: number; tag: string }) => {
          const receipt = await ctx.call('gateway.charge', (key) => this.charge(key, caller));
          // Only a live process's handler counts: a killed one's continuation would not have run.
          if (caller.alive) this.sawResult(`${ctx.clientId}:${ctx.requestId}:0`, receipt);
          const stream = `account-${args.account}`;
          const { version } = await ctx.readStream(stream, { maxCount: 0 });
          ctx.append(stream, [{ type: 'Deposited', data: { amount: args.amount, tag: args.tag, receipt } }], { expectedVersion: version });
          return { receipt, version: version + 1 };
        },
      },
    };
  }
}

export function depositArgs(random: SeededRandom, clientId: string, requestId: number): { account: string; amount: number; tag: string } {
  return { account: String(random.integer(0, accountCount - 1)), amount: random.integer(1, 100), tag: `${clientId}:${requestId}` };
}

/** How many times each tag is in a state, read page by page. */
export async function tagCounts(readAll: (fromPosition: number) => Promise<RecordedEvent[]>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let from = 0; ; ) {
    const page = await readAll(from);
    if (page.length === 0) break;
    for (const event of page) {
      const tag = (event.data as { tag: string }).tag;
      counts.set(tag, (counts.get(tag) ?? 0) + 1);
    }
    from = page[page.length - 1]!.position + 1;
  }
  return counts;
}

/**
 * Every acknowledged transaction is in the state exactly once, none is there twice, and every
 * event a client read is still there.
 */
export function checkTagCounts(
  counts: Map<string, number>,
  acknowledged: Map<string, unknown>,
  observed: Set<string>,
  fail: (invariant: string, message: string) => never,
): void {
  for (const [tag, count] of counts) if (count > 1) fail('applied-twice', `${tag} is in the state ${count} times`);
  for (const [tag, reply] of acknowledged) {
    const failed = typeof reply === 'object' && reply !== null && 'error' in reply;
    if (!failed && counts.get(tag) !== 1) fail('acknowledged-lost', `${tag} was acknowledged but is not in the state`);
  }
  for (const tag of observed) if (counts.get(tag) !== 1) fail('read-not-durable', `${tag} was read by a client but is gone`);
}

export function splitTag(tag: string): [string, number] {
  const at = tag.lastIndexOf(':');
  return [tag.slice(0, at), Number(tag.slice(at + 1))];
}

export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Resolves after `delayMs` of virtual time. */
export function sleep(scheduler: Scheduler, delayMs: number): Promise<void> {
  return new Promise<void>((resolve) => scheduler.schedule(delayMs, resolve));
}

/**
 * Closes the LMDB environments under `root` (a killed incarnation's, whose process would have
 * released them by dying): lmdb-js keeps every open environment in its `allDbs` registry.
 */
export function closeLmdbUnder(root: string): void {
  const allDbs = (lmdb as unknown as { allDbs: Map<string, { close(): Promise<void> }> }).allDbs;
  for (const [name, database] of allDbs) {
    if (name.startsWith(root)) {
      allDbs.delete(name);
      database.close().catch(() => undefined);
    }
  }
}

/**
 * Where the simulated nodes' LMDB states live: memory-backed /dev/shm when there is one (an
 * fsync there costs nothing and waits for no disk, so a run's speed does not depend on what else
 * uses the disk), the system's temporary directory otherwise.
 */
export function simulationTempRoot(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/**
 * A failure no injected fault explains: an assertion (a programmer error), or a log found corrupt
 * (the simulated disk never corrupts a synced byte). Such a node is not just restarted: the seed
 * fails at once, with the message, instead of much later as "no progress".
 */
export function bugBehind(error: unknown): string | undefined {
  for (let cause: unknown = error, depth = 0; cause !== undefined && cause !== null && depth < 5; depth++) {
    const named = cause as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
    if (named.name === 'AssertionFailed') return `assertion failed: ${String(named.message)}`;
    if (named.name === 'TxlogError' && named.code === 'CORRUPT_LOG') return `the log was found corrupt: ${String(named.message)}`;
    cause = named.cause;
  }
  return undefined;
}

/**
 * Every stream's versions are dense from 0 in position order (no version twice, none missing),
 * and `readStream` returns exactly those events: what the stream index holds (in its table or
 * waiting in memory) agrees with the events (invariant `stream-index`).
 */
export async function checkStreams(
  readAll: (fromPosition: number) => Promise<RecordedEvent[]>,
  readStream: (stream: string) => Promise<{ version: number; events: RecordedEvent[] }>,
  fail: (invariant: string, message: string) => never,
): Promise<void> {
  const byStream = new Map<string, number[]>();
  for (let from = 0; ; ) {
    const page = await readAll(from);
    if (page.length === 0) break;
    for (const event of page) {
      const positions = byStream.get(event.stream) ?? [];
      if (event.version !== positions.length) fail('stream-index', `${event.stream} has version ${event.version} at position ${event.position}, after ${positions.length} events`);
      positions.push(event.position);
      byStream.set(event.stream, positions);
    }
    from = page[page.length - 1]!.position + 1;
  }
  for (const [stream, positions] of byStream) {
    const slice = await readStream(stream);
    const read = slice.events.map((event) => event.position);
    if (slice.version !== positions.length - 1 || JSON.stringify(read) !== JSON.stringify(positions)) {
      fail('stream-index', `${stream}: readStream gives version ${slice.version} and positions ${JSON.stringify(read)}, the log ${JSON.stringify(positions)}`);
    }
  }
}

/**
 * One simulated machine running the real embedded `Store` (unmodified: it reaches the simulated
 * disk and clock only through its `Platform` seams), several clients sending deposits that make
 * journaled calls to an outside payment gateway, and a fault schedule drawn from the seed: the
 * process is killed and the machine crashes at random moments (unsynced writes lost, the last one
 * maybe torn), fdatasync and writes fail, syncs are slow. LMDB stays real, in a fresh temporary
 * directory per incarnation, so every restart rebuilds the state from the WAL, as the boot-id
 * rule does after a machine crash.
 *
 * Checked after every restart and at the end (see `checkInvariants`):
 * - every acknowledged transaction is in the state exactly once, and no transaction is twice;
 * - an event a client read is still there after any crash (reads show only what is durable);
 * - no handler sees a second journaled result for one key (repeat calls of unacknowledged runs
 *   are counted);
 * - at the end, every acknowledged request resent gets exactly the reply first acknowledged.
 * After every step, what the store holds in memory (`resource-checks.ts`), its callers being the
 * clients' calls in progress; and once the clients are done, that it lets go of all of it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { openStore, type Store } from '../../engine/index.js';
import { TxlogError } from '../../wal/errors.js';
import type { Random } from '../../wal/platform.js';
import { seededRandom, type SeededRandom } from '../helpers/random.js';
import { Gateway, InvariantViolation, bugBehind, accountCount, closeLmdbUnder, simulationTempRoot, checkStreams, checkTagCounts, deferred, depositArgs, sleep, splitTag, tagCounts } from './bank.js';
import { SimDisk, type DiskFaults } from './disk.js';
import { ResourceChecks, awaitDrained, type ResourceSample } from './resource-checks.js';
import { Scheduler, type ProcessClock } from './scheduler.js';

export { InvariantViolation } from './bank.js';

export interface SeedOptions {
  /** Virtual milliseconds of load. @default 2000 */
  durationMs?: number;
  clients?: number;
  /** Trace lines kept for a failure report. */
  traceLines?: number;
}

export interface SeedSummary {
  seed: number;
  steps: number;
  simulatedMs: number;
  crashes: number;
  machineCrashes: number;
  /** Promotions of a backup (pair worlds only). */
  failovers?: number;
  /** Network partitions that healed (pair worlds only). */
  partitions?: number;
  restarts: number;
  storeFailures: number;
  acknowledged: number;
  diskFaults: SimDisk['injected'];
  traceHash: string;
}

interface Incarnation {
  number: number;
  alive: boolean;
  clock: ProcessClock;
  stateRoot: string;
  store: Store | undefined;
  /** Resolves when this incarnation is killed: a client waiting on it stops waiting. */
  killed: Promise<'killed'>;
  kill: () => void;
  /** Calls into its store in progress (what its transactions and waiters belong to). */
  calls: number;
}

/**
 * The bank's deposit writes one stream; a store alone keeps no timer when idle and holds no
 * connection.
 */
const embeddedResourceWorld = { streamsPerCommitMax: 1, peerLinksIdleMax: 0, timersIdleMax: 0 };

export async function runEmbeddedSeed(seed: number, options: SeedOptions = {}): Promise<SeedSummary> {
  const world = new EmbeddedWorld(seed, options);
  try {
    return await world.run();
  } finally {
    world.cleanUp();
  }
}

class EmbeddedWorld {
  private readonly scheduler: Scheduler;
  private readonly random: SeededRandom;
  private readonly disk: SimDisk;
  private readonly tempRoot: string;
  private readonly durationMs: number;
  private readonly clientCount: number;
  private incarnation: Incarnation | undefined;
  private incarnationCount = 0;
  private restarted: { promise: Promise<void>; resolve: () => void };
  private readonly acknowledged = new Map<string, unknown>();
  private readonly observedTags = new Set<string>();
  private readonly gateway: Gateway;
  private readonly counts = { crashes: 0, machineCrashes: 0, restarts: 0, storeFailures: 0 };
  private readonly fsyncPolicy: 'always';
  private readonly preallocate: boolean;
  private readonly syncOnWorkerThread: boolean;
  private clientsDone = 0;
  /** The first broken invariant: thrown where it is found, and again by the run loop. */
  private violation: InvariantViolation | undefined;
  private readonly resources = new ResourceChecks((invariant, message) => this.fail(invariant, message), embeddedResourceWorld);

  constructor(
    private readonly seed: number,
    options: SeedOptions,
  ) {
    this.scheduler = new Scheduler(options.traceLines ?? 200);
    this.random = seededRandom(seed);
    this.disk = new SimDisk(seededRandom(this.random.integer(0, 2 ** 32 - 1)), 'machine');
    const faults: DiskFaults = {
      syncFailure: this.random.float() < 0.5 ? 0 : this.random.float() * 0.01,
      writeFailure: this.random.float() < 0.5 ? 0 : this.random.float() * 0.01,
      slowSync: this.random.float() * 0.3,
    };
    this.disk.faults = faults;
    this.tempRoot = mkdtempSync(path.join(simulationTempRoot(), 'txlog-sim-'));
    this.durationMs = options.durationMs ?? 2000;
    this.clientCount = options.clients ?? this.random.integer(1, 6);
    this.fsyncPolicy = 'always';
    this.preallocate = this.random.float() < 0.5;
    this.syncOnWorkerThread = this.random.float() < 0.5;
    this.restarted = deferred();
    this.gateway = new Gateway(this.random, (invariant, message) => this.fail(invariant, message));
  }

  async run(): Promise<SeedSummary> {
    const note = (line: string): void => this.scheduler.note(line);
    note(`seed ${this.seed}: ${this.clientCount} clients, preallocate ${this.preallocate}, worker sync ${this.syncOnWorkerThread}, faults ${JSON.stringify(this.disk.faults)}`);
    this.scheduler.schedule(0, () => void this.start().catch(() => undefined));
    this.scheduleCrash();
    for (let client = 0; client < this.clientCount; client++) {
      this.scheduler.schedule(this.random.integer(0, 20), () => void this.client(client).catch(() => undefined));
    }
    const end = this.durationMs * 20;
    const finished = await this.scheduler.runUntil(() => (this.checkStep(), this.violation !== undefined || this.clientsDone === this.clientCount), end);
    if (this.violation !== undefined) throw this.violation;
    if (!finished || this.clientsDone < this.clientCount) {
      this.fail('progress', `clients finished ${this.clientsDone} of ${this.clientCount} by virtual ${this.scheduler.nowMs} ms`);
    }
    await this.finalCheck();
    // The run ends here; what follows only waits for the store to let go of what it held.
    const summary: SeedSummary = {
      seed: this.seed,
      steps: this.scheduler.steps,
      simulatedMs: Math.round(this.scheduler.nowMs),
      ...this.counts,
      acknowledged: this.acknowledged.size,
      diskFaults: { ...this.disk.injected },
      traceHash: this.scheduler.traceHash(),
    };
    await awaitDrained(this.scheduler, this.resources, () => this.resourceSamples());
    return summary;
  }

  /** The live store, as the resource checks see it. */
  private resourceSamples(): ResourceSample[] {
    const incarnation = this.incarnation;
    if (incarnation?.store === undefined || !incarnation.alive) return [];
    const { number, store, clock, calls } = incarnation;
    return [{ name: `store ${number}`, usage: store.resourceUsage(), timersPending: clock.timersPending, connectionEndsOpen: undefined, directCalls: calls }];
  }

  private checkStep(): void {
    this.resources.afterStep(this.resourceSamples());
  }

  cleanUp(): void {
    closeLmdbUnder(this.tempRoot);
    rmSync(this.tempRoot, { recursive: true, force: true });
  }

  // ------------------------------------------------------------------ the store's process

  private async start(): Promise<void> {
    const number = ++this.incarnationCount;
    const clock = this.scheduler.clockOf(`store-${number}`);
    const stateRoot = path.join(this.tempRoot, `incarnation-${number}`);
    let kill!: () => void;
    const killed = new Promise<'killed'>((resolve) => (kill = () => resolve('killed')));
    const incarnation: Incarnation = { number, alive: true, clock, stateRoot, store: undefined, killed, kill, calls: 0 };
    this.incarnation = incarnation;
    const random: Random = { float: () => this.random.float(), bytes: (count) => this.random.bytes(count) };
    try {
      const store = await openStore({
        dir: stateRoot,
        service: this.gateway.service(incarnation),
        fsync: this.fsyncPolicy,
        segmentBytes: 64 * 1024,
        preallocate: this.preallocate,
        syncOnWorkerThread: this.syncOnWorkerThread,
        stateMapBytes: 64 * 1024 * 1024,
        // Small, so that seeds write the stream index's table (and crash around its flushes).
        streamIndexFlushEntries: 8,
        platform: { fileSystem: this.disk.fileSystemFor(clock, stateRoot), clock, random },
        log: (message) => this.scheduler.note(`[store ${number}] ${message}`),
      });
      if (!incarnation.alive) return;
      incarnation.store = store;
    } catch (error) {
      if (!incarnation.alive) return;
      const bug = bugBehind(error);
      if (bug !== undefined) this.fail('bug', `store ${number} failed to open: ${bug}`);
      // A disk fault while opening: the operator (this loop) restarts it.
      this.scheduler.note(`open failed: ${String(error)}`);
      this.counts.storeFailures += 1;
      this.crash(false);
      return;
    }
    this.scheduler.note(`store ${number} open at LSN ${incarnation.store.lastLsn}`);
    await this.checkInvariants(incarnation.store);
    const restarted = this.restarted;
    this.restarted = deferred();
    restarted.resolve();
  }

  private scheduleCrash(): void {
    this.scheduler.schedule(this.random.integer(30, 400), () => {
      if (this.clientsDone === this.clientCount) return;
      if (this.incarnation?.store !== undefined) this.crash(this.random.float() < 0.5);
      this.scheduleCrash();
    });
  }

  /** SIGKILL (and, with `machine`, a power loss); restarts it a little later. */
  private crash(machine: boolean): void {
    const incarnation = this.incarnation;
    if (incarnation === undefined || !incarnation.alive) return;
    incarnation.alive = false;
    incarnation.clock.kill();
    incarnation.kill();
    this.counts.crashes += 1;
    if (machine) {
      this.counts.machineCrashes += 1;
      this.disk.crash();
    } else {
      this.disk.processCrash();
    }
    this.scheduler.note(`crash of store ${incarnation.number}${machine ? ' with the machine' : ''}`);
    closeLmdbUnder(incarnation.stateRoot);
    this.scheduler.schedule(this.random.integer(1, 30), () => {
      this.counts.restarts += 1;
      void this.start().catch(() => undefined);
    });
  }

  // ------------------------------------------------------------------ clients

  private async client(index: number): Promise<void> {
    const clientId = `client-${index}`;
    const requests = this.random.integer(20, 60);
    for (let requestId = 1; requestId <= requests; requestId++) {
      const args = depositArgs(this.random, clientId, requestId);
      for (;;) {
        const incarnation = this.incarnation;
        const store = incarnation?.store;
        if (incarnation === undefined || store === undefined || !incarnation.alive) {
          await this.restarted.promise;
          continue;
        }
        const attempt = this.call(incarnation, store.execute('deposit', args, { clientId, requestId }));
        // Now and then the same request goes twice at once, or again a moment later while the
        // first may still run or wait for release: both must get the one outcome.
        if (this.random.float() < 0.2) this.sendDuplicate(store, incarnation, args, clientId, requestId, attempt);
        const result = await Promise.race([attempt.then((reply) => ({ reply }), (error: unknown) => ({ error })), incarnation.killed]);
        if (result === 'killed') continue;
        if ('reply' in result) {
          this.acknowledged.set(args.tag, result.reply);
          this.scheduler.note(`ack ${args.tag}`);
          break;
        }
        const error = result.error;
        if (error instanceof TxlogError && error.code === 'WRONG_EXPECTED_VERSION') {
          // Recorded and final: a resend gets the same error. This request is done.
          this.acknowledged.set(args.tag, { error: error.code });
          this.scheduler.note(`ack ${args.tag} failed ${error.code}`);
          break;
        }
        // The store failed (a disk fault) or closed: restart it as an operator would, resend the same id.
        this.scheduler.note(`attempt ${args.tag}: ${error instanceof TxlogError ? error.code : String(error)}`);
        const bug = bugBehind(store.failedWith);
        if (bug !== undefined) this.fail('bug', `store ${incarnation.number} failed: ${bug}`);
        if (incarnation.alive && store.failedWith !== undefined) {
          this.counts.storeFailures += 1;
          this.crash(false);
        }
        await this.restarted.promise;
      }
      if (this.random.float() < 0.2) await this.readSome();
      await sleep(this.scheduler, this.random.float() * 5);
    }
    this.clientsDone += 1;
  }

  /** Counts a call into the incarnation's store until it settles. */
  private call(incarnation: Incarnation, calling: Promise<unknown>): Promise<unknown> {
    incarnation.calls += 1;
    const settled = (): void => void (incarnation.calls -= 1);
    calling.then(settled, settled);
    return calling;
  }

  private sendDuplicate(
    store: Store,
    incarnation: Incarnation,
    args: ReturnType<typeof depositArgs>,
    clientId: string,
    requestId: number,
    first: Promise<unknown>,
  ): void {
    const settle = (promise: Promise<unknown>): Promise<string> =>
      promise.then(
        (reply) => JSON.stringify({ reply }),
        (error: unknown) => JSON.stringify({ error: error instanceof TxlogError ? error.code : String(error) }),
      );
    const send = (): void => {
      if (!incarnation.alive || this.incarnation !== incarnation) return;
      const duplicate = this.call(incarnation, store.execute('deposit', args, { clientId, requestId }));
      void Promise.all([settle(first), settle(duplicate)]).then(([a, b]) => {
        // Only answers that are outcomes count: a crash or a failed store may end either early.
        const outcome = (text: string): boolean => text.includes('"reply"') || text.includes('WRONG_EXPECTED_VERSION');
        if (incarnation.alive && outcome(a) && outcome(b) && a !== b) {
          try {
            this.fail('duplicate-diverged', `${args.tag} sent twice got ${a} and ${b}`);
          } catch {
            // Recorded for the run loop.
          }
        }
      });
    };
    if (this.random.float() < 0.5) send();
    else this.scheduler.schedule(this.random.float() * 3, send);
  }

  private async readSome(): Promise<void> {
    const store = this.incarnation?.store;
    if (store === undefined || !this.incarnation!.alive) return;
    try {
      const slice = await store.readStream(`account-${this.random.integer(0, accountCount - 1)}`);
      for (const event of slice.events) this.observedTags.add((event.data as { tag: string }).tag);
    } catch {
      // A store that failed under the read: nothing was shown.
    }
  }

  // ------------------------------------------------------------------ invariants

  private async checkInvariants(store: Store): Promise<void> {
    const counts = await tagCounts((fromPosition) => store.readAll({ fromPosition, maxCount: 4096 }));
    checkTagCounts(counts, this.acknowledged, this.observedTags, (invariant, message) => this.fail(invariant, message));
    await checkStreams(
      (fromPosition) => store.readAll({ fromPosition, maxCount: 4096 }),
      (stream) => store.readStream(stream, { maxCount: 4096 }),
      (invariant, message) => this.fail(invariant, message),
    );
  }

  private async finalCheck(): Promise<void> {
    const store = this.incarnation?.store;
    if (store === undefined) this.fail('progress', 'no store at the end');
    await this.checkInvariants(store!);
    for (const [tag, first] of this.acknowledged) {
      const [clientId, requestId] = splitTag(tag);
      const again = await store!.execute('deposit', {}, { clientId, requestId }).then(
        (reply) => reply,
        (error: unknown) => ({ error: error instanceof TxlogError ? error.code : String(error) }),
      );
      if (JSON.stringify(again) !== JSON.stringify(first)) {
        this.fail('reply-changed', `${tag} first got ${JSON.stringify(first)}, its resend ${JSON.stringify(again)}`);
      }
    }
    await this.checkInvariants(store!);
  }

  private fail(invariant: string, message: string): never {
    this.violation ??= new InvariantViolation(invariant, `seed ${this.seed}: ${message}`, this.scheduler.lastTraceLines());
    throw this.violation;
  }
}

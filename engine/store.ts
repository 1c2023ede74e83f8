/**
 * The embedded store's public surface: open and close, `execute` with its deduplication,
 * `append`, reads and subscriptions. The work is done by the parts it wires together:
 *
 *   recovery.ts            opens the WAL and the LMDB state, rebuilding the state when needed
 *   transaction-runner.ts  runs a handler live: ctx, journaled calls, the handler timeout
 *   commit-assembler.ts    turns an outcome into a commit record (versions, positions) and
 *                          remembers what is decided but not yet applied
 *   commit-pipeline.ts     WAL → release gate → callers answered → LMDB apply, and failure
 *   replication-hooks.ts   what only replication uses (the gate, epochs, cutting the log)
 *
 * Life of a transaction here:
 *   1. `execute` checks the request and looks it up: running already → share that promise;
 *      decided but not yet released → wait for it; committed → the stored outcome; older than
 *      the session window → REQUEST_EXPIRED. Nothing runs twice.
 *   2. The runner runs the handler; each `ctx.call` is journaled (WAL record, released) before
 *      the handler sees its result.
 *   3. The assembler checks expected versions against the heads including commits not yet
 *      applied, assigns versions and positions, and appends the record in the same tick.
 *   4. The pipeline releases records in LSN order once the WAL has them (per the fsync policy)
 *      and the release gate allows (the backup's acknowledgement, when replicated), and the
 *      caller is answered; LMDB applies them after, in batches, and at once when anything
 *      reads: a reader never sees a commit that could still be lost, nor misses one answered.
 */
import { TxlogError, errorFromSerialized, txlogError } from '../wal/errors.js';
import { backupStoreDirectory, type BackupManifest, type BackupOptions } from './backup.js';
import type { Wal } from '../wal/wal.js';
import { CommitAssembler } from './commit-assembler.js';
import { CommitPipeline } from './commit-pipeline.js';
import { checkStreamName } from './context.js';
import { resolveStoreOptions, type ResolvedStoreOptions, type StoreOptions } from './options.js';
import { openState, openWal } from './recovery.js';
import { StoreReplicationHooks, registerReplicationHooks, replicationHooksOf } from './replication-hooks.js';
import { storeResourceUsage, type ResourceUsage } from './resources.js';
import { checkRequest, type RequestIds } from './requests.js';
import { RequestSlots } from './request-slots.js';
import type { AnyEvent, AppendCheck, AppendOptions, AppendResult, EventToAppend, RecordedEvent, StreamSlice } from './service.js';
import { consumersOfState, type ConsumerList } from './consumer-list.js';
import { Consumer, ConsumerRegistry, type ConsumerHost, type ConsumerOptions } from './consumer.js';
import { StoreReads, type ReadAllOptions, type ReadPage, type ReadPageOptions, type ReadResult, type ReadStreamOptions, type SubscribeOptions } from './reads.js';
import type { State } from './state.js';
import { TransactionRunner, outcomeOf } from './transaction-runner.js';

export type { RequestIds } from './requests.js';
export type { AppendResult } from './service.js';

export interface StoreAppendOptions extends AppendOptions, RequestIds {
  /** Streams that must be at a version for the append to commit; they are not written. */
  checks?: AppendCheck[];
}

/**
 * Opens (or creates) the store in `options.dir`. Its events are typed by the service's events
 * (`defineService<Events>()`), or by naming them: `openStore<Events>({ dir })`. A store has one
 * writer: while another process (or this one) has it open, this fails with `STORE_IN_USE`.
 */
export async function openStore<Events extends AnyEvent = AnyEvent>(options: StoreOptions<Events>): Promise<Store<Events>> {
  return Store.open<Events>(options);
}

export class Store<Events extends AnyEvent = AnyEvent> {
  readonly options: ResolvedStoreOptions;
  private readonly pipeline: CommitPipeline;
  private readonly assembler: CommitAssembler;
  private readonly runner: TransactionRunner;
  private readonly reads: StoreReads;
  private readonly consumerRegistry = new ConsumerRegistry();
  /** Requests running, by client and request id (`RequestSlots`: see there why not a `Map`). */
  private readonly inFlight = new RequestSlots<Promise<unknown>>();
  private inFlightCount = 0;

  private constructor(options: ResolvedStoreOptions, wal: Wal, state: State) {
    this.options = options;
    this.pipeline = new CommitPipeline(options, wal, state);
    // The assembler subscribes to applied batches first: what it forgets is forgotten before
    // any other listener (the node's determinism check) or answered caller looks.
    this.assembler = new CommitAssembler(this.pipeline, options.platform);
    this.runner = new TransactionRunner(this.pipeline, this.assembler, options);
    this.reads = new StoreReads(this.pipeline, options.limits);
    registerReplicationHooks(this, new StoreReplicationHooks(this.pipeline, this.assembler, options, (command, args, ids) => this.run(command, args, ids, true)));
  }

  static async open<Events extends AnyEvent = AnyEvent>(options: StoreOptions<Events>): Promise<Store<Events>> {
    const resolved = resolveStoreOptions(options);
    const wal = await openWal(resolved);
    try {
      const state = await openState(resolved, wal);
      return new Store<Events>(resolved, wal, state);
    } catch (error) {
      await wal.close();
      throw error;
    }
  }

  /** The epoch this store writes records with (raised by promotion). */
  get epoch(): number {
    return this.pipeline.epoch;
  }

  /** Highest LSN released: every read sees it (the state applies released records when read). */
  get appliedLsn(): number {
    return this.pipeline.releasedLsn;
  }

  get lastLsn(): number {
    return this.pipeline.wal.lastLsn;
  }

  get isClosed(): boolean {
    return this.pipeline.isClosed;
  }

  /** Client sessions kept with their reply windows (not evicted). */
  get clientSessions(): number {
    return this.pipeline.state.sessionTable.liveCount;
  }

  /** What the store holds in memory against each limit (see `resources.ts`); cheap, changes nothing. */
  resourceUsage(): ResourceUsage {
    const { pipeline, assembler, runner, options } = this;
    const hooks = replicationHooksOf(this);
    return storeResourceUsage({ options, pipeline, assembler, runner, hooks, transactionsRunning: this.inFlightCount, requestIdsRunning: this.inFlight.size });
  }

  /** The failure that stopped the store (a disk or state write), if any. */
  get failedWith(): TxlogError | undefined {
    return this.pipeline.failedWith;
  }

  /**
   * Runs `command` once. Resolves with the handler's reply once the commit is released (every
   * read from then on sees it): in the WAL per the fsync policy (durable under `always`) and,
   * when replicated, acknowledged by the backup. A failed transaction is recorded too and rejects with its `TxlogError` every time it
   * is resent. A resend of a committed request (same client and request id) returns the stored
   * outcome and runs nothing.
   */
  execute(command: string, args?: unknown, ids: RequestIds = {}): Promise<unknown> {
    return this.run(command, args, ids, false);
  }

  /** `execute`; `argsOwned`: see `checkRequest` (a node's requests, through the replication hooks). */
  private run(command: string, args: unknown, ids: RequestIds, argsOwned: boolean): Promise<unknown> {
    try {
      this.pipeline.checkOpen();
      const request = checkRequest(command, args, ids, this.options.limits, argsOwned);
      const { clientId, requestId } = request;
      const keyed = requestId > 0;
      if (keyed) {
        const running = this.inFlight.get(clientId, requestId);
        if (running !== undefined) return running;
        const decided = this.assembler.decidedCommit(clientId, requestId);
        if (decided !== undefined) return this.pipeline.waitReleased(decided.lsn).then(() => outcomeOf(decided.payload));
        const known = this.lookupOutcome(clientId, requestId);
        if (known !== undefined) return known;
      }
      if (this.inFlightCount >= this.options.limits.transactionsInFlightMax) {
        throw txlogError('BUSY', `${this.options.limits.transactionsInFlightMax} transactions are running; retry later`);
      }
      this.inFlightCount += 1;
      // `finished` may run before `run` returns (a request refused before its handler ran).
      let finished = false;
      const running = this.runner.run(request, () => {
        finished = true;
        this.inFlightCount -= 1;
        if (keyed) this.inFlight.delete(clientId, requestId);
      });
      if (keyed && !finished) this.inFlight.set(clientId, requestId, running);
      if (this.options.metrics.enabled) this.observeTransaction(running);
      return running;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private observeTransaction(running: Promise<unknown>): void {
    const clock = this.options.platform.clock;
    const metrics = this.options.metrics;
    const startedMs = clock.monotonicMs();
    running.then(
      () => metrics.transactionFinished((clock.monotonicMs() - startedMs) / 1000, undefined),
      (error: unknown) => metrics.transactionFinished((clock.monotonicMs() - startedMs) / 1000, error instanceof TxlogError ? error.code : 'HANDLER_FAILED'),
    );
  }

  /**
   * Appends events to one stream (the built-in `append` command); with `checks`, only if each
   * checked stream is at its expected version too. Resolves once committed and applied.
   */
  async append(stream: string, events: Array<EventToAppend<Events>>, options: StoreAppendOptions = {}): Promise<AppendResult> {
    checkStreamName(stream, this.options.limits);
    const args: Record<string, unknown> = { stream, events };
    if (options.expectedVersion !== undefined) args['expectedVersion'] = options.expectedVersion;
    if (options.checks !== undefined) args['checks'] = options.checks;
    const ids: RequestIds = {};
    if (options.clientId !== undefined) ids.clientId = options.clientId;
    if (options.requestId !== undefined) ids.requestId = options.requestId;
    return (await this.execute('append', args, ids)) as AppendResult;
  }

  private lookupOutcome(clientId: string, requestId: number): Promise<unknown> | undefined {
    // A new request id costs no apply: only a resend of a known one (committed or expired in the
    // state as applied so far) looks again with every released commit applied, so that it gets the
    // answer a later read would give (the window and evictions move as commits apply).
    let lookup = this.pipeline.state.sessionTable.lookup(clientId, requestId, this.options.sessions);
    if (lookup.kind !== 'unknown' && this.pipeline.state.appliedLsn < this.pipeline.releasedLsn) {
      lookup = this.pipeline.appliedState().sessionTable.lookup(clientId, requestId, this.options.sessions);
    }
    switch (lookup.kind) {
      case 'unknown':
        return undefined;
      case 'expired':
        return Promise.reject(
          txlogError('REQUEST_EXPIRED', `request ${requestId} of client ${clientId} is older than the session window`, {
            clientId,
            requestId,
            latestRequestId: lookup.latest,
          }),
        );
      case 'committed':
        return lookup.outcome.error !== undefined
          ? Promise.reject(errorFromSerialized(lookup.outcome.error))
          : Promise.resolve(lookup.outcome.reply);
    }
  }

  /**
   * The client's highest request id with any trace in this store: committed, decided but not yet
   * released, running, or with a journaled call of a request that never committed (0 when
   * unknown). A restarted client continues above it; continuing above the committed ones only
   * would reuse the id of a request in flight, or hand a new request the old one's call results.
   */
  latestRequestId(clientId: string): number {
    const committed = this.pipeline.appliedState().sessionTable.latestRequestId(clientId);
    return Math.max(committed, this.inFlight.highestRequestId(clientId), this.assembler.highestPendingRequestId(clientId));
  }

  /** Resolves when every record appended so far is applied. */
  whenIdle(): Promise<void> {
    return this.pipeline.whenIdle();
  }

  /** Resolves when something is applied, or after `timeoutMs`. */
  async waitForEvents(timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    const timer = this.options.platform.clock.setTimeout(() => controller.abort(), timeoutMs);
    try {
      await this.pipeline.waitForApply(controller.signal);
    } finally {
      timer.cancel();
    }
  }

  /**
   * Reads a stream as applied (never a commit that could still be lost). Await it for one page
   * (`{ version, events }`, at most `readEventsMax` events), or iterate it (`for await`) for
   * every event from `fromVersion` on, forwards or backwards, a page at a time.
   */
  readStream(stream: string, options: ReadStreamOptions = {}): ReadResult<StreamSlice<Events>, RecordedEvent<Events>> {
    // The log holds what this store's appends were typed with: the union is the caller's claim.
    return this.reads.readStream(stream, options) as unknown as ReadResult<StreamSlice<Events>, RecordedEvent<Events>>;
  }

  /** Events in global commit order (or backwards); await for one page, iterate for all. */
  readAll(options: ReadAllOptions<Events['type']> = {}): ReadResult<Array<RecordedEvent<Events>>, RecordedEvent<Events>> {
    return this.reads.readAll(options) as unknown as ReadResult<Array<RecordedEvent<Events>>, RecordedEvent<Events>>;
  }

  /** The durable consumers as the applied state shows them (see `engine/consumer-list.ts`). */
  consumers(): ConsumerList {
    this.pipeline.checkOpen();
    return consumersOfState(this.pipeline.appliedState());
  }

  /** One page of a filtered scan and where the next starts (see `StoreReads.readAllPage`). */
  async readAllPage(options: ReadPageOptions<Events['type']> = {}): Promise<ReadPage<RecordedEvent<Events>>> {
    return this.reads.readAllPage(options) as ReadPage<RecordedEvent<Events>>;
  }

  /**
   * Every event from `fromPosition` (that passes `filter`) in global order, then live ones as
   * they are applied, pulled page by page at the subscriber's pace. Ends when the signal
   * aborts, the loop stops, or the store closes.
   */
  subscribe(options: SubscribeOptions<Events['type']> = {}): AsyncGenerator<RecordedEvent<Events>> {
    return this.reads.subscribe(options) as AsyncGenerator<RecordedEvent<Events>>;
  }

  /**
   * Starts a durable consumer (see `consumer.ts`): every event from its checkpoint on, in order,
   * to `handle`, whose txlog writes commit together with the checkpoint. Resolves once it runs;
   * rejects with CONSUMER_ACTIVE while another of the same name runs (unless `whenActive: 'wait'`).
   */
  consumer(options: ConsumerOptions<Events>): Promise<Consumer<Events>> {
    const pipeline = this.pipeline;
    const host: ConsumerHost = {
      execute: (command, args) => this.execute(command, args),
      readAll: (readOptions) => this.reads.readAll(readOptions),
      readStream: (stream, readOptions) => this.reads.readStream(stream, readOptions),
      waitForEvents: (_fromPosition, signal) => pipeline.waitForApply(signal),
      get isClosed() {
        return pipeline.isClosed;
      },
    };
    return Consumer.start(host, this.consumerRegistry, options);
  }

  /**
   * Writes a consistent copy of this store into `outDir` (absent or empty) while it keeps
   * serving: the state as of one LMDB snapshot and the WAL to its last whole record (see
   * `backup.ts`). Resolves with the manifest once the copy is complete and durable; opening
   * `outDir` with `openStore` is the restore.
   */
  backup(outDir: string, options: BackupOptions = {}): Promise<BackupManifest> {
    try {
      this.pipeline.checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    return backupStoreDirectory(this.options.dir, outDir, options, this.pipeline.appliedState());
  }

  /** For tests and `status`: the whole derived state in comparable form. */
  dumpState(): ReturnType<State['dump']> {
    return this.pipeline.appliedState().dump();
  }

  /**
   * Writes what is queued, applies what can be applied, and closes. A caller whose commit is in
   * the WAL but not yet released (a backup never acknowledged it) gets OUTCOME_UNKNOWN.
   */
  async close(): Promise<void> {
    if (this.pipeline.isClosed) return;
    await this.pipeline.wal.settle();
    // Let the resolved appends run their continuations and apply.
    await new Promise<void>((resolve) => this.options.platform.clock.setTimeout(resolve, 0));
    if (this.pipeline.isClosed) return;
    this.pipeline.close();
    await this.pipeline.wal.close();
    await this.pipeline.state.close();
  }
}

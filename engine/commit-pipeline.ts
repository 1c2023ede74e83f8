/**
 * The commit pipeline: what happens to a record between the WAL taking it and its caller being
 * answered, and then applied. It owns the records appended and not yet applied, the LSN the WAL
 * has resolved, the release gate (replication's acknowledged LSN), the released LSN, applying to
 * LMDB in LSN order (one LMDB transaction per batch), the waiters of each LSN, the listeners of
 * applied batches, and the store's failure.
 *
 * The rules it keeps:
 * - A record is released, and its caller answered, only once it is in the WAL per the fsync
 *   policy *and* at or below the release gate. A reader therefore never sees a commit that a
 *   crash or a failover could still lose.
 * - Applying to LMDB follows release, off the caller's path and in larger batches: when
 *   `applyBatchRecords` released records wait, `applyDelayMs` after the first of them, or at once
 *   when anything reads the state (`appliedState`) or waits for an LSN (`waitApplied`). So every
 *   read sees at least what had been released when it began.
 */
import type { Wal } from '../wal/wal.js';
import type { TimerHandle } from '../wal/platform.js';
import { assert } from '../wal/assert.js';
import { TxlogError, txlogError } from '../wal/errors.js';
import type { ResolvedStoreOptions } from './options.js';
import { PackedRecord } from './commit-for-apply.js';
import { LsnSlots } from './lsn-slots.js';
import type { CommitForApply } from './records.js';
import type { ApplicableRecord, State } from './state.js';

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

export type AppliedListener = (records: readonly ApplicableRecord[]) => void;

/**
 * Released records that make the apply run at once. Fewer wait up to `applyDelayMs` for more:
 * at low concurrency one LMDB transaction then carries many commits instead of one each. Not
 * more: holding records longer costs more than it saves (measured at 256 in flight, where a
 * 1024-record threshold made each transaction 10-20% dearer, the records living past young
 * collections).
 */
export const applyBatchRecords = 64;
/**
 * The longest a released record waits to be applied when nothing reads (milliseconds). At low
 * concurrency an apply costs its pages' writes whatever it carries (about seven system calls
 * here), so it pays to carry more: 10 against 2 gave a pair at one transaction in flight a p50
 * 10-16% lower and a fifth less CPU per transaction on both nodes (three alternated `txlog
 * bench` pairs); 25 gave nothing more.
 */
export const applyDelayMs = 10;

export class CommitPipeline {
  readonly wal: Wal;
  /** The derived state records are applied to (replaced when it is rebuilt after a cut). */
  state: State;
  /** The epoch this store writes its records with (raised by a promotion or by the primary's frames). */
  epoch: number;
  /** Set while this store must not write records of its own (a node that is not primary). */
  notWritable: TxlogError | undefined;
  private readonly options: ResolvedStoreOptions;
  /**
   * Records appended to the WAL and not yet applied (released or not), by LSN. This and the
   * waiters are `LsnSlots`, not `Map`s: see there why (the garbage collector).
   */
  private readonly pending = new LsnSlots<ApplicableRecord>();
  /** Callers of each LSN, answered when it is released. */
  private readonly releaseWaiters = new LsnSlots<Waiter[]>();
  /** Whoever needs the state to hold an LSN (readers, `whenIdle`). */
  private readonly appliedWaiters = new LsnSlots<Waiter[]>();
  /** Highest LSN whose WAL append resolved (written, or durable under `always`). */
  private walResolvedLsn: number;
  /** Highest LSN released: its caller answered, readers see it (the state applies it when read). */
  private releasedLsnValue: number;
  private releaseGate: () => number = () => Number.MAX_SAFE_INTEGER;
  private releaseScheduled = false;
  private applyTimer: TimerHandle | undefined;
  private readonly appliedListeners: AppliedListener[] = [];
  private readonly applyWakers = new Set<() => void>();
  private readonly failureListeners = new Set<(failure: TxlogError) => void>();
  private failure: TxlogError | undefined;
  private closed = false;

  constructor(options: ResolvedStoreOptions, wal: Wal, state: State) {
    this.options = options;
    this.wal = wal;
    this.state = state;
    this.walResolvedLsn = wal.lastLsn;
    this.releasedLsnValue = state.appliedLsn;
    this.epoch = Math.max(wal.lastEpoch, state.epoch);
  }

  /** Highest LSN released (answered, and visible to every read from now on). */
  get releasedLsn(): number {
    return this.releasedLsnValue;
  }

  /** The state with every released record applied: what every read goes through. */
  appliedState(): State {
    if (this.state.appliedLsn < this.releasedLsnValue) this.applyReleased();
    return this.state;
  }

  get failedWith(): TxlogError | undefined {
    return this.failure;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Records in the WAL and not yet applied. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Who waits (for resource usage): LSNs awaiting release, LSNs awaiting apply, the next batch. */
  get waiting(): { releaseLsns: number; appliedLsns: number; nextBatch: number } {
    return { releaseLsns: this.releaseWaiters.size, appliedLsns: this.appliedWaiters.size, nextBatch: this.applyWakers.size };
  }

  checkOpen(): void {
    if (this.closed) throw txlogError('CLOSED', 'the store is closed');
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Appends a record of this store's own and resolves when it is released. The LSN is known at once
   * (the WAL assigns it synchronously); `lsn` is undefined when the WAL refused the record outright.
   */
  append(type: number, payload: unknown, packed: Buffer): { lsn: number | undefined; released: Promise<number> } {
    let lsn: number;
    try {
      lsn = this.appendRecord(type, payload, packed);
    } catch (error) {
      return { lsn: undefined, released: Promise.reject(error) };
    }
    return { lsn, released: this.waitReleased(lsn).then(() => lsn) };
  }

  /**
   * `append` without promises, for the commit path: returns the record's LSN, or throws the
   * refusal of a store that may not write or of the WAL (nothing was appended then). Its caller
   * learns of the release through `whenReleased`.
   */
  appendRecord(type: number, payload: unknown, packed: Buffer, forApply?: CommitForApply): number {
    if (this.notWritable !== undefined) throw this.notWritable;
    const lsn = this.wal.nextLsn;
    const record: ApplicableRecord = forApply === undefined ? { lsn, type, payload } : new PackedRecord(lsn, type, payload, forApply);
    const refused = this.wal.appendPackedWith(
      type,
      packed,
      this.epoch,
      (written) => this.written(record, written),
      // Not inside the WAL's own failure handling: the store's failure listeners (a node closing
      // itself) run a microtask later, as they did when the WAL answered with a promise.
      (error) => queueMicrotask(() => this.fail(error)),
    );
    if (refused !== undefined) throw refused;
    this.pending.set(lsn, record);
    return lsn;
  }

  /**
   * `appendRecord` for a frame received from the primary (a backup), appended as it is: returns
   * why the WAL refused it (nothing was appended then), or undefined. Nobody waits for its
   * release; applying it follows, and a failed write or fdatasync fails the store.
   */
  appendFrame(record: ApplicableRecord, frame: Buffer): TxlogError | undefined {
    const refused = this.wal.appendFrameWith(
      frame,
      (written) => this.written(record, written),
      (error) => queueMicrotask(() => this.fail(error)),
    );
    if (refused === undefined) this.pending.set(record.lsn, record);
    return refused;
  }

  /** The WAL resolved a record (written, or durable under `always`). */
  private written(record: ApplicableRecord, lsn: number): void {
    // A record dropped meanwhile (a primary stepping down) no longer counts.
    if (this.pending.get(lsn) !== record) return;
    if (lsn > this.walResolvedLsn) this.walResolvedLsn = lsn;
    this.scheduleRelease();
  }

  /**
   * `waitReleased` with callbacks instead of a promise (the commit path's one waiter per
   * transaction). `released` runs synchronously when `lsn` is released already.
   */
  whenReleased(lsn: number, released: () => void, failed: (error: Error) => void): void {
    if (lsn <= this.releasedLsnValue) return released();
    if (this.failure !== undefined) return failed(outcomeUnknown(this.failure));
    this.addWaiter(this.releaseWaiters, lsn, { resolve: released, reject: failed });
  }

  /** Resolves when `lsn` is released; rejects when the store fails or gives up on it. */
  waitReleased(lsn: number): Promise<void> {
    if (lsn <= this.releasedLsnValue) return Promise.resolve();
    return this.wait(this.releaseWaiters, lsn);
  }

  /** Resolves when the state holds `lsn` (applying what is released at once); rejects like `waitReleased`. */
  waitApplied(lsn: number): Promise<void> {
    if (lsn <= this.releasedLsnValue) this.applyReleased();
    if (lsn <= this.state.appliedLsn) return Promise.resolve();
    return this.wait(this.appliedWaiters, lsn);
  }

  private wait(waiting: LsnSlots<Waiter[]>, lsn: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(outcomeUnknown(this.failure));
    if (this.closed) return Promise.reject(txlogError('CLOSED', 'the store is closed'));
    return new Promise<void>((resolve, reject) => this.addWaiter(waiting, lsn, { resolve, reject }));
  }

  private addWaiter(waiting: LsnSlots<Waiter[]>, lsn: number, waiter: Waiter): void {
    const waiters = waiting.get(lsn);
    if (waiters === undefined) waiting.set(lsn, [waiter]);
    else waiters.push(waiter);
  }

  /** Records are released (and callers answered) only up to the LSN `gate` returns. */
  setReleaseGate(gate: () => number): void {
    this.releaseGate = gate;
  }

  /** The gate moved: release what it now allows. */
  releaseMore(): void {
    if (this.options.metrics.enabled) this.options.metrics.released(this.releaseGate());
    this.scheduleRelease();
  }

  /**
   * Listeners see each applied batch, in the order they subscribed, synchronously after the LMDB
   * transaction and before any answered caller runs (their continuations are microtasks).
   */
  onApplied(listener: AppliedListener): () => void {
    this.appliedListeners.push(listener);
    return () => {
      const index = this.appliedListeners.indexOf(listener);
      if (index >= 0) this.appliedListeners.splice(index, 1);
    };
  }

  /** Called once if the store fails. */
  onFailure(listener: (failure: TxlogError) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  private scheduleRelease(): void {
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    queueMicrotask(() => {
      this.releaseScheduled = false;
      this.releaseReady();
    });
  }

  /** Releases every record the WAL resolved up to the gate, in LSN order, and answers its callers. */
  private releaseReady(): void {
    if (this.failure !== undefined || this.closed) return;
    const limit = Math.min(this.walResolvedLsn, this.releaseGate());
    const from = this.releasedLsnValue + 1;
    let lsn = this.releasedLsnValue;
    while (lsn < limit && this.pending.has(lsn + 1)) lsn += 1;
    if (lsn < from) return;
    this.releasedLsnValue = lsn;
    for (let released = from; released <= lsn; released++) {
      const waiters = this.releaseWaiters.get(released);
      if (waiters === undefined) continue;
      this.releaseWaiters.delete(released);
      for (const waiter of waiters) waiter.resolve();
    }
    if (this.appliedWaiters.size > 0 || lsn - this.state.appliedLsn >= applyBatchRecords) this.applyReleased();
    else this.applyTimer ??= this.options.platform.clock.setTimeout(() => this.applyReleased(), applyDelayMs);
  }

  /** Applies every released record not yet applied, in one LMDB transaction. */
  private applyReleased(): void {
    this.applyTimer?.cancel();
    this.applyTimer = undefined;
    if (this.failure !== undefined || this.closed) return;
    const batch: ApplicableRecord[] = [];
    for (let lsn = this.state.appliedLsn + 1; lsn <= this.releasedLsnValue; lsn++) {
      const record = this.pending.get(lsn);
      if (record === undefined) break;
      batch.push(record);
    }
    if (batch.length === 0) return;
    const metrics = this.options.metrics;
    const startedMs = metrics.enabled ? this.options.platform.clock.monotonicMs() : 0;
    try {
      this.state.apply(batch, this.options.sessions);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (metrics.enabled) metrics.applied(batch, (this.options.platform.clock.monotonicMs() - startedMs) / 1000);
    for (const record of batch) {
      this.pending.delete(record.lsn);
      const waiters = this.appliedWaiters.get(record.lsn);
      if (waiters === undefined) continue;
      this.appliedWaiters.delete(record.lsn);
      for (const waiter of waiters) waiter.resolve();
    }
    for (const listener of this.appliedListeners) listener(batch);
    const wakers = [...this.applyWakers];
    this.applyWakers.clear();
    for (const wake of wakers) wake();
  }

  /** A failed disk or state write: refuse everything from now on (an fsync error is not retried). */
  fail(error: unknown): void {
    if (this.failure !== undefined) return;
    // The WAL tells the writer of a record it may have written OUTCOME_UNKNOWN; the store's own
    // failure, which later requests get, is what went wrong (definite: they did nothing).
    const cause = error instanceof TxlogError && error.code === 'OUTCOME_UNKNOWN' && error.cause instanceof TxlogError ? error.cause : error;
    this.failure =
      cause instanceof TxlogError ? cause : txlogError('STORE_FAILED', `store failed: ${String(cause)}`, {}, cause);
    this.options.log(`store failed, refusing all requests: ${this.failure.message}`);
    // Whoever waits waits for a record the WAL took: it may be in the log (a restart would then
    // apply it), so its outcome is unknown, not failed.
    this.rejectWaiters(outcomeUnknown(this.failure));
    for (const listener of this.failureListeners) listener(this.failure);
  }

  /** Rejects every caller not yet answered, and whoever waits for an LSN not yet applied. */
  rejectWaiters(error: Error): void {
    const waiting = [...this.releaseWaiters.values(), ...this.appliedWaiters.values()];
    this.releaseWaiters.clear();
    this.appliedWaiters.clear();
    for (const waiters of waiting) for (const waiter of waiters) waiter.reject(error);
  }

  /**
   * Applies what was released, then forgets every record not released; their callers get
   * `error`. The WAL is the caller's to cut (a primary stepping down drops what it never released).
   */
  dropPending(error: Error): void {
    this.applyReleased();
    this.rejectWaiters(error);
    this.pending.clear();
  }

  /** The WAL was cut or rewritten under the pipeline: what it resolved is its new end. */
  resetToWal(): void {
    this.walResolvedLsn = this.wal.lastLsn;
    this.releasedLsnValue = Math.min(this.releasedLsnValue, this.wal.lastLsn);
  }

  /** The state was rebuilt under the pipeline (after a cut): it holds everything released. */
  resetToState(): void {
    assert(this.pending.size === 0, 'the state was rebuilt with records in flight');
    this.releasedLsnValue = this.state.appliedLsn;
  }

  /** Resolves when every record appended so far is applied (or the store closed or failed). */
  async whenIdle(): Promise<void> {
    while (this.pending.size > 0 && !this.closed && this.failure === undefined) {
      await this.waitApplied(this.wal.nextLsn - 1);
    }
  }

  /** Resolves at the next applied batch, when the store closes, or when `signal` aborts. */
  waitForApply(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.closed || signal?.aborted === true) return resolve();
      const wake = (): void => {
        signal?.removeEventListener('abort', wake);
        this.applyWakers.delete(wake);
        resolve();
      };
      this.applyWakers.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  /** Stops: callers still waiting hear that their commit's outcome is unknown; subscribers wake. */
  close(): void {
    // What was released is applied first, so a clean close leaves nothing for recovery to redo.
    this.applyReleased();
    this.closed = true;
    this.rejectWaiters(
      txlogError('OUTCOME_UNKNOWN', 'the store closed after this commit reached the WAL but before it was released; resend the same request id', {
        reason: 'CLOSED',
      }),
    );
    for (const wake of this.applyWakers) wake();
    this.applyWakers.clear();
  }
}

/** The answer to a caller whose record the WAL took before the store failed. */
function outcomeUnknown(failure: TxlogError): TxlogError {
  return txlogError(
    'OUTCOME_UNKNOWN',
    `the store failed after this commit reached the WAL (${failure.code}: ${failure.message}); it may be committed: resend the same request id once the store is reopened`,
    { reason: failure.code },
    failure,
  );
}

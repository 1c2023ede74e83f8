/**
 * The commit pipeline: what happens to a record between the WAL taking it and its caller being
 * answered. It owns the records appended and not yet applied, the LSN the WAL has resolved, the
 * release gate (replication's acknowledged LSN), applying to LMDB in LSN order (one LMDB
 * transaction per batch), the waiters of each LSN, the listeners of applied batches, and the
 * store's failure.
 *
 * The rule it keeps: a record is applied, and its waiters answered, only once it is in the WAL
 * per the fsync policy *and* at or below the release gate. A reader therefore never sees a
 * commit that a crash or a failover could still lose.
 */
import type { Wal } from '../wal/wal.js';
import { TxlogError, txlogError } from '../wal/errors.js';
import type { ResolvedStoreOptions } from './options.js';
import type { ApplicableRecord, State } from './state.js';

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

export type AppliedListener = (records: readonly ApplicableRecord[]) => void;

export class CommitPipeline {
  readonly wal: Wal;
  /** The derived state records are applied to (replaced when it is rebuilt after a cut). */
  state: State;
  /** The epoch this store writes its records with (raised by a promotion or by the primary's frames). */
  epoch: number;
  /** Set while this store must not write records of its own (a node that is not primary). */
  notWritable: TxlogError | undefined;
  private readonly options: ResolvedStoreOptions;
  /** Records appended to the WAL and not yet applied, by LSN. */
  private readonly pending = new Map<number, ApplicableRecord>();
  private readonly appliedWaiters = new Map<number, Waiter[]>();
  /** Highest LSN whose WAL append resolved (written, or durable under `always`). */
  private walResolvedLsn: number;
  private releaseGate: () => number = () => Number.MAX_SAFE_INTEGER;
  private applyScheduled = false;
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
    this.epoch = Math.max(wal.lastEpoch, state.epoch);
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

  checkOpen(): void {
    if (this.closed) throw txlogError('CLOSED', 'the store is closed');
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Appends a record of this store's own and returns when it is applied. The LSN is known at once
   * (the WAL assigns it synchronously); `lsn` is undefined when the WAL refused the record outright.
   */
  append(type: number, payload: unknown, packed: Buffer): { lsn: number | undefined; applied: Promise<number> } {
    if (this.notWritable !== undefined) return { lsn: undefined, applied: Promise.reject(this.notWritable) };
    const lsn = this.wal.nextLsn;
    const written = this.wal.appendPacked(type, packed, this.epoch);
    if (this.wal.nextLsn === lsn) return { lsn: undefined, applied: written };
    return { lsn, applied: this.track({ lsn, type, payload }, written) };
  }

  /** Tracks a record the WAL took (`written` resolves with its LSN); resolves when it is applied. */
  track(record: ApplicableRecord, written: Promise<number>): Promise<number> {
    this.pending.set(record.lsn, record);
    const applied = this.waitApplied(record.lsn).then(() => record.lsn);
    written.then(
      (lsn) => {
        // A record dropped meanwhile (a primary stepping down) no longer counts.
        if (this.pending.get(lsn) !== record) return;
        if (lsn > this.walResolvedLsn) this.walResolvedLsn = lsn;
        this.scheduleApply();
      },
      (error: unknown) => this.fail(error),
    );
    return applied;
  }

  /** Resolves when `lsn` is applied; rejects when the store fails or gives up on it. */
  waitApplied(lsn: number): Promise<void> {
    if (lsn <= this.state.appliedLsn) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(outcomeUnknown(this.failure));
    if (this.closed) return Promise.reject(txlogError('CLOSED', 'the store is closed'));
    return new Promise<void>((resolve, reject) => {
      const waiters = this.appliedWaiters.get(lsn);
      if (waiters === undefined) this.appliedWaiters.set(lsn, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
    });
  }

  /** Records are applied (and callers answered) only up to the LSN `gate` returns. */
  setReleaseGate(gate: () => number): void {
    this.releaseGate = gate;
  }

  /** The gate moved: apply what it now allows. */
  releaseMore(): void {
    if (this.options.metrics.enabled) this.options.metrics.released(this.releaseGate());
    this.scheduleApply();
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

  private scheduleApply(): void {
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    queueMicrotask(() => {
      this.applyScheduled = false;
      this.applyReady();
    });
  }

  private applyReady(): void {
    if (this.failure !== undefined || this.closed) return;
    const limit = Math.min(this.walResolvedLsn, this.releaseGate());
    const batch: ApplicableRecord[] = [];
    for (let lsn = this.state.appliedLsn + 1; lsn <= limit; lsn++) {
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
      this.appliedWaiters.delete(record.lsn);
      for (const waiter of waiters ?? []) waiter.resolve();
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

  rejectWaiters(error: Error): void {
    const waiting = [...this.appliedWaiters.values()];
    this.appliedWaiters.clear();
    for (const waiters of waiting) for (const waiter of waiters) waiter.reject(error);
  }

  /**
   * Forgets every record not yet applied; their callers get `error`. The WAL is the caller's to
   * cut (a primary stepping down drops what it never released).
   */
  dropPending(error: Error): void {
    this.rejectWaiters(error);
    this.pending.clear();
  }

  /** The WAL was cut or rewritten under the pipeline: what it resolved is its new end. */
  resetToWal(): void {
    this.walResolvedLsn = this.wal.lastLsn;
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

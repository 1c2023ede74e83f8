/**
 * The fsync policy applied to written batches. Under `always` a written batch waits here for an
 * fdatasync before its appends resolve: inline on the event-loop thread, or with
 * `syncOnWorkerThread` off the thread while the event loop goes on (one sync at a time; what is
 * written meanwhile waits for the next). Under `interval` a timer fdatasyncs at most
 * `fsyncIntervalMs` after a write; under `never` the OS flushes when it likes.
 *
 * Appends always resolve in LSN order: a batch resolves only after every batch before it.
 */
import { assert, assertNever } from './assert.js';
import { outcomeUnknown } from './errors.js';
import type { LogState, PendingAppend } from './log-state.js';
import type { TimerHandle } from './platform.js';

export interface SyncHooks {
  /** Runs a disk operation; a failure is recorded in `state.failure` instead of thrown. */
  guard(action: () => void): void;
  /** An off-thread sync finished (successfully): the appender may write or rotate now. */
  synced(): void;
  /** An off-thread sync failed: everything still waiting must be answered. */
  failed(): void;
}

export class SyncPolicy {
  /** Written batches waiting for an fdatasync (`fsync: 'always'`), in LSN order. */
  private awaitingSync: PendingAppend[] = [];
  private syncInFlight: Promise<void> | undefined;
  /** Appends in the off-thread sync now running (they left `awaitingSync` when it started). */
  private syncingRecords = 0;
  private syncTimer: TimerHandle | undefined;

  constructor(
    private readonly state: LogState,
    private readonly hooks: SyncHooks,
  ) {}

  /** A sync is running or written appends wait for one. */
  get busy(): boolean {
    return this.syncInFlight !== undefined || this.awaitingSync.length > 0;
  }

  /** Written appends not yet resolved: waiting for an fdatasync, or in the one running. */
  get waitingRecords(): number {
    return this.awaitingSync.length + this.syncingRecords;
  }

  /** The off-thread sync now running, if any. */
  get inFlight(): Promise<void> | undefined {
    return this.syncInFlight;
  }

  /** A batch was written: resolve it now, or once it is synced, as the policy says. */
  written(batch: readonly PendingAppend[]): void {
    const policy = this.state.options.fsync;
    switch (policy) {
      case 'always':
        // flush() starts the sync once every batch of this turn is written.
        for (const pending of batch) this.awaitingSync.push(pending);
        return;
      case 'interval':
        this.scheduleIntervalSync();
        break;
      case 'never':
        break;
      default:
        assertNever(policy, 'fsync policy');
    }
    for (const pending of batch) pending.resolve(pending.lsn);
  }

  /** Starts the fdatasync of what waits for one, unless one is running already. */
  start(): void {
    if (this.syncInFlight !== undefined || this.awaitingSync.length === 0) return;
    if (!this.state.options.syncOnWorkerThread) {
      this.syncAwaitingInline();
      return;
    }
    const fd = this.state.activeFd;
    assert(fd !== undefined, 'sync without an active segment');
    // Started before the batch leaves `awaitingSync`: if it throws, the batch is still there
    // for rejectAwaiting.
    const metrics = this.state.options.metrics;
    const startedMs = metrics.enabled ? this.monotonicMs() : 0;
    const synced = this.state.fileSystem.fdatasyncAsync(fd);
    const batch = this.awaitingSync;
    this.awaitingSync = [];
    this.syncingRecords = batch.length;
    const lastLsn = batch[batch.length - 1]!.lsn;
    this.syncInFlight = synced.then(
      () => {
        this.syncInFlight = undefined;
        this.syncingRecords = 0;
        if (metrics.enabled) metrics.walSynced((this.monotonicMs() - startedMs) / 1000);
        if (lastLsn > this.state.durableLsn) this.state.durableLsn = lastLsn;
        for (const pending of batch) pending.resolve(pending.lsn);
        this.hooks.synced();
      },
      (error: unknown) => {
        this.syncInFlight = undefined;
        this.syncingRecords = 0;
        this.hooks.guard(() => {
          throw error;
        });
        // Written, and perhaps synced in part: these records may be in the log.
        const unknown = outcomeUnknown(this.state.failure!);
        for (const pending of batch) pending.reject(unknown);
        this.hooks.failed();
      },
    );
  }

  /** fdatasync now on this thread and resolve every written batch (none may be in flight). */
  syncAwaitingInline(): void {
    if (this.awaitingSync.length === 0) return;
    assert(this.syncInFlight === undefined, 'inline sync while another sync is running');
    this.syncNow();
    const batch = this.awaitingSync;
    this.awaitingSync = [];
    for (const pending of batch) pending.resolve(pending.lsn);
  }

  /** fdatasyncs the active segment now, whatever the policy. */
  syncNow(): void {
    if (this.state.activeFd === undefined || this.state.durableLsn === this.state.writtenLsn) return;
    const metrics = this.state.options.metrics;
    const startedMs = metrics.enabled ? this.monotonicMs() : 0;
    this.state.fileSystem.fdatasync(this.state.activeFd);
    if (metrics.enabled) metrics.walSynced((this.monotonicMs() - startedMs) / 1000);
    this.state.durableLsn = this.state.writtenLsn;
  }

  private monotonicMs(): number {
    return this.state.options.platform.clock.monotonicMs();
  }

  /**
   * The log failed: written appends still waiting for their sync may be in the log, so they
   * learn that their outcome is unknown, not that they failed.
   */
  rejectAwaiting(): void {
    const unknown = outcomeUnknown(this.state.failure!);
    for (const pending of this.awaitingSync) pending.reject(unknown);
    this.awaitingSync = [];
  }

  stopTimer(): void {
    this.syncTimer?.cancel();
    this.syncTimer = undefined;
  }

  private scheduleIntervalSync(): void {
    if (this.syncTimer !== undefined) return;
    this.syncTimer = this.state.options.platform.clock.setTimeout(() => {
      this.syncTimer = undefined;
      if (this.state.closed || this.state.failure !== undefined) return;
      this.hooks.guard(() => this.syncNow());
    }, this.state.options.fsyncIntervalMs);
  }
}

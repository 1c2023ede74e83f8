/**
 * Group commit, the running appender: `enqueue` queues a frame; one flush per event-loop turn
 * writes everything queued (up to the batch limits and the room left in the active segment)
 * with one `writev` per batch, hands the batches to the sync policy, rotates to a new segment
 * when the next frame would not fit, and tells batch listeners (replication) what was written.
 * Appends that arrive while a batch is being written or synced form the next batch.
 *
 * A disk error is fatal for the log (an fdatasync that failed cannot be retried safely). What
 * waits is then answered by what may have reached the disk: an append whose frame was written,
 * or was being written, gets `OUTCOME_UNKNOWN` (it may be in the log: resend the same id); an
 * append never written gets the definite `IO_ERROR`.
 */
import { assert } from './assert.js';
import { TxlogError, outcomeUnknown, txlogError } from './errors.js';
import { segmentHeaderBytes } from './format.js';
import { activeSegment, type LogState, type PendingAppend } from './log-state.js';
import { createSegment, indexEveryBytes } from './segments.js';
import type { SpareSegment } from './spare-segment.js';
import { SyncPolicy } from './sync-policy.js';

export type BatchListener = (frames: readonly Buffer[], firstLsn: number, lastLsn: number) => void;

export class GroupCommit {
  private queue: PendingAppend[] = [];
  private flushScheduled = false;
  /** The next frame needs a new segment, which waits for the running sync: flush after it. */
  private flushAfterSync = false;
  private readonly batchListeners = new Set<BatchListener>();
  readonly sync: SyncPolicy;

  constructor(
    private readonly state: LogState,
    private readonly spare: SpareSegment,
    /** Called when records are written or the log fails (followers wake up). */
    private readonly changed: () => void,
  ) {
    this.sync = new SyncPolicy(state, {
      guard: (action) => this.guard(action),
      synced: () => this.afterSync(),
      failed: () => this.rejectAllWaiting(),
    });
  }

  get queuedRecords(): number {
    return this.queue.length;
  }

  /** Nothing is queued, written-and-waiting or being synced. */
  get idle(): boolean {
    return this.queue.length === 0 && !this.sync.busy;
  }

  onBatch(listener: BatchListener): () => void {
    this.batchListeners.add(listener);
    return () => this.batchListeners.delete(listener);
  }

  enqueue(frame: Buffer, lsn: number, epoch: number): Promise<number> {
    return new Promise<number>((resolve, reject) => this.enqueueWith(frame, lsn, epoch, resolve, reject));
  }

  /** `enqueue` telling `resolve`/`reject` instead of a promise of its own (one object less per record). */
  enqueueWith(frame: Buffer, lsn: number, epoch: number, resolve: (lsn: number) => void, reject: (error: Error) => void): void {
    this.state.nextLsn = lsn + 1;
    this.state.lastEpoch = epoch;
    this.queue.push({ lsn, frame, resolve, reject });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After this turn's I/O, not a microtask: every append made in this turn of the event
      // loop, and every request that arrived on a socket meanwhile, joins the same batch.
      this.state.options.platform.clock.setImmediate(() => this.flush());
    }
  }

  /** Writes everything queued now and starts its sync. Normally runs by itself once per turn. */
  flush(): void {
    this.flushScheduled = false;
    const written: PendingAppend[][] = [];
    try {
      this.writeQueued(written);
    } finally {
      // Listeners (replication) hear of the batches once their fdatasync has been started, so
      // sending them to the backup overlaps the sync instead of delaying it.
      for (const batch of written) this.notifyBatch(batch);
    }
  }

  /** Writes what is queued and waits until every append made so far has resolved. */
  async settle(): Promise<void> {
    this.flush();
    while (this.state.failure === undefined && !this.idle) {
      const inFlight = this.sync.inFlight;
      if (inFlight !== undefined) await inFlight;
      else if (this.queue.length > 0) this.flush();
      else this.guard(() => this.sync.syncAwaitingInline());
    }
  }

  /** Runs a disk operation; a failure becomes the log's failure instead of a throw. */
  guard(action: () => void): void {
    try {
      action();
    } catch (error) {
      const failure =
        error instanceof TxlogError ? error : txlogError('IO_ERROR', `WAL write failed: ${String(error)}`, {}, error);
      this.state.failure = failure;
      this.state.options.log(`failed, refusing further appends: ${failure.message}`);
      this.changed();
    }
  }

  private notifyBatch(batch: PendingAppend[]): void {
    if (this.batchListeners.size === 0) return;
    const frames = batch.map((pending) => pending.frame);
    const firstLsn = batch[0]!.lsn;
    const lastLsn = batch[batch.length - 1]!.lsn;
    for (const listener of this.batchListeners) {
      try {
        listener(frames, firstLsn, lastLsn);
      } catch (error) {
        this.state.options.log(`a batch listener failed: ${String(error)}`);
      }
    }
  }

  private writeQueued(written: PendingAppend[][]): void {
    while (this.queue.length > 0 && this.state.failure === undefined) {
      const batch = this.takeBatch();
      if (batch.length === 0) {
        // A segment is closed only once everything written to it is synced and resolved.
        if (this.sync.inFlight !== undefined) {
          this.flushAfterSync = true;
          return;
        }
        this.guard(() => this.sync.syncAwaitingInline());
        if (this.state.failure === undefined) this.guard(() => this.rotate());
        continue;
      }
      this.guard(() => this.writeBatch(batch));
      if (this.state.failure !== undefined) {
        // The writev may have written some or all of the batch before it failed.
        const unknown = outcomeUnknown(this.state.failure);
        for (const pending of batch) pending.reject(unknown);
        break;
      }
      written.push(batch);
      this.sync.written(batch);
    }
    if (this.state.failure === undefined) this.guard(() => this.sync.start());
    if (this.state.failure !== undefined) this.rejectAllWaiting();
  }

  private afterSync(): void {
    if (this.flushAfterSync || this.queue.length > 0) {
      this.flushAfterSync = false;
      this.flush();
      return;
    }
    this.guard(() => this.sync.start());
    if (this.state.failure !== undefined) this.rejectAllWaiting();
  }

  /**
   * fdatasyncs now, whatever the policy. A failure fails the log: whoever waits learns its
   * outcome is unknown, and the failure is thrown.
   */
  syncNow(): void {
    this.guard(() => this.sync.syncNow());
    if (this.state.failure === undefined) return;
    this.rejectAllWaiting();
    throw this.state.failure;
  }

  /** The log failed: written appends may be in it (outcome unknown); queued ones never will. */
  private rejectAllWaiting(): void {
    const failure = this.state.failure;
    assert(failure !== undefined, 'rejecting waiting appends of a log that has not failed');
    this.sync.rejectAwaiting();
    for (const pending of this.queue) pending.reject(failure);
    this.queue = [];
  }

  /** Takes from the queue what fits in the active segment and the batch limits. */
  private takeBatch(): PendingAppend[] {
    const options = this.state.options;
    let count = 0;
    let bytes = 0;
    const room = options.segmentBytes - this.state.writeOffset;
    while (count < this.queue.length && count < options.batchRecordsMax) {
      const size = this.queue[count]!.frame.length;
      if (bytes + size > room || (count > 0 && bytes + size > options.batchBytesMax)) break;
      bytes += size;
      count += 1;
    }
    return this.queue.splice(0, count);
  }

  private writeBatch(batch: PendingAppend[]): void {
    const state = this.state;
    const frames = batch.map((pending) => pending.frame);
    const lastLsn = batch[batch.length - 1]!.lsn;
    assert(state.activeFd !== undefined, 'no active segment');
    const metrics = state.options.metrics;
    const startedMs = metrics.enabled ? state.options.platform.clock.monotonicMs() : 0;
    const startOffset = state.writeOffset;
    state.fileSystem.writev(state.activeFd, frames, state.writeOffset);
    const active = activeSegment(state);
    for (const pending of batch) {
      if (state.writeOffset >= state.nextIndexOffset) {
        active.index?.push({ lsn: pending.lsn, offset: state.writeOffset });
        state.nextIndexOffset = state.writeOffset + indexEveryBytes;
      }
      state.writeOffset += pending.frame.length;
    }
    state.activeFileBytes = Math.max(state.activeFileBytes, state.writeOffset);
    active.lastLsn = lastLsn;
    state.writtenLsn = lastLsn;
    if (metrics.enabled) {
      metrics.walBatchWritten(batch.length, state.writeOffset - startOffset, (state.options.platform.clock.monotonicMs() - startedMs) / 1000);
    }
    this.changed();
  }

  /** Closes the full active segment and starts the next one at the next LSN. */
  private rotate(): void {
    const state = this.state;
    assert(state.activeFd !== undefined, 'rotate without an active segment');
    this.sync.syncNow();
    state.fileSystem.close(state.activeFd);
    state.activeFd = undefined;
    const firstLsn = state.writtenLsn + 1;
    const created = createSegment(state.options, firstLsn, this.spare.take());
    state.segments.push({ name: created.name, firstLsn, lastLsn: firstLsn - 1, index: [] });
    state.activeFd = created.fd;
    state.activeFileBytes = created.fileBytes;
    state.writeOffset = segmentHeaderBytes;
    state.nextIndexOffset = segmentHeaderBytes;
    if (state.options.preallocate) this.spare.prepare();
  }
}

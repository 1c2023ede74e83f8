/**
 * The write-ahead log: append-only segment files of checksummed frames, group commit, an fsync
 * policy, recovery that cuts a torn tail and refuses corruption in the middle, reading from any
 * LSN, following the live tail, and truncation at both ends.
 *
 * Group commit: `append` encodes the record, gives it the next LSN and queues it; one flush per
 * event-loop turn writes everything queued (up to the batch limits) with one `writev` and, under
 * `fsync: 'always'`, one fdatasync, then resolves the whole batch. Appends that arrive while a
 * batch is being written form the next batch.
 */
import * as path from 'node:path';
import { assert } from './assert.js';
import { TxlogError, txlogError } from './errors.js';
import {
  checkFrame,
  decodePayload,
  encodeFrame,
  encodePayload,
  epochMax,
  frameHeaderBytes,
  segmentHeaderBytes,
} from './format.js';
import { frameBytesMaxOf, resolveWalOptions, type ResolvedWalOptions, type WalOptions } from './options.js';
import type { FileSystem, TimerHandle } from './platform.js';
import { readSegmentHeader, scanFrames } from './scan.js';
import {
  corruptAt,
  createSegment,
  indexEveryBytes,
  recover,
  zeroRange,
  type OpenedState,
  type Segment,
  type SparseEntry,
  type TailState,
} from './segments.js';

export type { TailState } from './segments.js';

/** The next segment while it is being zero-filled (deleted at open: it may be incomplete). */
const spareFillingName = 'spare.tmp';
/** The next segment, zero-filled and fdatasync'd: kept across restarts and reused. */
const spareReadyName = 'spare.ready';

/** One record as read back from the log. */
export interface WalRecord {
  lsn: number;
  epoch: number;
  type: number;
  /** Segment file name holding the frame. */
  segment: string;
  /** Byte offset of the frame in its segment. */
  offset: number;
  /** Frame bytes, header included. */
  size: number;
  /** The whole frame, checksum verified (a copy; safe to keep or send). */
  frame: Buffer;
}

export function recordPayload(record: Pick<WalRecord, 'frame'>): unknown {
  return decodePayload(record.frame.subarray(frameHeaderBytes));
}



interface Pending {
  lsn: number;
  frame: Buffer;
  resolve: (lsn: number) => void;
  reject: (error: Error) => void;
}

export type BatchListener = (frames: readonly Buffer[], firstLsn: number, lastLsn: number) => void;

export class Wal {
  readonly options: ResolvedWalOptions;
  private readonly fileSystem: FileSystem;
  private readonly frameBytesMax: number;
  private readonly segments: Segment[];
  private activeFd: number | undefined;
  /** Where the next frame goes in the active segment. */
  private writeOffset: number;
  /** Size of the active segment file (larger than writeOffset when preallocated). */
  private activeFileBytes: number;
  private nextIndexOffset: number;
  private nextLsnValue: number;
  private writtenLsnValue: number;
  private durableLsnValue: number;
  private lastEpochValue: number;
  private queue: Pending[] = [];
  /** Written batches waiting for an fdatasync (`fsync: 'always'`), in LSN order. */
  private awaitingSync: Pending[] = [];
  private syncInFlight: Promise<void> | undefined;
  private flushAfterSync = false;
  private flushScheduled = false;
  private syncTimer: TimerHandle | undefined;
  private failure: TxlogError | undefined;
  private closed = false;
  private spare: { state: 'preparing' | 'ready' | 'failed'; done: Promise<void> } | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly batchListeners = new Set<BatchListener>();
  /** What recovery found at the tail when the log was opened. */
  readonly tail: TailState;

  private constructor(options: ResolvedWalOptions, state: OpenedState) {
    this.options = options;
    this.fileSystem = options.platform.fileSystem;
    this.frameBytesMax = frameBytesMaxOf(options);
    this.segments = state.segments;
    this.activeFd = state.activeFd;
    this.writeOffset = state.writeOffset;
    this.activeFileBytes = state.activeFileBytes;
    this.nextIndexOffset = state.writeOffset + indexEveryBytes;
    this.writtenLsnValue = state.lastLsn;
    this.durableLsnValue = state.lastLsn;
    this.nextLsnValue = state.lastLsn + 1;
    this.lastEpochValue = state.lastEpoch;
    this.tail = state.tail;
  }

  /**
   * Opens (creating if needed) the log in `options.dir` and recovers it: the tail segment is
   * scanned, a torn tail is cut back to the last whole record (reported in `tail` and logged),
   * and a bad record followed by valid ones fails with `CORRUPT_LOG` without modifying anything.
   * Older segments are verified when first read, and all of them by `txlog inspect --verify`.
   */
  static async open(options: WalOptions): Promise<Wal> {
    const resolved = resolveWalOptions(options);
    const state = recover(resolved);
    const wal = new Wal(resolved, state);
    if (state.tail.state === 'cut') {
      resolved.log(
        `cut a torn tail: ${state.tail.bytes} bytes at ${state.tail.segment} offset ${state.tail.offset} (${state.tail.reason})`,
      );
    }
    if (!resolved.readOnly && resolved.preallocate) wal.prepareSpare();
    return wal;
  }

  /** LSN of the first record still kept (1 unless `truncateBefore` dropped segments). */
  get firstLsn(): number {
    return this.segments[0]?.firstLsn ?? 1;
  }

  /** LSN of the last record written to the file (0 for an empty log). */
  get lastLsn(): number {
    return this.writtenLsnValue;
  }

  /** LSN of the last record known to be fdatasync'd. */
  get durableLsn(): number {
    return this.durableLsnValue;
  }

  /** Highest epoch of any record in the log (0 for an empty log). */
  get lastEpoch(): number {
    return this.lastEpochValue;
  }

  /** The LSN the next append will get. */
  get nextLsn(): number {
    return this.nextLsnValue;
  }

  get segmentNames(): string[] {
    return this.segments.map((segment) => segment.name);
  }

  /**
   * Called with each batch's frames once they are written and their fdatasync (if any) has been
   * started (or, inline, done), in LSN order.
   */
  onBatch(listener: BatchListener): () => void {
    this.batchListeners.add(listener);
    return () => this.batchListeners.delete(listener);
  }

  /**
   * Appends one record. Resolves with its LSN when it is written (`interval`, `never`) or
   * written and fdatasync'd (`always`). Fails with `TOO_LARGE` past `recordBytesMax`,
   * `NOT_SERIALIZABLE` when msgpack cannot carry the payload, `BUSY` when `queueRecordsMax`
   * records wait already, `CLOSED` after close, `IO_ERROR` once the disk has failed.
   */
  append(type: number, payload: unknown, epoch: number): Promise<number> {
    let packed: Buffer;
    try {
      packed = encodePayload(payload);
    } catch (error) {
      return Promise.reject(txlogError('NOT_SERIALIZABLE', 'record payload cannot be encoded as msgpack', {}, error));
    }
    return this.appendPacked(type, packed, epoch);
  }

  /** `append` of a payload already packed with `encodePayload` (saves packing it twice). */
  appendPacked(type: number, packed: Buffer, epoch: number): Promise<number> {
    if (packed.length > this.options.recordBytesMax) {
      return Promise.reject(
        txlogError('TOO_LARGE', `record of ${packed.length} bytes exceeds recordBytesMax ${this.options.recordBytesMax}`, {
          sizeBytes: packed.length,
          limitBytes: this.options.recordBytesMax,
        }),
      );
    }
    assert(epoch >= this.lastEpochValue && epoch <= epochMax, 'append with an epoch below the log\'s last epoch');
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    const lsn = this.nextLsnValue;
    return this.enqueue(encodeFrame({ type, epoch, lsn }, packed), lsn, epoch);
  }

  /**
   * Appends a frame encoded elsewhere (a backup writing what its primary sent). The frame must
   * verify, carry the next LSN and an epoch no lower than the log's; otherwise `BAD_REQUEST`.
   */
  appendFrame(frame: Buffer): Promise<number> {
    const view = checkFrame(frame, this.frameBytesMax);
    if (view === undefined || view.frameBytes !== frame.length) {
      return Promise.reject(txlogError('BAD_REQUEST', 'replicated frame fails its checksum or length'));
    }
    if (view.lsn !== this.nextLsnValue) {
      return Promise.reject(
        txlogError('BAD_REQUEST', `replicated frame has LSN ${view.lsn}; the log expects ${this.nextLsnValue}`, {
          lsn: view.lsn,
          expectedLsn: this.nextLsnValue,
        }),
      );
    }
    if (view.epoch < this.lastEpochValue) {
      return Promise.reject(
        txlogError('STALE_EPOCH', `replicated frame has epoch ${view.epoch} below the log's ${this.lastEpochValue}`),
      );
    }
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    return this.enqueue(frame, view.lsn, view.epoch);
  }

  private refusal(): TxlogError | undefined {
    if (this.closed) return txlogError('CLOSED', 'the WAL is closed');
    if (this.failure !== undefined) return this.failure;
    if (this.options.readOnly) return txlogError('BAD_REQUEST', 'the WAL is open read-only');
    if (this.queue.length >= this.options.queueRecordsMax) {
      return txlogError('BUSY', `WAL queue is full (${this.options.queueRecordsMax} records); retry later`);
    }
    return undefined;
  }

  private enqueue(frame: Buffer, lsn: number, epoch: number): Promise<number> {
    this.nextLsnValue = lsn + 1;
    this.lastEpochValue = epoch;
    const promise = new Promise<number>((resolve, reject) => this.queue.push({ lsn, frame, resolve, reject }));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate, not a microtask: every append made in this turn of the event loop, and
      // every request that arrived on a socket meanwhile, joins the same batch.
      setImmediate(() => this.flush());
    }
    return promise;
  }

  /**
   * Writes everything queued now (one `writev` per batch). Under `fsync: 'always'` the written
   * batches then wait for one fdatasync: inline, or with `syncOnWorkerThread` on a worker
   * thread while the event loop goes on (one sync at a time; what is written meanwhile waits
   * for the next). Appends always resolve in LSN order. Normally runs by itself once per
   * event-loop turn.
   */
  flush(): void {
    this.flushScheduled = false;
    const written: Pending[][] = [];
    try {
      this.writeQueued(written);
    } finally {
      // Listeners (replication) hear of the batches once their fdatasync has been started, so
      // sending them to the backup overlaps the sync instead of delaying it.
      for (const batch of written) this.notifyBatch(batch);
    }
  }

  private notifyBatch(batch: Pending[]): void {
    if (this.batchListeners.size === 0) return;
    const frames = batch.map((pending) => pending.frame);
    const firstLsn = batch[0]!.lsn;
    const lastLsn = batch[batch.length - 1]!.lsn;
    for (const listener of this.batchListeners) {
      try {
        listener(frames, firstLsn, lastLsn);
      } catch (error) {
        this.options.log(`a batch listener failed: ${String(error)}`);
      }
    }
  }

  private writeQueued(written: Pending[][]): void {
    while (this.queue.length > 0 && this.failure === undefined) {
      const batch = this.takeBatch();
      if (batch.length === 0) {
        // A segment is closed only once everything written to it is synced and resolved.
        if (this.syncInFlight !== undefined) {
          this.flushAfterSync = true;
          return;
        }
        this.guard(() => this.syncAwaitingInline());
        if (this.failure === undefined) this.guard(() => this.rotate());
        continue;
      }
      this.guard(() => this.writeBatch(batch));
      if (this.failure !== undefined) {
        for (const pending of batch) pending.reject(this.failure);
        break;
      }
      written.push(batch);
      if (this.options.fsync === 'always') {
        for (const pending of batch) this.awaitingSync.push(pending);
      } else {
        for (const pending of batch) pending.resolve(pending.lsn);
      }
    }
    if (this.failure === undefined) this.guard(() => this.startSync());
    if (this.failure !== undefined) this.rejectAllWaiting();
  }

  private startSync(): void {
    if (this.syncInFlight !== undefined || this.awaitingSync.length === 0) return;
    if (!this.options.syncOnWorkerThread) {
      this.syncAwaitingInline();
      return;
    }
    assert(this.activeFd !== undefined, 'sync without an active segment');
    // Started before the batch leaves `awaitingSync`: if it throws, the batch is still there
    // for rejectAllWaiting.
    const synced = this.fileSystem.fdatasyncAsync(this.activeFd);
    const batch = this.awaitingSync;
    this.awaitingSync = [];
    const lastLsn = batch[batch.length - 1]!.lsn;
    this.syncInFlight = synced.then(
      () => {
        this.syncInFlight = undefined;
        if (lastLsn > this.durableLsnValue) this.durableLsnValue = lastLsn;
        for (const pending of batch) pending.resolve(pending.lsn);
        if (this.flushAfterSync || this.queue.length > 0) {
          this.flushAfterSync = false;
          this.flush();
        } else {
          this.guard(() => this.startSync());
          if (this.failure !== undefined) this.rejectAllWaiting();
        }
      },
      (error: unknown) => {
        this.syncInFlight = undefined;
        this.guard(() => {
          throw error;
        });
        for (const pending of batch) pending.reject(this.failure!);
        this.rejectAllWaiting();
      },
    );
  }

  /** fdatasync now on this thread and resolve every written batch (none may be in flight). */
  private syncAwaitingInline(): void {
    if (this.awaitingSync.length === 0) return;
    assert(this.syncInFlight === undefined, 'inline sync while another sync is running');
    this.syncNow();
    const batch = this.awaitingSync;
    this.awaitingSync = [];
    for (const pending of batch) pending.resolve(pending.lsn);
  }

  private rejectAllWaiting(): void {
    const failure = this.failure!;
    for (const pending of this.awaitingSync) pending.reject(failure);
    for (const pending of this.queue) pending.reject(failure);
    this.awaitingSync = [];
    this.queue = [];
  }

  /** Writes what is queued and waits until every append made so far has resolved. */
  async settle(): Promise<void> {
    this.flush();
    while (this.failure === undefined && (this.syncInFlight !== undefined || this.awaitingSync.length > 0 || this.queue.length > 0)) {
      if (this.syncInFlight !== undefined) await this.syncInFlight;
      else if (this.queue.length > 0) this.flush();
      else this.guard(() => this.syncAwaitingInline());
    }
  }

  /** Takes from the queue what fits in the active segment and the batch limits. */
  private takeBatch(): Pending[] {
    let count = 0;
    let bytes = 0;
    const room = this.options.segmentBytes - this.writeOffset;
    while (count < this.queue.length && count < this.options.batchRecordsMax) {
      const size = this.queue[count]!.frame.length;
      if (bytes + size > room || (count > 0 && bytes + size > this.options.batchBytesMax)) break;
      bytes += size;
      count += 1;
    }
    return this.queue.splice(0, count);
  }

  private writeBatch(batch: Pending[]): void {
    const frames = batch.map((pending) => pending.frame);
    const lastLsn = batch[batch.length - 1]!.lsn;
    assert(this.activeFd !== undefined, 'no active segment');
    this.fileSystem.writev(this.activeFd, frames, this.writeOffset);
    const active = this.activeSegment();
    for (const pending of batch) {
      if (this.writeOffset >= this.nextIndexOffset) {
        active.index?.push({ lsn: pending.lsn, offset: this.writeOffset });
        this.nextIndexOffset = this.writeOffset + indexEveryBytes;
      }
      this.writeOffset += pending.frame.length;
    }
    this.activeFileBytes = Math.max(this.activeFileBytes, this.writeOffset);
    active.lastLsn = lastLsn;
    this.writtenLsnValue = lastLsn;
    switch (this.options.fsync) {
      case 'always':
        break; // flush() starts the sync: inline or on a worker thread.
      case 'interval':
        this.scheduleIntervalSync();
        break;
      case 'never':
        break;
    }
    this.wakeFollowers();
  }

  private scheduleIntervalSync(): void {
    if (this.syncTimer !== undefined) return;
    this.syncTimer = this.options.platform.clock.setTimeout(() => {
      this.syncTimer = undefined;
      if (this.closed || this.failure !== undefined) return;
      this.guard(() => this.syncNow());
    }, this.options.fsyncIntervalMs);
  }

  /** fdatasyncs the active segment now, whatever the policy. */
  syncNow(): void {
    if (this.activeFd === undefined || this.durableLsnValue === this.writtenLsnValue) return;
    this.fileSystem.fdatasync(this.activeFd);
    this.durableLsnValue = this.writtenLsnValue;
  }

  /** A disk error is fatal for the log: an fdatasync that failed cannot be retried safely. */
  private guard(action: () => void): void {
    try {
      action();
    } catch (error) {
      if (error instanceof TxlogError) this.failure = error;
      else this.failure = txlogError('IO_ERROR', `WAL write failed: ${String(error)}`, {}, error);
      this.options.log(`failed, refusing further appends: ${this.failure.message}`);
      this.wakeFollowers();
    }
  }

  private activeSegment(): Segment {
    const active = this.segments[this.segments.length - 1];
    assert(active !== undefined, 'log has no segment');
    return active;
  }

  /** Closes the full active segment and starts the next one at the next LSN. */
  private rotate(): void {
    assert(this.activeFd !== undefined, 'rotate without an active segment');
    this.syncNow();
    this.fileSystem.close(this.activeFd);
    this.activeFd = undefined;
    const firstLsn = this.writtenLsnValue + 1;
    const created = createSegment(this.options, firstLsn, this.takeSpare());
    this.segments.push({ name: created.name, firstLsn, lastLsn: firstLsn - 1, index: [] });
    this.activeFd = created.fd;
    this.activeFileBytes = created.fileBytes;
    this.writeOffset = segmentHeaderBytes;
    this.nextIndexOffset = segmentHeaderBytes;
    if (this.options.preallocate) this.prepareSpare();
  }

  private takeSpare(): string | undefined {
    if (this.spare?.state !== 'ready') return undefined;
    this.spare = undefined;
    return path.join(this.options.dir, spareReadyName);
  }

  /** Zero-fills the next segment in the background so rotation does not stall a commit. */
  private prepareSpare(): void {
    if (this.spare !== undefined) return;
    const fillingPath = path.join(this.options.dir, spareFillingName);
    const readyPath = path.join(this.options.dir, spareReadyName);
    if (this.fileSystem.stat(readyPath)?.sizeBytes === this.options.segmentBytes) {
      this.spare = { state: 'ready', done: Promise.resolve() };
      return;
    }
    const spare: { state: 'preparing' | 'ready' | 'failed'; done: Promise<void> } = {
      state: 'preparing',
      done: Promise.resolve(),
    };
    spare.done = (async () => {
      let fd: number | undefined;
      try {
        if (this.fileSystem.stat(readyPath) !== undefined) this.fileSystem.unlink(readyPath);
        if (this.fileSystem.stat(fillingPath) !== undefined) this.fileSystem.unlink(fillingPath);
        fd = this.fileSystem.open(fillingPath, 'wx');
        await this.fileSystem.fillZeros(fd, 0, this.options.segmentBytes);
        this.fileSystem.close(fd);
        fd = undefined;
        // Only a completely filled and synced spare gets the name that is trusted at open.
        this.fileSystem.rename(fillingPath, readyPath);
        spare.state = 'ready';
      } catch (error) {
        spare.state = 'failed';
        this.options.log(`could not preallocate the next segment (rotation will grow a file instead): ${String(error)}`);
      } finally {
        if (fd !== undefined) this.fileSystem.close(fd);
      }
    })();
    this.spare = spare;
  }

  private wakeFollowers(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /**
   * Reads records with `fromLsn <= lsn <= toLsn` (default: to the last written), verifying each
   * checksum. Throws `CORRUPT_LOG` (segment, offset, LSN) on a bad frame, `NOT_FOUND` when
   * `fromLsn` is below `firstLsn` (dropped by retention).
   */
  *read(fromLsn: number, toLsn: number = this.writtenLsnValue): Generator<WalRecord> {
    const from = Math.max(fromLsn, 1);
    if (from > toLsn) return;
    if (from < this.firstLsn) {
      throw txlogError('NOT_FOUND', `LSN ${from} is before the first kept LSN ${this.firstLsn}`, {
        lsn: from,
        firstLsn: this.firstLsn,
      });
    }
    let segmentIndex = this.segmentIndexOf(from);
    let lsn = from;
    while (lsn <= toLsn && segmentIndex < this.segments.length) {
      const segment = this.segments[segmentIndex]!;
      for (const record of this.readSegment(segment, segmentIndex, lsn, toLsn)) {
        yield record;
        lsn = record.lsn + 1;
      }
      segmentIndex += 1;
    }
  }

  private *readSegment(segment: Segment, segmentIndex: number, fromLsn: number, toLsn: number): Generator<WalRecord> {
    const isLast = segmentIndex === this.segments.length - 1;
    const limit = isLast ? Math.min(toLsn, this.writtenLsnValue) : toLsn;
    const expectedLast = isLast ? this.writtenLsnValue : this.segments[segmentIndex + 1]!.firstLsn - 1;
    const index = segment.index ?? this.indexSegment(segment, expectedLast);
    let start: SparseEntry = { lsn: segment.firstLsn, offset: segmentHeaderBytes };
    for (const entry of index) {
      if (entry.lsn > fromLsn) break;
      start = entry;
    }
    const filePath = path.join(this.options.dir, segment.name);
    const fd = this.fileSystem.open(filePath, 'r');
    try {
      const fileBytes = this.fileSystem.sizeOf(fd);
      const scan = scanFrames(this.fileSystem, fd, {
        fromOffset: start.offset,
        fileBytes,
        expectedLsn: start.lsn,
        frameBytesMax: this.frameBytesMax,
      });
      let lsn = start.lsn;
      for (;;) {
        const next = scan.next();
        if (next.done === true) {
          if (lsn <= Math.min(limit, expectedLast)) {
            throw corruptAt(segment.name, next.value.offset, lsn, next.value.kind === 'bad' ? next.value.reason : 'records missing');
          }
          return;
        }
        const frame = next.value;
        lsn = frame.lsn + 1;
        if (frame.lsn < fromLsn) continue;
        if (frame.lsn > limit) return;
        yield {
          lsn: frame.lsn,
          epoch: frame.epoch,
          type: frame.type,
          segment: segment.name,
          offset: frame.offset,
          size: frame.frameBytes,
          frame: Buffer.from(frame.frame),
        };
      }
    } finally {
      this.fileSystem.close(fd);
    }
  }

  /** Scans a sealed segment once, verifying it, to build its sparse index. */
  private indexSegment(segment: Segment, expectedLast: number): SparseEntry[] {
    const index: SparseEntry[] = [];
    const fd = this.fileSystem.open(path.join(this.options.dir, segment.name), 'r');
    try {
      const header = readSegmentHeader(this.fileSystem, fd, segment.name);
      if (header.firstLsn !== segment.firstLsn) {
        throw corruptAt(segment.name, 0, segment.firstLsn, `header says first LSN ${header.firstLsn}`);
      }
      const scan = scanFrames(this.fileSystem, fd, {
        fromOffset: segmentHeaderBytes,
        fileBytes: this.fileSystem.sizeOf(fd),
        expectedLsn: segment.firstLsn,
        frameBytesMax: this.frameBytesMax,
      });
      let nextIndexOffset = segmentHeaderBytes;
      let lastLsn = segment.firstLsn - 1;
      for (;;) {
        const next = scan.next();
        if (next.done === true) {
          if (lastLsn !== expectedLast) {
            const reason = next.value.kind === 'bad' ? next.value.reason : `segment ends at LSN ${lastLsn}, next starts at ${expectedLast + 1}`;
            throw corruptAt(segment.name, next.value.offset, lastLsn + 1, reason);
          }
          break;
        }
        if (next.value.offset >= nextIndexOffset) {
          index.push({ lsn: next.value.lsn, offset: next.value.offset });
          nextIndexOffset = next.value.offset + indexEveryBytes;
        }
        lastLsn = next.value.lsn;
      }
      segment.lastLsn = lastLsn;
    } finally {
      this.fileSystem.close(fd);
    }
    segment.index = index;
    return index;
  }

  private segmentIndexOf(lsn: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.segments[middle]!.firstLsn <= lsn) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /**
   * Follows the log from `fromLsn`: yields what is written, then waits for more, until the
   * signal aborts, the log closes, or the consumer stops. Reads come from the files, so a slow
   * follower holds no memory beyond one record.
   */
  async *follow(fromLsn: number, signal?: AbortSignal): AsyncGenerator<WalRecord> {
    let next = fromLsn;
    const aborted = (): boolean => signal?.aborted === true;
    while (!aborted() && !this.closed) {
      if (this.failure !== undefined) throw this.failure;
      if (next <= this.writtenLsnValue) {
        for (const record of this.read(next, this.writtenLsnValue)) {
          yield record;
          next = record.lsn + 1;
          if (aborted()) return;
        }
        continue;
      }
      await this.waitForWrite(signal);
    }
  }

  /** Resolves when a batch is written, the log closes or fails, or the signal aborts. */
  waitForWrite(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.closed || signal?.aborted === true) return resolve();
      const wake = (): void => {
        signal?.removeEventListener('abort', wake);
        this.waiters.delete(wake);
        resolve();
      };
      this.waiters.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  /**
   * Cuts every record after `lsn` (a rejoining node dropping a tail the new primary never had).
   * Durable when it returns. Fails with `BUSY` while appends are queued.
   */
  truncateAfter(lsn: number): void {
    this.checkIdle('truncateAfter');
    if (lsn >= this.writtenLsnValue) return;
    if (lsn < this.firstLsn - 1) {
      throw txlogError('BAD_REQUEST', `cannot truncate after ${lsn}: records before ${this.firstLsn} were dropped`);
    }
    if (this.activeFd !== undefined) this.fileSystem.close(this.activeFd);
    this.activeFd = undefined;
    // Drop whole segments that start after the cut, but keep at least the first one.
    while (this.segments.length > 1 && this.segments[this.segments.length - 1]!.firstLsn > lsn) {
      const dropped = this.segments.pop()!;
      this.fileSystem.unlink(path.join(this.options.dir, dropped.name));
    }
    const segment = this.activeSegment();
    const filePath = path.join(this.options.dir, segment.name);
    const fd = this.fileSystem.open(filePath, 'r+');
    const fileBytes = this.fileSystem.sizeOf(fd);
    let cutOffset = segmentHeaderBytes;
    let dataEnd = segmentHeaderBytes;
    const index: SparseEntry[] = [];
    const scan = scanFrames(this.fileSystem, fd, {
      fromOffset: segmentHeaderBytes,
      fileBytes,
      expectedLsn: segment.firstLsn,
      frameBytesMax: this.frameBytesMax,
    });
    let lastEpoch = 0;
    for (const frame of scan) {
      dataEnd = frame.offset + frame.frameBytes;
      if (frame.lsn <= lsn) {
        cutOffset = dataEnd;
        lastEpoch = frame.epoch;
        if (index.length === 0 || frame.offset >= index[index.length - 1]!.offset + indexEveryBytes) {
          index.push({ lsn: frame.lsn, offset: frame.offset });
        }
      }
    }
    // Cut with ftruncate, which a crash cannot leave half done. Zeroing in place could stop with
    // zeros in front of frames still valid, which the next open takes for corruption in the
    // middle of the log and refuses. The file then gets its size back (the hole reads as zeros)
    // and, when preallocating, real zeros again: zeros over zeros are safe to interrupt.
    if (dataEnd > cutOffset) {
      this.fileSystem.truncate(fd, cutOffset);
      this.fileSystem.fdatasync(fd);
      this.fileSystem.truncate(fd, fileBytes);
      if (this.options.preallocate) zeroRange(this.fileSystem, fd, cutOffset, dataEnd);
    }
    this.fileSystem.fdatasync(fd);
    this.fileSystem.syncDirectory(this.options.dir);
    segment.lastLsn = Math.max(lsn, segment.firstLsn - 1);
    segment.index = index;
    this.activeFd = fd;
    this.writeOffset = cutOffset;
    this.activeFileBytes = fileBytes;
    this.nextIndexOffset = cutOffset;
    this.writtenLsnValue = segment.lastLsn;
    this.durableLsnValue = segment.lastLsn;
    this.nextLsnValue = segment.lastLsn + 1;
    if (segment.lastLsn < segment.firstLsn && this.segments.length > 1) {
      // The active segment is empty: the epoch comes from the segment before it.
      lastEpoch = this.lastEpochOfSegment(this.segments.length - 2);
    }
    this.lastEpochValue = lastEpoch;
  }

  private lastEpochOfSegment(segmentIndex: number): number {
    const segment = this.segments[segmentIndex]!;
    let epoch = 0;
    for (const record of this.readSegment(segment, segmentIndex, segment.firstLsn, Number.MAX_SAFE_INTEGER)) {
      epoch = record.epoch;
    }
    return epoch;
  }

  /**
   * Drops whole segments all of whose records are below `lsn` (retention). The active segment is
   * never dropped. Returns the number of segments removed.
   */
  truncateBefore(lsn: number): number {
    if (this.closed) throw txlogError('CLOSED', 'the WAL is closed');
    if (this.options.readOnly) throw txlogError('BAD_REQUEST', 'the WAL is open read-only');
    let removed = 0;
    while (this.segments.length > 1 && this.segments[1]!.firstLsn <= lsn) {
      const dropped = this.segments.shift()!;
      this.fileSystem.unlink(path.join(this.options.dir, dropped.name));
      removed += 1;
    }
    if (removed > 0) this.fileSystem.syncDirectory(this.options.dir);
    return removed;
  }

  private checkIdle(operation: string): void {
    if (this.closed) throw txlogError('CLOSED', 'the WAL is closed');
    if (this.failure !== undefined) throw this.failure;
    if (this.options.readOnly) throw txlogError('BAD_REQUEST', 'the WAL is open read-only');
    if (this.queue.length > 0 || this.awaitingSync.length > 0 || this.syncInFlight !== undefined) {
      throw txlogError('BUSY', `${operation} needs a log with no appends in flight (await settle() first)`);
    }
  }

  /** Writes what is queued, fdatasyncs (whatever the policy) and closes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.options.readOnly) await this.settle();
    if (this.closed) return;
    if (this.failure === undefined && !this.options.readOnly) this.guard(() => this.syncNow());
    this.closed = true;
    this.syncTimer?.cancel();
    this.syncTimer = undefined;
    if (this.activeFd !== undefined) this.fileSystem.close(this.activeFd);
    this.activeFd = undefined;
    this.wakeFollowers();
    await this.spare?.done;
  }
}

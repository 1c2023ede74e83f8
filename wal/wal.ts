/**
 * The write-ahead log: append-only segment files of checksummed frames, group commit, an fsync
 * policy, recovery that cuts a torn tail and refuses corruption in the middle, reading from any
 * LSN, following the live tail, and truncation at both ends.
 *
 * `Wal` is the public face; the work is done by its parts, which share one `LogState`:
 * recovery and segment files (`segments.ts`, walking them with `segment-walker.ts`), group
 * commit (`group-commit.ts`) with its fsync policy (`sync-policy.ts`) and background spare
 * segment (`spare-segment.ts`), reading and following (`reader.ts`), truncation
 * (`truncation.ts`).
 */
import { assert } from './assert.js';
import { txlogError, type TxlogError } from './errors.js';
import { checkFrame, encodeFrame, encodePayload, epochMax } from './format.js';
import { GroupCommit, type BatchListener } from './group-commit.js';
import { firstLsnOf, logStateOf, writeRefusal, type LogState } from './log-state.js';
import { resolveWalOptions, type ResolvedWalOptions, type WalOptions } from './options.js';
import type { DirectoryLock } from './platform.js';
import { LogReader, type WalRecord } from './reader.js';
import { recover, type TailState } from './segments.js';
import { SpareSegment } from './spare-segment.js';
import { truncateAfter, truncateBefore } from './truncation.js';

export type { TailState } from './segments.js';
export type { BatchListener } from './group-commit.js';
export { recordPayload, type WalRecord } from './reader.js';

export class Wal {
  readonly options: ResolvedWalOptions;
  /** What recovery found at the tail when the log was opened. */
  readonly tail: TailState;
  private readonly state: LogState;
  private readonly spare: SpareSegment;
  private readonly reader: LogReader;
  private readonly groupCommit: GroupCommit;
  /** Held from open to close by a WAL open for writing: one writer per directory. */
  private readonly lock: DirectoryLock | undefined;

  private constructor(options: ResolvedWalOptions, state: LogState, tail: TailState, lock: DirectoryLock | undefined) {
    this.options = options;
    this.lock = lock;
    this.tail = tail;
    this.state = state;
    this.spare = new SpareSegment(options);
    this.reader = new LogReader(state);
    this.groupCommit = new GroupCommit(state, this.spare, () => this.reader.wake());
  }

  /**
   * Opens (creating if needed) the log in `options.dir` and recovers it: the tail segment is
   * scanned, a torn tail is cut back to the last whole record (reported in `tail` and logged),
   * and a bad record followed by valid ones fails with `CORRUPT_LOG` without modifying anything.
   * Older segments are verified when first read, and all of them by `txlog inspect --verify`.
   * A disk that fails (too small for a new segment, say) fails with `IO_ERROR`. A log that is
   * open for writing elsewhere (another process, or another open in this one) is refused with
   * `STORE_IN_USE` before anything is read or written; read-only opens take no lock.
   */
  static async open(options: WalOptions): Promise<Wal> {
    const resolved = resolveWalOptions(options);
    const lock = resolved.readOnly ? undefined : await lockLog(resolved);
    let opened: ReturnType<typeof recover>;
    try {
      opened = recover(resolved);
    } catch (error) {
      await lock?.release();
      throw error;
    }
    const wal = new Wal(resolved, logStateOf(resolved, opened), opened.tail, lock);
    if (opened.tail.state === 'cut') {
      resolved.log(
        `cut a torn tail: ${opened.tail.bytes} bytes at ${opened.tail.segment} offset ${opened.tail.offset} (${opened.tail.reason})`,
      );
    }
    if (!resolved.readOnly && resolved.preallocate) wal.spare.prepare();
    return wal;
  }

  /** LSN of the first record still kept (1 unless `truncateBefore` dropped segments). */
  get firstLsn(): number {
    return firstLsnOf(this.state);
  }

  /** LSN of the last record written to the file (0 for an empty log). */
  get lastLsn(): number {
    return this.state.writtenLsn;
  }

  /** LSN of the last record known to be fdatasync'd. */
  get durableLsn(): number {
    return this.state.durableLsn;
  }

  /** Highest epoch of any record in the log (0 for an empty log). */
  get lastEpoch(): number {
    return this.state.lastEpoch;
  }

  /** The LSN the next append will get. */
  get nextLsn(): number {
    return this.state.nextLsn;
  }

  /**
   * Appends not yet resolved: queued to be written, or written and waiting for their fdatasync.
   * At most `queueRecordsMax`; past it `append` fails with BUSY.
   */
  get appendsWaiting(): number {
    return this.groupCommit.queuedRecords + this.groupCommit.sync.waitingRecords;
  }

  /**
   * Segments held in memory, each with its sparse index (an entry per 64 KiB of it written or
   * read since open): this grows with the log, which the store never trims.
   */
  get segmentCount(): number {
    return this.state.segments.length;
  }

  get segmentNames(): string[] {
    return this.state.segments.map((segment) => segment.name);
  }

  /**
   * Called with each batch's frames once they are written and their fdatasync (if any) has been
   * started (or, inline, done), in LSN order.
   */
  onBatch(listener: BatchListener): () => void {
    return this.groupCommit.onBatch(listener);
  }

  /**
   * Appends one record. Resolves with its LSN when it is written (`interval`, `never`) or
   * written and fdatasync'd (`always`). Fails with `TOO_LARGE` past `recordBytesMax`,
   * `NOT_SERIALIZABLE` when msgpack cannot carry the payload, `BUSY` when `queueRecordsMax`
   * records wait already, `CLOSED` after close, `IO_ERROR` once the disk has failed (the record
   * is not in the log), `OUTCOME_UNKNOWN` when the disk failed after the record was (or may have
   * been) written: it may be in the log, so the caller resends the same request id.
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
    return new Promise<number>((resolve, reject) => {
      const refused = this.appendPackedWith(type, packed, epoch, resolve, reject);
      if (refused !== undefined) reject(refused);
    });
  }

  /**
   * `appendPacked` without a promise: returns the refusal at once (and calls neither callback),
   * or takes the record, whose LSN is `nextLsn` before the call, and calls `resolve` or `reject`
   * as `append`'s promise would settle. The commit path appends this way: a promise per record
   * is garbage the batch does not need.
   */
  appendPackedWith(type: number, packed: Buffer, epoch: number, resolve: (lsn: number) => void, reject: (error: Error) => void): TxlogError | undefined {
    const recordBytesMax = this.options.recordBytesMax;
    if (packed.length > recordBytesMax) {
      return txlogError('TOO_LARGE', `record of ${packed.length} bytes exceeds recordBytesMax ${recordBytesMax}`, {
        sizeBytes: packed.length,
        limitBytes: recordBytesMax,
      });
    }
    assert(epoch >= this.state.lastEpoch && epoch <= epochMax, 'append with an epoch below the log\'s last epoch');
    const refused = this.refusal();
    if (refused !== undefined) return refused;
    const lsn = this.state.nextLsn;
    this.groupCommit.enqueueWith(encodeFrame({ type, epoch, lsn }, packed), lsn, epoch, resolve, reject);
    return undefined;
  }

  /**
   * Appends a frame encoded elsewhere (a backup writing what its primary sent). The frame must
   * verify, carry the next LSN and an epoch no lower than the log's; otherwise `BAD_REQUEST`.
   */
  appendFrame(frame: Buffer): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const refused = this.appendFrameWith(frame, resolve, reject);
      if (refused !== undefined) reject(refused);
    });
  }

  /**
   * `appendFrame` without a promise: returns why the frame is refused at once (and calls neither
   * callback), or takes it and calls `resolve` or `reject` as `appendFrame`'s promise would settle.
   */
  appendFrameWith(frame: Buffer, resolve: (lsn: number) => void, reject: (error: Error) => void): TxlogError | undefined {
    const view = checkFrame(frame, this.state.frameBytesMax);
    if (view === undefined || view.frameBytes !== frame.length) {
      return txlogError('BAD_REQUEST', 'replicated frame fails its checksum or length');
    }
    const expectedLsn = this.state.nextLsn;
    if (view.lsn !== expectedLsn) {
      return txlogError('BAD_REQUEST', `replicated frame has LSN ${view.lsn}; the log expects ${expectedLsn}`, { lsn: view.lsn, expectedLsn });
    }
    if (view.epoch < this.state.lastEpoch) {
      return txlogError('STALE_EPOCH', `replicated frame has epoch ${view.epoch} below the log's ${this.state.lastEpoch}`);
    }
    const refused = this.refusal();
    if (refused !== undefined) return refused;
    this.groupCommit.enqueueWith(frame, view.lsn, view.epoch, resolve, reject);
    return undefined;
  }

  private refusal(): ReturnType<typeof writeRefusal> {
    const refused = writeRefusal(this.state);
    if (refused !== undefined) return refused;
    const queueRecordsMax = this.options.queueRecordsMax;
    // Written appends that wait for their fdatasync count too: with the sync off the thread (a
    // backup catching up over a fast link onto a slow disk) they pile up behind it, not in the
    // queue, and each holds its frame until it resolves.
    if (this.appendsWaiting >= queueRecordsMax) {
      return txlogError('BUSY', `WAL queue is full (${queueRecordsMax} appends queued or awaiting their fdatasync); retry later`);
    }
    return undefined;
  }

  /**
   * Writes everything queued now (one `writev` per batch). Under `fsync: 'always'` the written
   * batches then wait for one fdatasync: inline, or with `syncOnWorkerThread` off the
   * event-loop thread while the event loop goes on. Appends always resolve in LSN order.
   * Normally runs by itself once per event-loop turn.
   */
  flush(): void {
    this.groupCommit.flush();
  }

  /** Writes what is queued and waits until every append made so far has resolved. */
  settle(): Promise<void> {
    return this.groupCommit.settle();
  }

  /**
   * fdatasyncs the active segment now, whatever the policy. A failed fdatasync fails the log
   * (after one, what reached the disk is unknown) and throws that failure (`IO_ERROR`).
   */
  syncNow(): void {
    const refused = writeRefusal(this.state);
    if (refused !== undefined) throw refused;
    this.groupCommit.syncNow();
  }

  /**
   * Reads records with `fromLsn <= lsn <= toLsn` (default: to the last written), verifying each
   * checksum. Throws `CORRUPT_LOG` (segment, offset, LSN) on a bad frame, `NOT_FOUND` when
   * `fromLsn` is below `firstLsn` (dropped by retention).
   */
  read(fromLsn: number, toLsn: number = this.state.writtenLsn): Generator<WalRecord> {
    return this.reader.read(fromLsn, toLsn);
  }

  /**
   * Follows the log from `fromLsn`: yields what is written, then waits for more, until the
   * signal aborts, the log closes, or the consumer stops. Reads come from the files, so a slow
   * follower holds no memory beyond one record.
   */
  follow(fromLsn: number, signal?: AbortSignal): AsyncGenerator<WalRecord> {
    return this.reader.follow(fromLsn, signal);
  }

  /** Resolves when a batch is written, the log closes or fails, or the signal aborts. */
  waitForWrite(signal?: AbortSignal): Promise<void> {
    return this.reader.waitForWrite(signal);
  }

  /**
   * Cuts every record after `lsn` (a rejoining node dropping a tail the new primary never had).
   * Durable when it returns. Fails with `BUSY` while appends are queued.
   */
  truncateAfter(lsn: number): void {
    const refused = writeRefusal(this.state);
    if (refused !== undefined) throw refused;
    if (!this.groupCommit.idle) {
      throw txlogError('BUSY', 'truncateAfter needs a log with no appends in flight (await settle() first)');
    }
    truncateAfter(this.state, this.reader, lsn);
  }

  /**
   * Drops whole segments all of whose records are below `lsn` (retention). The active segment is
   * never dropped. Returns the number of segments removed.
   */
  truncateBefore(lsn: number): number {
    if (this.state.closed) throw txlogError('CLOSED', 'the WAL is closed');
    if (this.options.readOnly) throw txlogError('BAD_REQUEST', 'the WAL is open read-only');
    return truncateBefore(this.state, lsn);
  }

  /** Writes what is queued, fdatasyncs (whatever the policy) and closes. Idempotent. */
  async close(): Promise<void> {
    const state = this.state;
    if (state.closed) return;
    if (!this.options.readOnly) await this.settle();
    if (state.closed) return;
    if (state.failure === undefined && !this.options.readOnly) this.groupCommit.guard(() => this.groupCommit.sync.syncNow());
    state.closed = true;
    try {
      this.groupCommit.sync.stopTimer();
      if (state.activeFd !== undefined) state.fileSystem.close(state.activeFd);
      state.activeFd = undefined;
      this.reader.wake();
      await this.spare.settled();
    } finally {
      // Whatever failed above, a closed log is no writer: the store may be opened again.
      await this.lock?.release();
    }
  }
}

/**
 * Creates the log's directory if need be and takes its lock, or fails with `STORE_IN_USE`. A
 * path that is not a directory is refused by `recover` next (`NOT_A_LOG`), under the lock.
 */
async function lockLog(options: ResolvedWalOptions): Promise<DirectoryLock> {
  const fileSystem = options.platform.fileSystem;
  if (fileSystem.stat(options.dir) === undefined) fileSystem.mkdirp(options.dir);
  const lock = await fileSystem.lockDirectory(options.dir);
  if (lock === undefined) {
    throw txlogError('STORE_IN_USE', `the WAL in ${options.dir} is open for writing elsewhere (another process, or another open in this one); a store has one writer`, { dir: options.dir });
  }
  return lock;
}

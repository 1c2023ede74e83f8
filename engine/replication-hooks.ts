/**
 * What the engine offers replication, and nothing else uses: the release gate, writing and
 * cutting the log as a primary or a backup, epochs, and the log positions and batches the node
 * streams. These are not methods of `Store`, so a user's `store.` shows none of them; the node
 * gets them with `replicationHooksOf(store)`.
 */
import { assert } from '../wal/assert.js';
import { TxlogError, txlogError } from '../wal/errors.js';
import { encodePayload, framePayload } from '../wal/format.js';
import { recordPayload, type BatchListener, type Wal, type WalRecord } from '../wal/wal.js';
import type { CommitAssembler } from './commit-assembler.js';
import type { AppliedListener, CommitPipeline } from './commit-pipeline.js';
import type { ResolvedStoreOptions } from './options.js';
import { commitForApply, readCommitForApply } from './commit-for-apply.js';
import { recordTypes, type ApplicableRecord, type CommitForApply, type CommitPayload, type EpochPayload } from './records.js';
import { journalFromWal } from './replay.js';
import { openState, stateDirOf } from './recovery.js';
import type { StreamSlice } from './service.js';
import type { RequestIds } from './requests.js';
import { State, type JournalEntry } from './state.js';

/** A replicated frame's LSN, and `refused` when it was not appended and why. */
export interface ReplicatedAppend {
  lsn: number;
  refused?: TxlogError;
}

export interface ReplicationHooks {
  /** The epoch this store writes records with. */
  readonly epoch: number;
  readonly lastLsn: number;
  readonly nextLsn: number;
  /** Epoch of the last record in the WAL. */
  readonly lastEpoch: number;
  /** Highest LSN known fdatasync'd. */
  readonly durableLsn: number;
  /** Records from the WAL, `fromLsn` to `toLsn` (default: the last written). */
  readRecords(fromLsn: number, toLsn?: number): Iterable<WalRecord>;
  /** The journal record at `lsn`, read from the WAL, or undefined. */
  journalEntryAt(lsn: number): JournalEntry | undefined;
  /** Hears each WAL batch once written, while its fdatasync runs (the primary's live stream). */
  onBatch(listener: BatchListener): void;
  /** Each applied batch (the backup re-executes commits from here). */
  onApplied(listener: AppliedListener): () => void;
  onFailure(listener: (failure: TxlogError) => void): () => void;
  readonly failedWith: TxlogError | undefined;

  /** A node writes records of its own only while primary; otherwise they fail with `error`. */
  setWritable(writable: boolean, error?: TxlogError): void;
  /**
   * Writes an epoch record (a node becoming primary) and makes it durable at once whatever the
   * fsync policy: fencing depends on it. Returns its LSN; serve nothing before it is applied
   * (`waitApplied`), which in a pair also means the backup has it.
   */
  beginEpoch(epoch: number, nodeId: string): number;
  /** Raises the epoch without writing (a backup learning its primary's epoch). */
  observeEpoch(epoch: number): void;
  /** The last LSN this log's history wrote in `epoch` (where a joining backup is cut back to). */
  endOfEpoch(epoch: number): number;
  /** Epoch records begun here that `endOfEpoch` remembers until the state has them (at most one). */
  readonly epochsBegun: number;

  /** Records are released (and callers answered) only up to the LSN `gate` returns. */
  setReleaseGate(gate: () => number): void;
  /** The gate moved. */
  releaseMore(): void;
  waitApplied(lsn: number): Promise<void>;
  whenIdle(): Promise<void>;
  /**
   * Fails every commit not yet applied with `error` (a primary that lost its backup). The
   * records stay in the WAL: their outcome is unknown to the caller, who resends.
   */
  failUnreleased(error: TxlogError): void;
  /**
   * Drops every record not yet applied, from memory and from the WAL (a primary stepping down:
   * what it never released may be missing from the new primary's log). Their callers get `error`.
   */
  dropUnapplied(error: TxlogError): Promise<void>;

  /**
   * `Store.execute` for args nobody else holds (a request decoded from a client's frame): they
   * are checked and recorded as they are, without the private copy `execute` makes.
   */
  executeOwned(command: string, args: unknown, ids: RequestIds): Promise<unknown>;

  /** Backup: appends a frame received from the primary, as it is. */
  appendReplicated(frame: Buffer): ReplicatedAppend;
  /** Cuts the WAL after `lsn` (a rejoining node), rebuilding the state if it had applied any of it. */
  truncateAfter(lsn: number): Promise<void>;
  /** `readStream` as of a version (re-execution on a backup). */
  readStreamAsOf(stream: string, fromVersion: number, maxCount: number, version: number): StreamSlice;
}

const hooksByStore = new WeakMap<object, ReplicationHooks>();

/** The replication hooks of a store (see `ReplicationHooks`). */
export function replicationHooksOf(store: object): ReplicationHooks {
  const hooks = hooksByStore.get(store);
  assert(hooks !== undefined, 'replicationHooksOf needs a Store');
  return hooks;
}

/** Called once by the store's constructor. */
export function registerReplicationHooks(store: object, hooks: ReplicationHooks): void {
  hooksByStore.set(store, hooks);
}

export class StoreReplicationHooks implements ReplicationHooks {
  /** Epochs this store began ([epoch, LSN of its record]), applied or not yet. */
  private readonly begunEpochs: Array<[number, number]> = [];

  constructor(
    private readonly pipeline: CommitPipeline,
    private readonly assembler: CommitAssembler,
    private readonly options: ResolvedStoreOptions,
    readonly executeOwned: (command: string, args: unknown, ids: RequestIds) => Promise<unknown>,
  ) {}

  private get wal(): Wal {
    return this.pipeline.wal;
  }

  get epoch(): number {
    return this.pipeline.epoch;
  }
  get lastLsn(): number {
    return this.wal.lastLsn;
  }
  get nextLsn(): number {
    return this.wal.nextLsn;
  }
  get lastEpoch(): number {
    return this.wal.lastEpoch;
  }
  get durableLsn(): number {
    return this.wal.durableLsn;
  }
  get failedWith(): TxlogError | undefined {
    return this.pipeline.failedWith;
  }

  readRecords(fromLsn: number, toLsn?: number): Iterable<WalRecord> {
    return toLsn === undefined ? this.wal.read(fromLsn) : this.wal.read(fromLsn, toLsn);
  }

  journalEntryAt(lsn: number): JournalEntry | undefined {
    return journalFromWal(this.wal, lsn);
  }

  onBatch(listener: BatchListener): void {
    this.wal.onBatch(listener);
  }

  onApplied(listener: AppliedListener): () => void {
    return this.pipeline.onApplied(listener);
  }

  onFailure(listener: (failure: TxlogError) => void): () => void {
    return this.pipeline.onFailure(listener);
  }

  setWritable(writable: boolean, error?: TxlogError): void {
    this.pipeline.notWritable = writable ? undefined : (error ?? txlogError('NOT_PRIMARY', 'this node is not the primary'));
  }

  beginEpoch(epoch: number, nodeId: string): number {
    assert(epoch > this.pipeline.epoch, 'a new epoch must be higher');
    this.pipeline.epoch = epoch;
    const payload: EpochPayload = { epoch, fromLsn: this.wal.nextLsn - 1, nodeId, atMs: this.options.platform.clock.nowMs() };
    const appended = this.pipeline.append(recordTypes.epoch, payload, encodePayload(payload));
    appended.released.catch(() => undefined);
    if (appended.lsn === undefined) throw txlogError('STORE_FAILED', 'the epoch record could not be written');
    // An epoch record the state has applied is in its epoch history, and one whose LSN is taken
    // again was cut with an unreleased tail: `endOfEpoch` needs neither. Without this the list
    // grew by one entry per promotion for the life of the process; a node begins an epoch only
    // once everything before is applied (`whenIdle`), so it holds just the new one.
    const [appliedLsn, lsn] = [this.pipeline.state.appliedLsn, appended.lsn];
    const kept = this.begunEpochs.filter(([, begunLsn]) => begunLsn > appliedLsn && begunLsn < lsn);
    this.begunEpochs.splice(0, this.begunEpochs.length, ...kept, [epoch, lsn]);
    this.wal.flush();
    try {
      this.wal.syncNow();
    } catch (error) {
      // After a failed fdatasync nothing is known of what reached the disk: the store fails
      // (and a node closes itself), as on any other WAL failure.
      this.pipeline.fail(error);
      throw error;
    }
    return appended.lsn;
  }

  observeEpoch(epoch: number): void {
    this.pipeline.epoch = Math.max(this.pipeline.epoch, epoch);
  }

  get epochsBegun(): number {
    return this.begunEpochs.length;
  }

  endOfEpoch(epoch: number): number {
    const applied = this.pipeline.appliedState().endOfEpoch(epoch);
    if (applied !== undefined) return applied;
    const begun = this.begunEpochs.find(([started]) => started > epoch);
    return begun === undefined ? this.wal.lastLsn : begun[1] - 1;
  }

  setReleaseGate(gate: () => number): void {
    this.pipeline.setReleaseGate(gate);
    // Only a node sets a gate: from here on its batches wait for the backup's acknowledgement.
    const metrics = this.options.metrics;
    if (metrics.enabled) this.wal.onBatch((_frames, _firstLsn, lastLsn) => metrics.batchSent(lastLsn));
  }

  releaseMore(): void {
    this.pipeline.releaseMore();
  }

  waitApplied(lsn: number): Promise<void> {
    return this.pipeline.waitApplied(lsn);
  }

  whenIdle(): Promise<void> {
    return this.pipeline.whenIdle();
  }

  failUnreleased(error: TxlogError): void {
    this.pipeline.rejectWaiters(error);
  }

  async dropUnapplied(error: TxlogError): Promise<void> {
    this.pipeline.checkOpen();
    await this.wal.settle();
    this.pipeline.checkOpen();
    this.pipeline.dropPending(error);
    this.assembler.reset();
    const state = this.pipeline.state;
    if (this.wal.lastLsn > state.appliedLsn) this.cutWal(state.appliedLsn);
    this.pipeline.resetToWal();
    this.pipeline.epoch = Math.max(this.wal.lastEpoch, state.epoch);
  }

  appendReplicated(frame: Buffer): ReplicatedAppend {
    this.pipeline.checkOpen();
    const lsn = this.wal.nextLsn;
    // Only a frame the WAL took (it verified its checksum, length and LSN) is read further.
    const record = new ReplicatedRecord(lsn, frame);
    const refused = this.pipeline.appendFrame(record, frame);
    if (refused !== undefined) return { lsn, refused };
    record.type = frame.readUInt8(8);
    const epochOfFrame = frame.readUInt32LE(12);
    const epochBegun = record.type === recordTypes.epoch ? (record.payload as EpochPayload).epoch : 0;
    this.pipeline.epoch = Math.max(this.pipeline.epoch, epochBegun, epochOfFrame);
    return { lsn };
  }

  async truncateAfter(lsn: number): Promise<void> {
    this.pipeline.checkOpen();
    assert(this.pipeline.pendingCount === 0, 'truncateAfter with records in flight');
    await this.wal.settle();
    this.cutWal(lsn);
    this.pipeline.resetToWal();
    if (this.pipeline.state.appliedLsn > lsn) {
      await this.pipeline.state.close();
      State.destroy(stateDirOf(this.options));
      this.pipeline.state = await openState(this.options, this.wal);
      this.pipeline.resetToState();
      this.assembler.reset();
    }
    this.pipeline.epoch = Math.max(this.wal.lastEpoch, this.pipeline.state.epoch);
  }

  /**
   * Cuts the WAL after `lsn`. A disk error in the middle stops the store (its failure listeners
   * close the node, and a restart recovers the log): a half-cut log must not take more records
   * (found by the simulator: an EIO in a backup's cut escaped and ended the process).
   */
  private cutWal(lsn: number): void {
    try {
      this.wal.truncateAfter(lsn);
    } catch (error) {
      this.pipeline.fail(error instanceof TxlogError ? error : txlogError('IO_ERROR', `cutting the WAL after LSN ${lsn} failed: ${String(error)}`, { lsn }, error));
      throw this.pipeline.failedWith ?? error;
    }
  }

  readStreamAsOf(stream: string, fromVersion: number, maxCount: number, version: number): StreamSlice {
    return this.pipeline.state.readStream(stream, fromVersion, maxCount, version);
  }
}

/**
 * A record a backup received: nothing on the way to the acknowledgement decodes it. The apply
 * reads a commit from its bytes (`readCommitForApply`, as recovery does) unless something decoded
 * the record already; the payload is decoded when first read (an epoch record at once, the
 * determinism check's commits after the apply, the metrics' events).
 */
class ReplicatedRecord implements ApplicableRecord {
  type = 0;
  private decoded: unknown;
  private isDecoded = false;

  constructor(
    readonly lsn: number,
    private readonly frame: Buffer,
  ) {}

  get payload(): unknown {
    if (!this.isDecoded) {
      this.decoded = recordPayload({ frame: this.frame });
      this.isDecoded = true;
    }
    return this.decoded;
  }

  commitForApply(): CommitForApply {
    return this.isDecoded ? commitForApply(this.decoded as CommitPayload) : readCommitForApply(framePayload(this.frame));
  }
}

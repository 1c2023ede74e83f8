/**
 * Everything replication asks of the engine beyond its public API, in one interface. The rest of
 * replication/ reaches the store's replication hooks and its WAL only through `ReplicatedStore`;
 * `replicatedStoreOf` is the one place that knows how today's `Store` and `Wal` provide them.
 * (Executing and reading for clients go through the public `Store` API.)
 */
import type { TxlogError } from '../wal/errors.js';
import type { Store } from '../engine/store.js';
import { replicationHooksOf } from '../engine/replication-hooks.js';
import type { StreamSlice } from '../engine/service.js';
import type { ApplicableRecord, JournalEntry } from '../engine/state.js';
import type { ResourceUsage } from '../engine/resources.js';

/** One frame as it stands in the log, checksum and header included. */
export interface LoggedFrame {
  lsn: number;
  frame: Buffer;
}

export interface ReplicatedStore {
  // ---- positions
  /** Highest epoch this store knows of (written or observed). */
  readonly epoch: number;
  /** Highest epoch of any record in the log (0 for an empty log). */
  readonly lastEpoch: number;
  /** LSN of the last record written to the log file. */
  readonly lastLsn: number;
  /** The LSN the next append will get (appended records may not be written yet). */
  readonly nextLsn: number;
  /** LSN of the last record known to be fdatasync'd. */
  readonly durableLsn: number;
  readonly appliedLsn: number;
  readonly isClosed: boolean;

  // ---- roles and epochs
  /** Local writes allowed (primary) or refused with `error` before reaching the log. */
  setWritable(writable: boolean, error?: TxlogError): void;
  /** Drops what was never applied, from memory and the log; its callers get `error`. */
  dropUnapplied(error: TxlogError): Promise<void>;
  /** Writes a durable epoch record; returns its LSN (serve nothing before it is applied). */
  beginEpoch(epoch: number, nodeId: string): number;
  /** Raises the epoch without writing (a backup learning its primary's epoch). */
  observeEpoch(epoch: number): void;
  /** Last LSN of `epoch` in this log's history: where a backup of that epoch agrees with us. */
  endOfEpoch(epoch: number): number;
  /** Cuts the log after `lsn` (a tail the primary never had). */
  truncateAfter(lsn: number): Promise<void>;

  // ---- the primary's side
  /** Frames `fromLsn..toLsn` read back from the log, in order. */
  readFrames(fromLsn: number, toLsn: number): Iterable<LoggedFrame>;
  /** Called with each batch's frames once written and their fdatasync started, in LSN order. */
  onBatch(listener: (frames: readonly Buffer[], firstLsn: number) => void): void;
  /** Records are applied, and callers answered, only up to the LSN `gate` returns. */
  setReleaseGate(gate: () => number): void;
  /** The release gate grew: apply what it now allows. */
  releaseMore(): void;
  /** Fails every caller waiting on a record not yet applied (the records stay in the log). */
  failUnreleased(error: TxlogError): void;

  // ---- the backup's side
  /** Appends a frame received from the primary, as it is. */
  /** `refused`: the frame was not appended, and why (BUSY: the log's queue is full). */
  appendReplicated(frame: Buffer): { lsn: number; refused?: TxlogError };
  /** Called with each batch of records applied (the determinism check re-executes commits). */
  onApplied(listener: (records: readonly ApplicableRecord[]) => void): void;
  /** The journal entry at `lsn`, read back from the log (undefined if it is not one). */
  journalEntryAt(lsn: number): JournalEntry | undefined;
  /** `readStream` as of a stream version (re-execution). */
  readStreamAsOf(stream: string, fromVersion: number, maxCount: number, version: number): StreamSlice;

  // ---- waiting and failing
  /** Resolves when `lsn` is applied; rejects when the store fails or gives up on it. */
  waitApplied(lsn: number): Promise<void>;
  /** Resolves when every record appended so far is applied. */
  whenIdle(): Promise<void>;
  /** Called once if the store fails. */
  onFailure(listener: (failure: TxlogError) => void): void;

  // ---- clients
  /** `Store.execute` for args decoded from a client's frame, which nothing else holds: not copied again. */
  executeOwned(command: string, args: unknown, ids: { clientId: string; requestId: number }): Promise<unknown>;

  // ---- sessions
  /** The client's highest request id with any trace in the store. */
  latestRequestId(clientId: string): number;

  /** What the store holds in memory against each limit (`Store.resourceUsage`). */
  resourceUsage(): ResourceUsage;
}

export function replicatedStoreOf(store: Store): ReplicatedStore {
  const hooks = replicationHooksOf(store);
  return {
    get epoch() {
      return hooks.epoch;
    },
    get lastEpoch() {
      return hooks.lastEpoch;
    },
    get lastLsn() {
      return hooks.lastLsn;
    },
    get nextLsn() {
      return hooks.nextLsn;
    },
    get durableLsn() {
      return hooks.durableLsn;
    },
    get appliedLsn() {
      return store.appliedLsn;
    },
    get isClosed() {
      return store.isClosed;
    },
    setWritable: (writable, error) => hooks.setWritable(writable, error),
    dropUnapplied: (error) => hooks.dropUnapplied(error),
    beginEpoch: (epoch, nodeId) => hooks.beginEpoch(epoch, nodeId),
    observeEpoch: (epoch) => hooks.observeEpoch(epoch),
    endOfEpoch: (epoch) => hooks.endOfEpoch(epoch),
    truncateAfter: (lsn) => hooks.truncateAfter(lsn),
    readFrames: (fromLsn, toLsn) => hooks.readRecords(fromLsn, toLsn),
    onBatch: (listener) => hooks.onBatch(listener),
    setReleaseGate: (gate) => hooks.setReleaseGate(gate),
    releaseMore: () => hooks.releaseMore(),
    failUnreleased: (error) => hooks.failUnreleased(error),
    appendReplicated: (frame) => hooks.appendReplicated(frame),
    onApplied: (listener) => void hooks.onApplied(listener),
    journalEntryAt: (lsn) => hooks.journalEntryAt(lsn),
    readStreamAsOf: (stream, fromVersion, maxCount, version) => hooks.readStreamAsOf(stream, fromVersion, maxCount, version),
    waitApplied: (lsn) => hooks.waitApplied(lsn),
    whenIdle: () => hooks.whenIdle(),
    onFailure: (listener) => void hooks.onFailure(listener),
    executeOwned: (command, args, ids) => hooks.executeOwned(command, args, ids),
    latestRequestId: (clientId) => store.latestRequestId(clientId),
    resourceUsage: () => store.resourceUsage(),
  };
}

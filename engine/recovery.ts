/**
 * Opening a store's directory: the WAL (the truth, which recovers itself: see `wal/segments.ts`)
 * and the LMDB state derived from it. The state is rebuilt from the WAL when it cannot be
 * trusted: unreadable, ahead of the WAL, or left open under another boot (LMDB runs with
 * `noSync`, so a machine crash may have left its pages half written: the boot-id rule). Then
 * every record after the state's applied LSN is applied again; handlers never re-run.
 */
import * as path from 'node:path';
import { Wal, recordPayload } from '../wal/wal.js';
import type { WalOptions } from '../wal/options.js';
import { txlogError } from '../wal/errors.js';
import { framePayload } from '../wal/format.js';
import { readCommitForApply } from './commit-for-apply.js';
import type { ResolvedStoreOptions } from './options.js';
import { refuseIncompleteBackup } from './backup-manifest.js';
import type { CommitForApply } from './records.js';
import { State, type ApplicableRecord } from './state.js';
import { currentBootId } from './state-files.js';

/** Records applied per LMDB transaction while recovering. */
const recoveryBatchRecords = 1024;

/**
 * A catch-up of at least this many records (a rebuild, a restored backup without its state, a
 * store that ran far ahead of its state) says in the log when it begins, every
 * `catchUpProgressMs` while it runs, and when it ends: at 50,000 to 100,000 records a second a
 * large store takes minutes, and the open is otherwise silent all along.
 */
export const catchUpLoggedRecordsMin = 10_000;
const catchUpProgressMs = 5_000;

export function openWal(options: ResolvedStoreOptions): Promise<Wal> {
  refuseIncompleteBackup(options.dir);
  const walOptions: WalOptions = {
    dir: path.join(options.dir, 'wal'),
    fsync: options.fsync,
    platform: options.platform,
    log: options.log,
    metrics: options.metrics,
  };
  if (options.fsyncIntervalMs !== undefined) walOptions.fsyncIntervalMs = options.fsyncIntervalMs;
  if (options.segmentBytes !== undefined) walOptions.segmentBytes = options.segmentBytes;
  if (options.preallocate !== undefined) walOptions.preallocate = options.preallocate;
  if (options.recordBytesMax !== undefined) walOptions.recordBytesMax = options.recordBytesMax;
  if (options.syncOnWorkerThread !== undefined) walOptions.syncOnWorkerThread = options.syncOnWorkerThread;
  return Wal.open(walOptions);
}

export function stateDirOf(options: ResolvedStoreOptions): string {
  return path.join(options.dir, 'state');
}

/** Opens LMDB, rebuilding it from the WAL when it is unreadable or ahead of the WAL. */
export async function openState(options: ResolvedStoreOptions, wal: Wal): Promise<State> {
  const stateDir = stateDirOf(options);
  let state: State;
  try {
    state = State.open(stateDir, options.stateMapBytes, options.streamIndexFlushEntries);
  } catch (error) {
    options.log(`state in ${stateDir} cannot be opened (${String(error)}); rebuilding it from the WAL`);
    State.destroy(stateDir);
    state = State.open(stateDir, options.stateMapBytes, options.streamIndexFlushEntries);
  }
  const bootId = currentBootId();
  const reason =
    state.appliedLsn > wal.lastLsn
      ? `state is ahead of the WAL (LSN ${state.appliedLsn} > ${wal.lastLsn})`
      : state.mayBeDamagedByMachineCrash(bootId)
        ? 'state was not closed cleanly before the machine restarted'
        : state.layoutMismatch(options.sessions);
  if (reason !== undefined) {
    options.log(`${reason}; rebuilding it from the WAL`);
    await state.close();
    State.destroy(stateDir);
    state = State.open(stateDir, options.stateMapBytes, options.streamIndexFlushEntries);
  }
  state.markOpen(bootId, options.sessions);
  if (state.appliedLsn + 1 < wal.firstLsn) {
    throw txlogError('CORRUPT_LOG', `state is at LSN ${state.appliedLsn} but the WAL starts at ${wal.firstLsn}`);
  }
  const progress = CatchUpProgress.start(options, state.appliedLsn, wal.lastLsn);
  let batch: ApplicableRecord[] = [];
  for (const record of wal.read(state.appliedLsn + 1)) {
    batch.push(new LoggedRecord(record.lsn, record.type, record.frame));
    if (batch.length >= recoveryBatchRecords) {
      state.apply(batch, options.sessions);
      batch = [];
      progress?.applied(state.appliedLsn);
    }
  }
  state.apply(batch, options.sessions);
  progress?.done(state.appliedLsn);
  return state;
}

/** The log lines of a long catch-up (see `catchUpLoggedRecordsMin`). */
class CatchUpProgress {
  private readonly startedMs: number;
  private loggedMs: number;

  private constructor(
    private readonly options: ResolvedStoreOptions,
    /** The state's LSN when the catch-up began. */
    private readonly startLsn: number,
    private readonly lastLsn: number,
  ) {
    this.startedMs = options.platform.clock.monotonicMs();
    this.loggedMs = this.startedMs;
  }

  static start(options: ResolvedStoreOptions, appliedLsn: number, lastLsn: number): CatchUpProgress | undefined {
    const records = lastLsn - appliedLsn;
    if (records < catchUpLoggedRecordsMin) return undefined;
    options.log(`applying ${records} records of the WAL to the state (LSN ${appliedLsn + 1} to ${lastLsn})`);
    return new CatchUpProgress(options, appliedLsn, lastLsn);
  }

  applied(lsn: number): void {
    const nowMs = this.options.platform.clock.monotonicMs();
    if (nowMs - this.loggedMs < catchUpProgressMs) return;
    this.loggedMs = nowMs;
    const done = lsn - this.startLsn;
    const total = this.lastLsn - this.startLsn;
    this.options.log(`applied LSN ${lsn} of ${this.lastLsn} (${Math.floor((done / total) * 100)}%, ${this.rate(done, nowMs)} records a second)`);
  }

  done(lsn: number): void {
    const nowMs = this.options.platform.clock.monotonicMs();
    const done = lsn - this.startLsn;
    this.options.log(`applied ${done} records in ${((nowMs - this.startedMs) / 1000).toFixed(1)} s (${this.rate(done, nowMs)} records a second); the state is at LSN ${lsn}`);
  }

  private rate(records: number, nowMs: number): number {
    return Math.round((records / Math.max(1, nowMs - this.startedMs)) * 1000);
  }
}

/**
 * A record of the WAL as recovery applies it: its payload is decoded when the apply reads it
 * (once: `State.applyOne`) and not kept, so what a batch of 1,024 decodes dies young rather than
 * living through the collections of the whole batch's apply (a rebuild of 200,000 records:
 * 72-74k records/s decoding up front, 77-79k this way, three alternated pairs).
 */
class LoggedRecord implements ApplicableRecord {
  constructor(
    readonly lsn: number,
    readonly type: number,
    private readonly frame: Buffer,
  ) {}

  get payload(): unknown {
    return recordPayload({ frame: this.frame });
  }

  /** Nothing but the apply reads a recovered record: its commit is read from the bytes, not decoded. */
  commitForApply(): CommitForApply {
    return readCommitForApply(framePayload(this.frame));
  }
}

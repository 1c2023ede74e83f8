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
import type { ResolvedStoreOptions } from './options.js';
import { refuseIncompleteBackup } from './backup-manifest.js';
import { State, type ApplicableRecord } from './state.js';
import { currentBootId } from './state-files.js';

/** Records applied per LMDB transaction while recovering. */
const recoveryBatchRecords = 1024;

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
  let batch: ApplicableRecord[] = [];
  for (const record of wal.read(state.appliedLsn + 1)) {
    batch.push(new LoggedRecord(record.lsn, record.type, record.frame));
    if (batch.length >= recoveryBatchRecords) {
      state.apply(batch, options.sessions);
      batch = [];
    }
  }
  state.apply(batch, options.sessions);
  return state;
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
}

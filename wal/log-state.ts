/**
 * Where the running log stands: its segments, the active segment's write position and the LSN
 * marks. One object shared by the parts of `Wal` (group commit, sync, reading, truncation), so
 * each can live in its own file while they agree on one position.
 */
import { assert } from './assert.js';
import { txlogError, type TxlogError } from './errors.js';
import { frameBytesMaxOf, type ResolvedWalOptions } from './options.js';
import type { FileSystem } from './platform.js';
import { indexEveryBytes, type OpenedState, type Segment } from './segments.js';

/** One append waiting for its batch to be written (and, under `always`, synced). */
export interface PendingAppend {
  lsn: number;
  frame: Buffer;
  resolve: (lsn: number) => void;
  reject: (error: Error) => void;
}

export interface LogState {
  readonly options: ResolvedWalOptions;
  readonly fileSystem: FileSystem;
  readonly frameBytesMax: number;
  /** Oldest first; the last one is the active segment. */
  readonly segments: Segment[];
  activeFd: number | undefined;
  /** Where the next frame goes in the active segment. */
  writeOffset: number;
  /** Size of the active segment file (larger than writeOffset when preallocated). */
  activeFileBytes: number;
  /** The next frame at or past this offset gets a sparse index entry. */
  nextIndexOffset: number;
  /** The LSN the next append will get. */
  nextLsn: number;
  /** LSN of the last record written to the file. */
  writtenLsn: number;
  /** LSN of the last record known to be fdatasync'd. */
  durableLsn: number;
  /** Highest epoch of any record appended. */
  lastEpoch: number;
  /** Set once a disk operation failed: the log refuses everything after it. */
  failure: TxlogError | undefined;
  closed: boolean;
}

export function logStateOf(options: ResolvedWalOptions, opened: OpenedState): LogState {
  return {
    options,
    fileSystem: options.platform.fileSystem,
    frameBytesMax: frameBytesMaxOf(options),
    segments: opened.segments,
    activeFd: opened.activeFd,
    writeOffset: opened.writeOffset,
    activeFileBytes: opened.activeFileBytes,
    // Recovery indexed the tail segment up to here.
    nextIndexOffset: opened.writeOffset + indexEveryBytes,
    nextLsn: opened.lastLsn + 1,
    writtenLsn: opened.lastLsn,
    durableLsn: opened.lastLsn,
    lastEpoch: opened.lastEpoch,
    failure: undefined,
    closed: false,
  };
}

export function activeSegment(state: LogState): Segment {
  const active = state.segments[state.segments.length - 1];
  assert(active !== undefined, 'log has no segment');
  return active;
}

/** LSN of the first record still kept (1 unless `truncateBefore` dropped segments). */
export function firstLsnOf(state: LogState): number {
  return state.segments[0]?.firstLsn ?? 1;
}

/** Why a writing operation cannot run now, if it cannot. */
export function writeRefusal(state: LogState): TxlogError | undefined {
  if (state.closed) return txlogError('CLOSED', 'the WAL is closed');
  if (state.failure !== undefined) return state.failure;
  if (state.options.readOnly) return txlogError('BAD_REQUEST', 'the WAL is open read-only');
  return undefined;
}

/**
 * The state derived from the WAL, kept in LMDB: events in global order and by stream (whose last
 * key is the stream's head), the session table, journal entries of transactions not yet
 * committed, and the LSN applied up to, all written in one LMDB transaction per applied batch so
 * they never disagree.
 *
 * LMDB runs with `noSync`: the WAL is the truth, and recovery replays it from `appliedLsn`. If a
 * crash leaves LMDB ahead of the WAL (possible when the WAL's fsync policy is not `always`), or
 * LMDB cannot be opened, the store rebuilds this state from the WAL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { assertionFailed } from '../wal/assert.js';
import type { RecordedEvent, StreamSlice } from './service.js';
import { recordTypes, type ApplicableRecord, type CommitForApply, type CommitPayload, type EpochPayload, type JournalPayload } from './records.js';
import type { SessionLimits } from './options.js';
import { SessionTable, entriesOf, type SessionTableDump } from './session-table.js';
import { commitForApply } from './commit-for-apply.js';
import { decodeStoredEvent, encodeStoredEvent } from './stored-event.js';
import { checkDataFile, currentBootId, fsyncPath } from './state-files.js';
import { StreamHeads } from './stream-heads.js';
import { StreamIndex, flushEntriesDefault } from './stream-index.js';
export { headsCachedMax } from './stream-heads.js';
export { journalEntryOf, type JournalEntry, type Outcome, type SessionLookup } from './session-table.js';


export type { ApplicableRecord } from './records.js';

/** Keys that only grow (positions, LSNs) are appended at the B-tree's right edge: no search, full pages. */
const appendOptions = { append: true } as const;

const metaKeys = {
  appliedLsn: 'appliedLsn',
  nextPosition: 'nextPosition',
  epoch: 'epoch',
  epochs: 'epochs',
  /** Kernel boot id when the state was last opened for writing. */
  bootId: 'bootId',
  /** 1 when the state was closed cleanly (and fsync'd) after its last writes. */
  cleanClose: 'cleanClose',
  /** How the databases are laid out (`stateLayout`); absent in a state of layout 1. */
  layout: 'layout',
  /**
   * The `requestWindow` the session table was kept with: its sweeps dropped the replies that
   * window no longer answered, which a larger one would answer.
   */
  requestWindow: 'requestWindow',
  /** Every event below this position is in the stream index's table (`stream-index.ts`). */
  indexedPosition: 'indexedPosition',
} as const;

/**
 * Layout 6: events as our own msgpack bytes (`stored-event.ts`), replies in runs by LSN (layout 5
 * and before: a reply per entry) with the survivors of sweeps by client (`reply-table.ts`),
 * sessions as 25 bytes, stream heads read from the stream index (no `streams` table), whose
 * entries are written in bulk, a run of versions per stream and flush (`stream-index.ts`: layout
 * 4 wrote an entry per version, layout 3 each with its event). A state of another layout is
 * rebuilt from the WAL (which holds every record since LSN 1: it is never trimmed).
 */
export const stateLayout = 6;

export class State {
  private readonly root: RootDatabase;
  private readonly meta: Database<number | string | Array<[number, number]>, string>;
  private readonly dataPath: string;
  /** position → event */
  private readonly events: Database<Buffer, number>;
  /** [stream, version] → position, with the entries waiting to be written (`stream-index.ts`) */
  private readonly streamIndex: StreamIndex;
  /** Sessions, kept outcomes and journaled calls (see `session-table.ts`). */
  readonly sessionTable: SessionTable;

  /** Stream heads: cached, else the stream index's last keys (the commit path checks expected versions against them). */
  private readonly heads: StreamHeads;
  private appliedLsnValue: number;
  /** [epoch, LSN of its epoch record], in LSN order. */
  private epochsValue: Array<[number, number]>;
  private nextPositionValue: number;
  private epochValue: number;

  private constructor(root: RootDatabase, dir: string, indexFlushEntries: number) {
    this.root = root;
    this.dataPath = path.join(dir, 'data.mdb');
    this.meta = root.openDB({ name: 'meta' });
    this.events = root.openDB({ name: 'events', keyEncoding: 'uint32', encoding: 'binary' });
    const streamIndexTable: Database<Buffer, [string, number]> = root.openDB({ name: 'stream-index', encoding: 'binary' });
    this.streamIndex = new StreamIndex(streamIndexTable, indexFlushEntries);
    this.heads = new StreamHeads(this.streamIndex);
    this.appliedLsnValue = this.number(metaKeys.appliedLsn);
    // A state of another layout is only opened to be found so and rebuilt (`layoutMismatch`):
    // its sessions are not in the form this version decodes, nor its index what this one expects.
    const ownLayout = this.appliedLsnValue === 0 || this.storedLayout() === stateLayout;
    this.sessionTable = new SessionTable(root, ownLayout);
    this.nextPositionValue = this.number(metaKeys.nextPosition);
    // The index entries that were waiting when the state was last written: read back from the
    // events (fewer than `indexFlushEntries` when it was written with the same).
    if (ownLayout) {
      for (const { key, value } of this.events.getRange({ start: this.number(metaKeys.indexedPosition) })) {
        const event = decodeStoredEvent(key, value);
        this.streamIndex.add(event.stream, event.version, key);
      }
      // Written with a larger `streamIndexFlushEntries`: as many wait as that allowed; flushed now.
      if (this.streamIndex.waitingEntries >= indexFlushEntries) {
        root.transactionSync(() => {
          if (this.streamIndex.flushIfDue()) this.meta.putSync(metaKeys.indexedPosition, this.nextPositionValue);
        });
      }
    }
    this.epochValue = this.number(metaKeys.epoch);
    const epochs = this.meta.get(metaKeys.epochs);
    this.epochsValue = Array.isArray(epochs) ? epochs : [];
  }

  /** `indexFlushEntries`: see the store option `streamIndexFlushEntries`. */
  static open(dir: string, mapBytes: number, indexFlushEntries = flushEntriesDefault): State {
    fs.mkdirSync(dir, { recursive: true });
    checkDataFile(dir);
    const root = open({ path: dir, maxDbs: 16, mapSize: mapBytes, noSync: true, compression: false });
    return new State(root, dir, indexFlushEntries);
  }

  /**
   * With `noSync`, a machine crash (not a process crash: the page cache survives that) can leave
   * LMDB's pages half on disk. A state last opened under another boot and not closed cleanly
   * may be damaged, and must be rebuilt from the WAL.
   */
  mayBeDamagedByMachineCrash(bootId: string | undefined): boolean {
    if (this.appliedLsnValue === 0) return false;
    if (this.meta.get(metaKeys.cleanClose) === 1) return false;
    const openedUnder = this.meta.get(metaKeys.bootId);
    return bootId === undefined || openedUnder !== bootId;
  }

  /**
   * Why this state cannot be used as it is with these limits (its layout is another version's, or
   * it was kept for another `requestWindow`), or undefined. A smaller window could use the state
   * as it is, but rebuilding keeps the state a function of the records and the options alone, so
   * two nodes and a rebuild still compare equal (`dump`).
   */
  layoutMismatch(limits: SessionLimits): string | undefined {
    if (this.appliedLsnValue === 0) return undefined;
    const layout = this.storedLayout();
    if (layout !== stateLayout) return `state has layout ${layout}, this version keeps layout ${stateLayout}`;
    const window = this.number(metaKeys.requestWindow);
    if (window !== limits.requestWindow) return `state keeps replies for a requestWindow of ${window}, the store now has ${limits.requestWindow}`;
    return undefined;
  }

  /** Records that the state is open under this boot, durably, before anything else is written. */
  markOpen(bootId: string | undefined, limits: SessionLimits): void {
    this.root.transactionSync(() => {
      this.meta.putSync(metaKeys.bootId, bootId ?? '');
      this.meta.putSync(metaKeys.cleanClose, 0);
      this.meta.putSync(metaKeys.layout, stateLayout);
      this.meta.putSync(metaKeys.requestWindow, limits.requestWindow);
    });
    fsyncPath(this.dataPath);
  }

  /**
   * Copies this environment as of one LMDB read snapshot into the empty directory `dir`
   * (`mdb_env_copy2` on a thread of lmdb-js: the event loop and the writers go on meanwhile).
   */
  async copyTo(dir: string): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    await this.root.backup(dir, false);
  }

  /**
   * Copies the state at `sourceDir`, which no process may have open: the caller holds the
   * store's WAL lock (opening LMDB beside a live writer can lose one of its commits: see
   * `backup.ts`). Returns false, copying nothing, when there is no state or it cannot be
   * trusted (left open under another boot: see `mayBeDamagedByMachineCrash`), so the restored
   * store rebuilds it.
   */
  static async copyDirectory(sourceDir: string, targetDir: string, mapBytes: number): Promise<boolean> {
    if (!fs.existsSync(path.join(sourceDir, 'data.mdb'))) return false;
    checkDataFile(sourceDir);
    const root = open({ path: sourceDir, maxDbs: 16, mapSize: mapBytes, noSync: true, compression: false, readOnly: true });
    try {
      const meta: Database<number | string, string> = root.openDB({ name: 'meta' });
      const trusted = meta.get(metaKeys.cleanClose) === 1 || meta.get(metaKeys.bootId) === currentBootId();
      if (!trusted) return false;
      fs.mkdirSync(targetDir, { recursive: true });
      await root.backup(targetDir, false);
      return true;
    } finally {
      await root.close();
    }
  }

  /** Removes the LMDB files so the next `open` starts empty (a rebuild from the WAL). */
  static destroy(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  /** The layout the state was written in (a state of layout 1 did not say). */
  private storedLayout(): number {
    return this.number(metaKeys.layout) || 1;
  }

  private number(key: string): number {
    const value = this.meta.get(key);
    return typeof value === 'number' ? value : 0;
  }

  /**
   * The last LSN written in `epoch` by this log's history: the LSN before the first epoch
   * record above it, or undefined when no later epoch began (the epoch runs to the end).
   */
  endOfEpoch(epoch: number): number | undefined {
    const next = this.epochsValue.find(([started]) => started > epoch);
    return next === undefined ? undefined : next[1] - 1;
  }

  get appliedLsn(): number {
    return this.appliedLsnValue;
  }

  get nextPosition(): number {
    return this.nextPositionValue;
  }

  /** Highest epoch seen in an applied epoch record. */
  get epoch(): number {
    return this.epochValue;
  }

  /** Stream index entries waiting in memory (see `stream-index.ts`). */
  get streamIndexWaiting(): number {
    return this.streamIndex.waitingEntries;
  }

  /** Stream heads cached in memory (at most `headsCachedMax`). */
  get cachedHeads(): number {
    return this.heads.cachedCount;
  }

  streamVersion(stream: string): number {
    return this.heads.versionOf(stream);
  }

  /**
   * Reads a stream; with `asOfVersion`, as the stream was at that version (a prefix: events
   * never change once written).
   */
  readStream(stream: string, fromVersion: number, maxCount: number, asOfVersion?: number): StreamSlice {
    const head = this.streamVersion(stream);
    const version = asOfVersion === undefined ? head : Math.min(asOfVersion, head);
    const events: RecordedEvent[] = [];
    if (version < 0 || fromVersion > version || maxCount <= 0) return { version, events };
    const last = Math.min(version, fromVersion + maxCount - 1);
    for (const position of this.streamIndex.positions(stream, fromVersion, last)) {
      // The index gives this stream's positions only (its runs name their stream: see
      // `stream-index.ts`); the event naming its stream is checked all the same.
      const event = this.eventAt(position);
      if (event.stream === stream) events.push(event);
    }
    return { version, events };
  }

  /** Streams whose name starts with `prefix`, in name order, with their last versions; at most `max`. */
  streamsWithPrefix(prefix: string, max: number): Array<[string, number]> {
    return this.heads.withPrefix(prefix, max);
  }

  /** The global position of a stream's event (undefined: no such version). */
  positionOf(stream: string, version: number): number | undefined {
    return this.streamIndex.positionOf(stream, version);
  }

  readAll(fromPosition: number, maxCount: number): RecordedEvent[] {
    const events: RecordedEvent[] = [];
    const end = Math.min(this.nextPositionValue, fromPosition + maxCount);
    if (fromPosition >= end) return events;
    for (const { key, value } of this.events.getRange({ start: fromPosition, end })) {
      events.push(decodeStoredEvent(key, value));
    }
    return events;
  }

  private eventAt(position: number): RecordedEvent {
    const stored = this.events.get(position);
    if (stored === undefined) assertionFailed(`stream index names missing position ${position}`);
    return decodeStoredEvent(position, stored);
  }

  /** Applies records in LSN order, all in one LMDB transaction. */
  apply(records: readonly ApplicableRecord[], limits: SessionLimits): void {
    if (records.length === 0) return;
    this.root.transactionSync(() => {
      for (const record of records) {
        if (record.lsn !== this.appliedLsnValue + 1) assertionFailed(`apply out of order: ${record.lsn} after ${this.appliedLsnValue}`);
        this.applyOne(record, limits);
        this.appliedLsnValue = record.lsn;
      }
      this.sessionTable.storeChangedSessions();
      this.meta.putSync(metaKeys.appliedLsn, this.appliedLsnValue);
      this.meta.putSync(metaKeys.nextPosition, this.nextPositionValue);
    });
  }

  private applyOne(record: ApplicableRecord, limits: SessionLimits): void {
    switch (record.type) {
      case recordTypes.commit:
        this.applyCommit(record.lsn, record.commitForApply?.() ?? commitForApply(record.payload as CommitPayload), limits);
        return;
      case recordTypes.journal: {
        const journal = record.payload as JournalPayload;
        // A one-off request (no client and request id) is never resent, so nothing looks its
        // calls up, and its commit would never remove them: keeping them would only leak.
        if (journal.requestId === 0) return;
        this.sessionTable.putJournal(record.lsn, journal);
        return;
      }
      case recordTypes.epoch: {
        const epoch = record.payload as EpochPayload;
        this.epochValue = Math.max(this.epochValue, epoch.epoch);
        this.epochsValue = [...this.epochsValue, [epoch.epoch, record.lsn]];
        this.meta.putSync(metaKeys.epoch, this.epochValue);
        this.meta.putSync(metaKeys.epochs, this.epochsValue);
        return;
      }
      default:
        // Record types this version does not know are kept in the WAL and skipped here.
        return;
    }
  }

  private applyCommit(lsn: number, commit: CommitForApply, limits: SessionLimits): void {
    let position = commit.firstPosition;
    if (commit.writes.length > 0) {
      if (position !== this.nextPositionValue) assertionFailed(`commit at LSN ${lsn} starts at position ${position}, expected ${this.nextPositionValue}`);
    }
    for (const write of commit.writes) {
      let version = write.firstVersion;
      for (const event of write.events) {
        if (!(this.events.putSync(position, encodeStoredEvent(write.stream, version, commit.createdAtMs, event), appendOptions) as unknown)) assertionFailed(`event position ${position} not above the last`);
        this.streamIndex.add(write.stream, version, position);
        position += 1;
        version += 1;
      }
      this.heads.written(write.stream, version - 1);
    }
    if (commit.writes.length > 0) this.nextPositionValue = position;
    // Checked per commit, so where the index is flushed depends on the records alone.
    if (this.streamIndex.flushIfDue()) this.meta.putSync(metaKeys.indexedPosition, this.nextPositionValue);
    if (commit.clientId !== '' && commit.requestId > 0) this.sessionTable.recordOutcome(lsn, commit, limits);
  }


  /** Everything, in a form two states can be compared by (tests: rebuild gives the same state). */
  dump(): {
    appliedLsn: number;
    nextPosition: number;
    events: unknown[];
    streams: unknown[];
  } & SessionTableDump {
    return {
      appliedLsn: this.appliedLsnValue,
      nextPosition: this.nextPositionValue,
      events: entriesOf(this.events).map(([position, bytes]) => decodeStoredEvent(position, bytes)),
      streams: this.streamsWithPrefix('', Number.MAX_SAFE_INTEGER),
      ...this.sessionTable.dump(),
    };
  }

  /** Closes, marking the state cleanly closed and fsync'd (see `mayBeDamagedByMachineCrash`). */
  async close(): Promise<void> {
    this.root.transactionSync(() => this.meta.putSync(metaKeys.cleanClose, 1));
    await this.root.close();
    fsyncPath(this.dataPath);
  }
}

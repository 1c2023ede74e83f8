/**
 * The stream index (layout 4): `[stream, version] → position` in LMDB, written in bulk. An
 * apply writes each event at the right edge of `events`, but its index entry lands on the tail
 * page of its stream's keys: a page per stream written, most of the pages an apply of many
 * streams dirties (see ARCHITECTURE.md, "On-disk format"). So entries wait in memory until
 * `flushEntries` (4,096 unless the store's options say otherwise) have gathered and then go to
 * the table together, in the apply transaction of
 * the commit that reached the count, a stream's entries sharing its page; the state records,
 * in the same transaction, the position below which every event is in the table. On open, the
 * entries that were waiting are read back from the events at and above that position, which
 * name their stream and version. The flush depends on the records alone, so two nodes and a
 * rebuild hold the same table.
 */
import type { Database } from 'lmdb';
import { assert } from '../wal/assert.js';

/** Entries kept in memory before they are written (the `streamIndexFlushEntries` store option's default). */
export const flushEntriesDefault = 4096;

interface Waiting {
  /** Version of `positions[0]`: a stream's waiting versions are dense, the newest it has. */
  firstVersion: number;
  positions: number[];
}

export class StreamIndex {
  private readonly waiting = new Map<string, Waiting>();
  private waitingCount = 0;

  constructor(
    private readonly table: Database<number, [string, number]>,
    /** Entries that make a flush (fewer wait between commits): the `streamIndexFlushEntries` option. */
    readonly flushEntries: number,
  ) {}

  /** Entries not yet in the table. */
  get waitingEntries(): number {
    return this.waitingCount;
  }

  /** Indexes an event (in the apply transaction); it waits until the next flush. */
  add(stream: string, version: number, position: number): void {
    const waiting = this.waiting.get(stream);
    if (waiting === undefined) {
      this.waiting.set(stream, { firstVersion: version, positions: [position] });
    } else {
      assert(version === waiting.firstVersion + waiting.positions.length, `stream ${stream}: version ${version} indexed out of order`);
      waiting.positions.push(position);
    }
    this.waitingCount += 1;
  }

  /**
   * Writes every waiting entry to the table once `flushEntries` have gathered (in the caller's
   * write transaction); returns whether it did.
   */
  flushIfDue(): boolean {
    if (this.waitingCount < this.flushEntries) return false;
    for (const [stream, waiting] of this.waiting) {
      for (let index = 0; index < waiting.positions.length; index++) {
        this.table.putSync([stream, waiting.firstVersion + index], waiting.positions[index]!);
      }
    }
    this.waiting.clear();
    this.waitingCount = 0;
    return true;
  }

  /** The newest version of `stream` waiting, or undefined when none is. */
  waitingHead(stream: string): number | undefined {
    const waiting = this.waiting.get(stream);
    return waiting === undefined ? undefined : waiting.firstVersion + waiting.positions.length - 1;
  }

  /** Streams with a waiting entry whose name starts with `prefix`. */
  waitingStreamsWithPrefix(prefix: string): string[] {
    return [...this.waiting.keys()].filter((stream) => stream.startsWith(prefix));
  }

  /** The position of a stream's version, or undefined. */
  positionOf(stream: string, version: number): number | undefined {
    const waiting = this.waiting.get(stream);
    if (waiting !== undefined && version >= waiting.firstVersion) return waiting.positions[version - waiting.firstVersion];
    return this.table.get([stream, version]);
  }

  /**
   * Positions of `stream`'s versions `fromVersion..lastVersion`, in version order: the table's,
   * then those waiting (always the newest). The table's range may hold another stream's
   * entries (see `stream-heads.ts`): the caller keeps only the events that name its stream.
   */
  positions(stream: string, fromVersion: number, lastVersion: number): number[] {
    const found: number[] = [];
    const waiting = this.waiting.get(stream);
    const tableLast = waiting === undefined ? lastVersion : Math.min(lastVersion, waiting.firstVersion - 1);
    if (fromVersion <= tableLast) {
      for (const { value } of this.table.getRange({ start: [stream, fromVersion], end: [stream, tableLast + 1] })) found.push(value);
    }
    if (waiting !== undefined) {
      const last = Math.min(lastVersion, waiting.firstVersion + waiting.positions.length - 1);
      for (let version = Math.max(fromVersion, waiting.firstVersion); version <= last; version++) {
        found.push(waiting.positions[version - waiting.firstVersion]!);
      }
    }
    return found;
  }
}

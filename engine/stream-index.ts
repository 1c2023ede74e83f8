/**
 * The stream index (layout 5 on): a stream's versions → their positions in LMDB, written in bulk
 * and in runs. An apply writes each event at the right edge of `events`, but its index entry
 * lands on the tail page of its stream's keys: a page per stream written, most of the pages an
 * apply of many streams dirties (see ARCHITECTURE.md, "On-disk format"). So entries wait in
 * memory until `flushEntries` (4,096 unless the store's options say otherwise) have gathered and
 * then go to the table together, in the apply transaction of the commit that reached the count,
 * each stream's waiting entries as one run under `[stream, first version]` (layout 4 put an
 * entry per version: a put costs about a microsecond whatever it holds). The state records, in
 * the same transaction, the position below which every event is in the table. On open, the
 * entries that were waiting are read back from the events at and above that position, which
 * name their stream and version. The flush depends on the records alone, so two nodes and a
 * rebuild hold the same table.
 *
 * A run's value (`encodeRun`): its first version (f64 LE), how many versions (u32 LE), their
 * positions (u32 LE each), then the stream's name (UTF-8). The name and the first version are
 * what a lookup trusts, not the key: ordered-binary writes names of 64 characters or more raw,
 * so the keys of a name that extends another by U+0000 can sort among the other's and decode to
 * nonsense. A lookup walks back from `[stream, version]` to the first run that names its stream.
 */
import type { Database } from 'lmdb';
import { assertionFailed } from '../wal/assert.js';

/** Entries kept in memory before they are written (the `streamIndexFlushEntries` store option's default). */
export const flushEntriesDefault = 4096;

interface Waiting {
  /** Version of `positions[0]`: a stream's waiting versions are dense, the newest it has. */
  firstVersion: number;
  positions: number[];
}

/** A run of a stream's versions in the table, decoded. */
export interface Run {
  stream: string;
  firstVersion: number;
  positions: readonly number[];
}

const runHeaderBytes = 12;

export function encodeRun(stream: string, firstVersion: number, positions: readonly number[]): Buffer {
  const namedAt = runHeaderBytes + 4 * positions.length;
  const run = Buffer.allocUnsafe(namedAt + Buffer.byteLength(stream, 'utf8'));
  run.writeDoubleLE(firstVersion, 0);
  run.writeUInt32LE(positions.length, 8);
  for (let index = 0; index < positions.length; index++) run.writeUInt32LE(positions[index]!, runHeaderBytes + 4 * index);
  run.write(stream, namedAt, 'utf8');
  return run;
}

export function decodeRun(value: Buffer): Run {
  if (value.length < runHeaderBytes) assertionFailed(`a stream index run of ${value.length} bytes`);
  const count = value.readUInt32LE(8);
  const namedAt = runHeaderBytes + 4 * count;
  if (value.length < namedAt) assertionFailed(`a stream index run of ${count} positions in ${value.length} bytes`);
  const positions: number[] = new Array<number>(count);
  for (let index = 0; index < count; index++) positions[index] = value.readUInt32LE(runHeaderBytes + 4 * index);
  return { stream: value.toString('utf8', namedAt), firstVersion: value.readDoubleLE(0), positions };
}

export class StreamIndex {
  private readonly waiting = new Map<string, Waiting>();
  private waitingCount = 0;

  constructor(
    private readonly table: Database<Buffer, [string, number]>,
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
      if (version !== waiting.firstVersion + waiting.positions.length) assertionFailed(`stream ${stream}: version ${version} indexed out of order`);
      waiting.positions.push(position);
    }
    this.waitingCount += 1;
  }

  /**
   * Writes every waiting entry to the table once `flushEntries` have gathered (in the caller's
   * write transaction), a run per stream; returns whether it did.
   */
  flushIfDue(): boolean {
    if (this.waitingCount < this.flushEntries) return false;
    for (const [stream, waiting] of this.waiting) {
      this.table.putSync([stream, waiting.firstVersion], encodeRun(stream, waiting.firstVersion, waiting.positions));
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
    const run = this.runAtOrBelow(stream, version);
    return run === undefined ? undefined : run.positions[version - run.firstVersion];
  }

  /** The stream's last version in the table (not counting those waiting), -1 when it has none there. */
  tableHead(stream: string): number {
    const run = this.runAtOrBelow(stream, Number.MAX_SAFE_INTEGER);
    return run === undefined ? -1 : run.firstVersion + run.positions.length - 1;
  }

  /**
   * The run of `stream` with the highest first version at or below `version` (it holds `version`
   * when the stream has it), or undefined: the walk back from `[stream, version]` passes over
   * other names' runs whose keys sort there (see the top of this file).
   */
  runAtOrBelow(stream: string, version: number): Run | undefined {
    for (const { value } of this.table.getRange({ start: [stream, version], end: [stream], reverse: true })) {
      const run = decodeRun(value);
      if (run.stream === stream) return run;
    }
    return undefined;
  }

  /** The run whose key is the first at `start` or after it (after it only, when `exclusive`): the prefix listing's step. */
  firstRunFrom(start: [string] | [string, number], exclusive: boolean): Run | undefined {
    for (const { value } of this.table.getRange({ start, exclusiveStart: exclusive, limit: 1 })) return decodeRun(value);
    return undefined;
  }

  /**
   * Positions of `stream`'s versions `fromVersion..lastVersion`, in version order: the table's,
   * then those waiting (always the newest).
   */
  positions(stream: string, fromVersion: number, lastVersion: number): number[] {
    const found: number[] = [];
    const waiting = this.waiting.get(stream);
    const tableLast = waiting === undefined ? lastVersion : Math.min(lastVersion, waiting.firstVersion - 1);
    const first = fromVersion <= tableLast ? this.runAtOrBelow(stream, fromVersion) : undefined;
    if (first !== undefined) {
      for (const { value } of this.table.getRange({ start: [stream, first.firstVersion], end: [stream, tableLast + 1] })) {
        const run = decodeRun(value);
        if (run.stream !== stream) continue;
        const last = Math.min(tableLast, run.firstVersion + run.positions.length - 1);
        for (let version = Math.max(fromVersion, run.firstVersion); version <= last; version++) found.push(run.positions[version - run.firstVersion]!);
      }
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

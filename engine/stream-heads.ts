/**
 * Stream heads (layout 3 on): a stream's last version is its newest entry waiting to be indexed
 * (`stream-index.ts`), else the last key `[stream, *]` of the stream index's table, read on a
 * miss of the bounded in-memory cache, so a commit writes no `streams` table. The commit path
 * checks every expected version against these heads (see `commit-assembler.ts`).
 */
import type { Database } from 'lmdb';
import type { StreamIndex } from './stream-index.js';

/** Stream heads kept in memory; past this many the cache starts over (bounded memory). */
export const headsCachedMax = 65_536;

export class StreamHeads {
  /** Heads of recently written or read streams. */
  private readonly cached = new Map<string, number>();

  /**
   * `streamIndex` is the table of the state's [stream, version] → position, `index` the same
   * with its entries still waiting; `streamAt(position)` names the stream of the event there.
   */
  constructor(
    private readonly streamIndex: Database<number, [string, number]>,
    private readonly index: StreamIndex,
    private readonly streamAt: (position: number) => string,
  ) {}

  /** Heads held in memory now (at most `headsCachedMax`). */
  get cachedCount(): number {
    return this.cached.size;
  }

  /** The stream's last version, -1 when it has none. */
  versionOf(stream: string): number {
    const cached = this.cached.get(stream);
    if (cached !== undefined) return cached;
    const version = this.index.waitingHead(stream) ?? this.lastVersionInIndex(stream);
    if (version >= 0) this.written(stream, version);
    return version;
  }

  /** Keeps a stream's head in memory (forgetting them all past `headsCachedMax`: a cache, not the truth). */
  written(stream: string, version: number): void {
    if (this.cached.size >= headsCachedMax && !this.cached.has(stream)) this.cached.clear();
    this.cached.set(stream, version);
  }

  /**
   * A stream's head from the stream index: the last key `[stream, *]`, one reverse seek. Versions
   * are dense from 0, so `v` is the head exactly when `[stream, v]` is there and `[stream, v + 1]`
   * is not. The two gets are what makes the seek's answer safe: ordered-binary writes a stream
   * name of 64 characters or more raw, so the keys of a name that extends this one by U+0000 can
   * sort among this one's, and the key found may be theirs (it then decodes to nonsense).
   */
  private lastVersionInIndex(stream: string): number {
    for (const key of this.streamIndex.getKeys({ start: [stream, Number.MAX_SAFE_INTEGER], end: [stream], reverse: true, limit: 1 })) {
      const version = key[1];
      const isHead = key[0] === stream && Number.isSafeInteger(version) && version >= 0 && this.streamIndex.doesExist([stream, version]) && !this.streamIndex.doesExist([stream, version + 1]);
      return isHead ? version : this.lastVersionByProbing(stream);
    }
    return -1;
  }

  /** The head by exact gets only (doubling, then halving): for the names the seek cannot trust. */
  private lastVersionByProbing(stream: string): number {
    if (!this.streamIndex.doesExist([stream, 0])) return -1;
    let present = 0;
    let absent = 1;
    while (this.streamIndex.doesExist([stream, absent])) {
      present = absent;
      absent *= 2;
    }
    while (absent - present > 1) {
      const middle = Math.floor((present + absent) / 2);
      if (this.streamIndex.doesExist([stream, middle])) present = middle;
      else absent = middle;
    }
    return present;
  }

  /**
   * Streams whose name starts with `prefix`, in name order, with their last versions; at most
   * `max`. Skips through the stream index a stream at a time: the name comes from the first
   * event found (a key's name may not decode as written: see `lastVersionInIndex`), and the next
   * seek starts just past that stream's last key. (A long name extended by U+0000 and a byte
   * below the version bytes has keys inside another stream's: such a stream is not listed, since
   * the seek past the other's last key skips it, unless it has entries waiting; `readStream` of
   * either reads only its own.)
   */
  withPrefix(prefix: string, max: number): Array<[string, number]> {
    const found = this.tableStreamsWithPrefix(prefix, max);
    // Streams whose entries all wait are not in the table yet: merged in name order (UTF-8
    // bytes, the table's order), then cut to `max` again.
    const listed = new Set(found.map(([stream]) => stream));
    const waiting = this.index.waitingStreamsWithPrefix(prefix).filter((stream) => !listed.has(stream));
    if (waiting.length === 0) return found;
    for (const stream of waiting) found.push([stream, this.versionOf(stream)]);
    found.sort(([left], [right]) => Buffer.compare(Buffer.from(left), Buffer.from(right)));
    return found.slice(0, max);
  }

  private tableStreamsWithPrefix(prefix: string, max: number): Array<[string, number]> {
    const found: Array<[string, number]> = [];
    let after: [string, number] | undefined;
    while (found.length < max) {
      let position: number | undefined;
      const range = after === undefined ? { start: [prefix], limit: 1 } : { start: after, exclusiveStart: true, limit: 1 };
      for (const { value } of this.streamIndex.getRange(range)) position = value;
      if (position === undefined) break;
      const stream = this.streamAt(position);
      if (!stream.startsWith(prefix)) break;
      const head = this.versionOf(stream);
      found.push([stream, head]);
      after = [stream, head];
    }
    return found;
  }
}

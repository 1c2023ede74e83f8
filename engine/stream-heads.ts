/**
 * Stream heads (layout 3 on): a stream's last version is its newest entry waiting to be indexed
 * (`stream-index.ts`), else the end of its last run in the stream index's table, read on a miss
 * of the bounded in-memory cache, so a commit writes no `streams` table. The commit path checks
 * every expected version against these heads (see `commit-assembler.ts`).
 */
import type { StreamIndex } from './stream-index.js';

/** Stream heads kept in memory; past this many the cache starts over (bounded memory). */
export const headsCachedMax = 65_536;

export class StreamHeads {
  /** Heads of recently written or read streams. */
  private readonly cached = new Map<string, number>();

  /** `index` is the state's stream index, its table and its entries still waiting. */
  constructor(private readonly index: StreamIndex) {}

  /** Heads held in memory now (at most `headsCachedMax`). */
  get cachedCount(): number {
    return this.cached.size;
  }

  /** The stream's last version, -1 when it has none. */
  versionOf(stream: string): number {
    const cached = this.cached.get(stream);
    if (cached !== undefined) return cached;
    const version = this.index.waitingHead(stream) ?? this.index.tableHead(stream);
    if (version >= 0) this.written(stream, version);
    return version;
  }

  /** Keeps a stream's head in memory (forgetting them all past `headsCachedMax`: a cache, not the truth). */
  written(stream: string, version: number): void {
    if (this.cached.size >= headsCachedMax && !this.cached.has(stream)) this.cached.clear();
    this.cached.set(stream, version);
  }

  /**
   * Streams whose name starts with `prefix`, in name order, with their last versions; at most
   * `max`. Skips through the stream index a stream at a time: the name comes from the first run
   * found (a key's name may not decode as written: see `stream-index.ts`), and the next seek
   * starts just past that stream's last key. (A long name extended by U+0000 and a byte below
   * the version bytes has keys inside another stream's: such a stream is not listed, since the
   * seek past the other's last key skips it, unless it has entries waiting; `readStream` of
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
      const run = after === undefined ? this.index.firstRunFrom([prefix], false) : this.index.firstRunFrom(after, true);
      if (run === undefined || !run.stream.startsWith(prefix)) break;
      const head = this.versionOf(run.stream);
      found.push([run.stream, head]);
      after = [run.stream, head];
    }
    return found;
  }
}

/**
 * Reading the log: records from any LSN (the sparse index of each segment finds where to start;
 * a sealed segment is verified whole the first time it is read, to build that index: in the same
 * walk when the read takes it to its end), and
 * following the tail as it is written. Reads come from the files, so a slow reader holds no
 * memory beyond one record.
 */
import * as path from 'node:path';
import { decodePayload, frameHeaderBytes, segmentHeaderBytes } from './format.js';
import { txlogError } from './errors.js';
import { firstLsnOf, type LogState } from './log-state.js';
import { corruptAt, type Segment, type SparseEntry } from './segments.js';
import { walkSegment, walkWholeSegment, type ScannedFrame, type SegmentEnding, type WalkedSegment, type WalkOptions } from './segment-walker.js';

/** One record as read back from the log. */
export interface WalRecord {
  lsn: number;
  epoch: number;
  type: number;
  /** Segment file name holding the frame. */
  segment: string;
  /** Byte offset of the frame in its segment. */
  offset: number;
  /** Frame bytes, header included. */
  size: number;
  /**
   * The whole frame, checksum verified: a view of the buffer the reader read it into, which it
   * never reuses, so it is safe to keep or send (holding it holds that buffer, up to 1 MiB).
   */
  frame: Buffer;
}

export function recordPayload(record: Pick<WalRecord, 'frame'>): unknown {
  return decodePayload(record.frame.subarray(frameHeaderBytes));
}

function recordOf(segment: Segment, frame: ScannedFrame): WalRecord {
  return {
    lsn: frame.lsn,
    epoch: frame.epoch,
    type: frame.type,
    segment: segment.name,
    offset: frame.offset,
    size: frame.frameBytes,
    frame: frame.frame,
  };
}

/** A sealed segment walked whole must end cleanly at the LSN before the next segment's first; then its index is kept. */
function acceptSealed(segment: Segment, walked: WalkedSegment, expectedLast: number): SparseEntry[] {
  if (walked.end.state === 'corrupt') throw corruptAt(segment.name, walked.end.offset, walked.end.lsn, walked.end.reason);
  if (walked.lastLsn !== expectedLast) {
    const reason = `segment ends at LSN ${walked.lastLsn}, next starts at ${expectedLast + 1}`;
    throw corruptAt(segment.name, walked.endOffset, walked.lastLsn + 1, reason);
  }
  segment.lastLsn = walked.lastLsn;
  segment.index = walked.index;
  return walked.index;
}

export class LogReader {
  private readonly waiters = new Set<() => void>();

  constructor(private readonly state: LogState) {}

  /**
   * Reads records with `fromLsn <= lsn <= toLsn` (default: to the last written), verifying each
   * checksum. Throws `CORRUPT_LOG` (segment, offset, LSN) on a bad frame, `NOT_FOUND` when
   * `fromLsn` is below the first kept LSN (dropped by retention).
   */
  *read(fromLsn: number, toLsn: number = this.state.writtenLsn): Generator<WalRecord> {
    const from = Math.max(fromLsn, 1);
    if (from > toLsn) return;
    const firstLsn = firstLsnOf(this.state);
    if (from < firstLsn) {
      throw txlogError('NOT_FOUND', `LSN ${from} is before the first kept LSN ${firstLsn}`, { lsn: from, firstLsn });
    }
    let segmentIndex = this.segmentIndexOf(from);
    let lsn = from;
    while (lsn <= toLsn && segmentIndex < this.state.segments.length) {
      for (const record of this.readSegment(segmentIndex, lsn, toLsn)) {
        yield record;
        lsn = record.lsn + 1;
      }
      segmentIndex += 1;
    }
  }

  /** Epoch of the last record of a segment, read (and verified) like any read. */
  lastEpochOfSegment(segmentIndex: number): number {
    const segment = this.state.segments[segmentIndex]!;
    let epoch = 0;
    for (const record of this.readSegment(segmentIndex, segment.firstLsn, Number.MAX_SAFE_INTEGER)) epoch = record.epoch;
    return epoch;
  }

  /**
   * Follows the log from `fromLsn`: yields what is written, then waits for more, until the
   * signal aborts, the log closes, or the consumer stops.
   */
  async *follow(fromLsn: number, signal?: AbortSignal): AsyncGenerator<WalRecord> {
    let next = fromLsn;
    const aborted = (): boolean => signal?.aborted === true;
    while (!aborted() && !this.state.closed) {
      if (this.state.failure !== undefined) throw this.state.failure;
      if (next <= this.state.writtenLsn) {
        for (const record of this.read(next, this.state.writtenLsn)) {
          yield record;
          next = record.lsn + 1;
          if (aborted()) return;
        }
        continue;
      }
      await this.waitForWrite(signal);
    }
  }

  /** Resolves when a batch is written, the log closes or fails, or the signal aborts. */
  waitForWrite(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.state.closed || signal?.aborted === true) return resolve();
      const wake = (): void => {
        signal?.removeEventListener('abort', wake);
        this.waiters.delete(wake);
        resolve();
      };
      this.waiters.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  /** Something was written, or the log closed or failed: followers look again. */
  wake(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  private *readSegment(segmentIndex: number, fromLsn: number, toLsn: number): Generator<WalRecord> {
    const { segments, writtenLsn, fileSystem } = this.state;
    const segment = segments[segmentIndex]!;
    const isLast = segmentIndex === segments.length - 1;
    const limit = isLast ? Math.min(toLsn, writtenLsn) : toLsn;
    const expectedLast = isLast ? writtenLsn : segments[segmentIndex + 1]!.firstLsn - 1;
    if (segment.index === undefined && limit >= expectedLast) {
      // A sealed segment not yet indexed, read to its end (recovery, a backup catching up):
      // verified and indexed in the same walk that reads it, not in one walk before it.
      yield* this.readWholeSealed(segment, fromLsn, expectedLast);
      return;
    }
    const index = segment.index ?? this.indexSegment(segment, expectedLast);
    let from: SparseEntry = { lsn: segment.firstLsn, offset: segmentHeaderBytes };
    for (const entry of index) {
      if (entry.lsn > fromLsn) break;
      from = entry;
    }
    const fd = fileSystem.open(path.join(this.state.options.dir, segment.name), 'r');
    try {
      // The active segment's end is where the writer is; a sealed one was judged when indexed.
      const walk = walkSegment(fileSystem, fd, { ...this.walkOptions(segment, fd, 'open'), from });
      for (;;) {
        const next = walk.next();
        if (next.done === true) {
          const walked = next.value;
          const lsn = walked.lastLsn + 1;
          if (lsn <= Math.min(limit, expectedLast)) {
            const reason = walked.stop.kind === 'bad' ? walked.stop.reason : 'records missing';
            throw corruptAt(segment.name, walked.stop.offset, lsn, reason);
          }
          return;
        }
        const frame = next.value;
        if (frame.lsn < fromLsn) continue;
        if (frame.lsn > limit) return;
        yield recordOf(segment, frame);
      }
    } finally {
      fileSystem.close(fd);
    }
  }

  /**
   * Reads a sealed segment from its header to its end, judging it as `indexSegment` does: its
   * frames (each checksummed) are yielded as they are walked, and a verdict of corruption comes
   * at the end, after them. A reader that stops early leaves it unindexed.
   */
  private *readWholeSealed(segment: Segment, fromLsn: number, expectedLast: number): Generator<WalRecord> {
    const { fileSystem } = this.state;
    const fd = fileSystem.open(path.join(this.state.options.dir, segment.name), 'r');
    try {
      const walk = walkSegment(fileSystem, fd, this.walkOptions(segment, fd, 'sealed'));
      for (;;) {
        const next = walk.next();
        if (next.done === true) {
          acceptSealed(segment, next.value, expectedLast);
          return;
        }
        if (next.value.lsn >= fromLsn) yield recordOf(segment, next.value);
      }
    } finally {
      fileSystem.close(fd);
    }
  }

  /** Walks a sealed segment once, verifying it whole, to build its sparse index. */
  private indexSegment(segment: Segment, expectedLast: number): SparseEntry[] {
    const { fileSystem } = this.state;
    const fd = fileSystem.open(path.join(this.state.options.dir, segment.name), 'r');
    try {
      return acceptSealed(segment, walkWholeSegment(fileSystem, fd, this.walkOptions(segment, fd, 'sealed')), expectedLast);
    } finally {
      fileSystem.close(fd);
    }
  }

  private walkOptions(segment: Segment, fd: number, ending: SegmentEnding): WalkOptions {
    return { segment, fileBytes: this.state.fileSystem.sizeOf(fd), frameBytesMax: this.state.frameBytesMax, ending };
  }

  private segmentIndexOf(lsn: number): number {
    const segments = this.state.segments;
    let low = 0;
    let high = segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (segments[middle]!.firstLsn <= lsn) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}

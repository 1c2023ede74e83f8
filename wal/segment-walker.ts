/**
 * The one statement of what a valid segment is, walked frame by frame. Recovery (the tail on
 * open), reads (indexing a sealed segment, reading from a sparse index entry), truncation and
 * `txlog inspect` (summary, records, `--verify` workers) all walk segments through here, so
 * they cannot disagree on where a log is torn or corrupt. Nothing here writes.
 *
 * The rules:
 * - the header verifies and names the first LSN the file name does;
 * - frames follow back to back, each verifying, with dense LSNs from the first, and epochs that
 *   never go down;
 * - the written data ends at a zero length field (or the end of the file), and only zeros follow;
 * - otherwise, in the tail segment, bytes after the last valid frame that hold no valid frame
 *   with a higher LSN are a torn tail (recovery cuts them); a valid frame after damage makes it
 *   corruption. A sealed segment was closed only after its writes completed, so anything but
 *   whole frames then zeros is corruption there.
 */
import { segmentHeaderBytes } from './format.js';
import type { FileSystem } from './platform.js';
import { findValidFrameAfter, nonZeroExtentEnd, readSegmentHeader, scanFrames, type ScanStop, type ScannedFrame } from './scan.js';

export type { ScannedFrame } from './scan.js';

/** A sparse index entry every this many bytes of frames, per segment. */
export const indexEveryBytes = 64 * 1024;

export interface SparseEntry {
  lsn: number;
  offset: number;
}

/**
 * How the end of the walk is judged:
 * - `sealed`: a segment closed by rotation; its data must end cleanly.
 * - `tail`: the last segment of a log at rest; it may end in a torn tail.
 * - `open`: not judged (the active segment while it is written to, or a walk that only wants
 *   the frames); the walk just stops where the valid frames stop.
 */
export type SegmentEnding = 'sealed' | 'tail' | 'open';

export type SegmentEnd =
  | { state: 'clean' }
  /** Bytes after the last valid frame of the tail that recovery cuts. */
  | { state: 'torn'; offset: number; bytes: number; reason: string }
  /** Damage at `offset`, where LSN `lsn` should have been. */
  | { state: 'corrupt'; offset: number; lsn: number; reason: string };

export interface WalkOptions {
  /** The segment's file name (for verdicts) and the first LSN that name claims. */
  segment: { name: string; firstLsn: number };
  fileBytes: number;
  /** Largest frame accepted while walking. */
  frameBytesMax: number;
  ending: SegmentEnding;
  /** Start at this sparse index entry instead of at the header (which is then not read). */
  from?: SparseEntry;
  /**
   * After damage in the tail, valid frames are looked for up to the larger of this and the
   * largest frame seen in the segment (never above `frameBytesMax`). The search checksums a
   * candidate at every non-zero byte, so a reader that does not know the writer's limit (and
   * takes the widest) bounds it here. @default frameBytesMax
   */
  searchFrameBytesMax?: number;
}

export interface WalkedSegment {
  /** LSN of the last valid frame walked; one below the first LSN walked when there was none. */
  lastLsn: number;
  /** Epoch of that frame; 0 when there was none. */
  lastEpoch: number;
  /** Where the valid frames end. */
  endOffset: number;
  /** Why the walk stopped, as the frame scanner saw it. */
  stop: ScanStop;
  /** The verdict on the bytes after the last valid frame (always `clean` for `open`). */
  end: SegmentEnd;
  /** A sparse index of the frames walked. */
  index: SparseEntry[];
}

/**
 * Checks a segment's header against the first LSN its name claims. Returns why it does not
 * match, or undefined; throws `NOT_A_LOG`, `UNSUPPORTED_FORMAT` or `CORRUPT_LOG` when the header
 * itself does not verify.
 */
export function headerMismatch(fileSystem: FileSystem, fd: number, segment: string, firstLsn: number): string | undefined {
  const header = readSegmentHeader(fileSystem, fd, segment);
  return header.firstLsn === firstLsn ? undefined : `header says first LSN ${header.firstLsn}`;
}

/**
 * Yields every valid frame of one segment, in order, then returns the verdict. Frames are views
 * of buffers the walk does not reuse (see `scanFrames`). The caller owns `fd`.
 */
export function* walkSegment(fileSystem: FileSystem, fd: number, options: WalkOptions): Generator<ScannedFrame, WalkedSegment> {
  const start = options.from ?? { lsn: options.segment.firstLsn, offset: segmentHeaderBytes };
  const walked: WalkedSegment = {
    lastLsn: start.lsn - 1,
    lastEpoch: 0,
    endOffset: start.offset,
    stop: { kind: 'end', offset: start.offset },
    end: { state: 'clean' },
    index: [],
  };
  if (options.from === undefined) {
    const { name, firstLsn } = options.segment;
    const mismatch = headerMismatch(fileSystem, fd, name, firstLsn);
    if (mismatch !== undefined) {
      return { ...walked, endOffset: 0, end: { state: 'corrupt', offset: 0, lsn: firstLsn, reason: mismatch } };
    }
  }
  const frames = scanFrames(fileSystem, fd, {
    fromOffset: start.offset,
    fileBytes: options.fileBytes,
    expectedLsn: start.lsn,
    frameBytesMax: options.frameBytesMax,
  });
  let nextIndexOffset = start.offset;
  let largestFrameBytes = 0;
  for (;;) {
    const next = frames.next();
    if (next.done === true) {
      walked.stop = next.value;
      break;
    }
    const frame = next.value;
    if (frame.epoch < walked.lastEpoch) {
      const reason = `epoch ${frame.epoch} after epoch ${walked.lastEpoch}`;
      walked.stop = { kind: 'bad', offset: frame.offset, reason };
      walked.end = { state: 'corrupt', offset: frame.offset, lsn: frame.lsn, reason };
      return walked;
    }
    if (frame.offset >= nextIndexOffset) {
      walked.index.push({ lsn: frame.lsn, offset: frame.offset });
      nextIndexOffset = frame.offset + indexEveryBytes;
    }
    yield frame;
    walked.lastLsn = frame.lsn;
    walked.lastEpoch = frame.epoch;
    walked.endOffset = frame.offset + frame.frameBytes;
    largestFrameBytes = Math.max(largestFrameBytes, frame.frameBytes);
  }
  if (options.ending !== 'open') walked.end = judgeEnd(fileSystem, fd, options, walked, largestFrameBytes);
  return walked;
}

/** Walks a whole segment to its verdict, handing each frame to `onFrame` on the way. */
export function walkWholeSegment(
  fileSystem: FileSystem,
  fd: number,
  options: WalkOptions,
  onFrame: (frame: ScannedFrame) => void = () => undefined,
): WalkedSegment {
  const walk = walkSegment(fileSystem, fd, options);
  for (;;) {
    const next = walk.next();
    if (next.done === true) return next.value;
    onFrame(next.value);
  }
}

/** What the bytes after the last valid frame mean: nothing, a torn tail, or corruption. */
function judgeEnd(
  fileSystem: FileSystem,
  fd: number,
  options: WalkOptions,
  walked: WalkedSegment,
  largestFrameBytes: number,
): SegmentEnd {
  const { stop, endOffset } = walked;
  // A clean end is a zero length field (or the end of the file) followed by nothing but zeros.
  const garbageEnd = nonZeroExtentEnd(fileSystem, fd, endOffset, options.fileBytes);
  if (stop.kind === 'end' && garbageEnd === endOffset) return { state: 'clean' };
  const reason = stop.kind === 'bad' ? stop.reason : 'non-zero bytes after the last record';
  const lsn = walked.lastLsn + 1;
  if (options.ending === 'sealed') return { state: 'corrupt', offset: endOffset, lsn, reason: `${reason} in a sealed segment` };
  const searchFrameBytesMax = Math.min(
    options.frameBytesMax,
    Math.max(options.searchFrameBytesMax ?? options.frameBytesMax, largestFrameBytes),
  );
  const later = findValidFrameAfter(fileSystem, fd, {
    fromOffset: endOffset + 1,
    fileBytes: options.fileBytes,
    lsnAbove: walked.lastLsn,
    frameBytesMax: searchFrameBytesMax,
  });
  if (later !== undefined) {
    return { state: 'corrupt', offset: endOffset, lsn, reason: `${reason}; a valid record follows at offset ${later}` };
  }
  return { state: 'torn', offset: endOffset, bytes: garbageEnd - endOffset, reason };
}

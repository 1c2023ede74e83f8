/**
 * Reading a WAL directory file by file, without the `Wal` class: `inspect` needs every frame
 * with its segment and byte offset, a verdict on every segment (not only the tail), and a
 * promise that nothing is ever written. Files are opened 'r' and nothing else is called.
 *
 * Runs on the main thread (summary, records) and in the `--verify` workers, so it is
 * synchronous and what it returns survives structured cloning.
 *
 * The torn-or-corrupt rule is recovery's (`wal/wal.ts`, `scanTail`): after the last valid frame
 * of the last segment, bytes that hold no valid later frame are a torn tail (recovery will cut
 * them); a bad frame followed by a valid one is corruption. In any other segment, anything but
 * whole frames then zeros is corruption, because a segment is sealed only after its writes
 * completed.
 */
import * as path from 'node:path';
import { TxlogError, txlogError } from '../wal/errors.js';
import { frameHeaderBytes, parseSegmentFileName, segmentHeaderBytes, segmentSuffix } from '../wal/format.js';
import { walDefaults } from '../wal/options.js';
import { nodePlatform } from '../wal/platform.js';
import { findValidFrameAfter, nonZeroExtentEnd, readSegmentHeader, scanFrames, type ScanStop, type ScannedFrame } from '../wal/scan.js';

const fileSystem = nodePlatform.fileSystem;

/**
 * The largest record payload any WAL configuration accepts (`recordBytesMax` is at most 256 MiB
 * in `wal/options.ts`). Inspect does not know the writer's limit, so it takes the widest one,
 * bounded further by the file size when scanning.
 */
const recordBytesLimit = 256 * 1024 * 1024;

export interface WalFiles {
  /** The directory holding the segments. */
  walDir: string;
  /** Segment file names, oldest first. */
  segments: string[];
  /** `*.wal` files whose names are not segment names; the WAL ignores them too. */
  ignored: string[];
}

/**
 * Finds the segments of the store at `dir`: `dir/wal` when it is a directory, else `dir` itself
 * when it holds `*.wal` files. Throws NOT_FOUND (no such directory, no segments) or NOT_A_LOG
 * (`dir` is a file).
 */
export function findWalFiles(dir: string): WalFiles {
  const stat = fileSystem.stat(dir);
  if (stat === undefined) throw txlogError('NOT_FOUND', `no such directory: ${dir}`, { dir });
  if (!stat.isDirectory) throw txlogError('NOT_A_LOG', `${dir} is a file, not a store directory`, { dir });
  const nested = path.join(dir, 'wal');
  const walDir = fileSystem.stat(nested)?.isDirectory === true ? nested : dir;
  const names = fileSystem.readdir(walDir).filter((name) => name.endsWith(segmentSuffix));
  const segments: Array<{ name: string; firstLsn: number }> = [];
  const ignored: string[] = [];
  for (const name of names) {
    const firstLsn = parseSegmentFileName(name);
    if (firstLsn === undefined) ignored.push(name);
    else segments.push({ name, firstLsn });
  }
  if (segments.length === 0) {
    const where = walDir === dir ? `${dir} (and no ${nested} directory)` : walDir;
    throw txlogError('NOT_FOUND', `no WAL segments in ${where}`, { dir: walDir });
  }
  segments.sort((a, b) => a.firstLsn - b.firstLsn);
  return { walDir, segments: segments.map((segment) => segment.name), ignored: ignored.sort() };
}

export interface SegmentProblem {
  /** Byte offset in the segment where the damage starts. */
  offset: number;
  /** The LSN that should have been there. */
  lsn: number;
  reason: string;
}

export interface TornTail {
  segment: string;
  offset: number;
  bytes: number;
  reason: string;
}

export interface SegmentRefusal {
  code: 'NOT_A_LOG' | 'UNSUPPORTED_FORMAT';
  message: string;
}

export interface SegmentScan {
  segment: string;
  /** Size of the file on disk (preallocated segments are full size from the start). */
  sizeBytes: number;
  /** Where the frames end: header plus the bytes of every valid frame. */
  usedBytes: number;
  /** From the header; 0 when the header could not be read. */
  formatVersion: number;
  /** First LSN the segment's name claims; its records are `firstLsn..lastLsn`. */
  firstLsn: number;
  /** `firstLsn - 1` when the segment holds no valid record. */
  lastLsn: number;
  records: number;
  /** Distinct epochs of its records, ascending. */
  epochs: number[];
  /** Record count by record type number. */
  recordsByType: Record<number, number>;
  problem?: SegmentProblem;
  torn?: TornTail;
  /** The header says this is not a segment, or one of a newer format. */
  refused?: SegmentRefusal;
}

export interface SegmentTask {
  walDir: string;
  segment: string;
  /** The last segment may end in a torn tail; any other must end cleanly. */
  isLast: boolean;
}

/**
 * Yields every valid frame of one segment, in order, then returns the segment's verdict. Frames
 * are views valid until the next step (see `scanFrames`). Stopping early closes the file.
 */
export function* walkSegment(task: SegmentTask): Generator<ScannedFrame, SegmentScan> {
  const nameFirstLsn = parseSegmentFileName(task.segment);
  if (nameFirstLsn === undefined) throw txlogError('NOT_A_LOG', `${task.segment} is not a segment file name`);
  const fd = fileSystem.open(path.join(task.walDir, task.segment), 'r');
  try {
    const sizeBytes = fileSystem.sizeOf(fd);
    const scan: SegmentScan = {
      segment: task.segment,
      sizeBytes,
      usedBytes: Math.min(sizeBytes, segmentHeaderBytes),
      formatVersion: 0,
      firstLsn: nameFirstLsn,
      lastLsn: nameFirstLsn - 1,
      records: 0,
      epochs: [],
      recordsByType: {},
    };
    const header = readHeader(fd, task.segment);
    if ('refused' in header) return { ...scan, refused: header.refused };
    if ('problem' in header) return { ...scan, problem: { offset: 0, lsn: nameFirstLsn, reason: header.problem } };
    scan.formatVersion = header.formatVersion;
    if (header.firstLsn !== nameFirstLsn) {
      return { ...scan, problem: { offset: 0, lsn: nameFirstLsn, reason: `header says first LSN ${header.firstLsn}` } };
    }
    const frameBytesMax = Math.max(frameHeaderBytes, Math.min(recordBytesLimit + frameHeaderBytes, sizeBytes - segmentHeaderBytes));
    const frames = scanFrames(fileSystem, fd, {
      fromOffset: segmentHeaderBytes,
      fileBytes: sizeBytes,
      expectedLsn: nameFirstLsn,
      frameBytesMax,
    });
    let lastEpoch = 0;
    let largestFrameBytes = 0;
    let stop: ScanStop;
    for (;;) {
      const next = frames.next();
      if (next.done === true) {
        stop = next.value;
        break;
      }
      const frame = next.value;
      if (frame.epoch < lastEpoch) {
        const reason = `epoch ${frame.epoch} after epoch ${lastEpoch}`;
        return { ...scan, problem: { offset: frame.offset, lsn: frame.lsn, reason } };
      }
      yield frame;
      if (frame.epoch !== lastEpoch || scan.records === 0) scan.epochs.push(frame.epoch);
      lastEpoch = frame.epoch;
      scan.records += 1;
      scan.lastLsn = frame.lsn;
      scan.usedBytes = frame.offset + frame.frameBytes;
      largestFrameBytes = Math.max(largestFrameBytes, frame.frameBytes);
      scan.recordsByType[frame.type] = (scan.recordsByType[frame.type] ?? 0) + 1;
    }
    // Looking for a valid frame after damage checksums a candidate at every non-zero byte; with
    // the widest limit, garbage that reads as a huge length would make that quadratic. Frames
    // beyond the default limit and beyond any seen in this segment are not looked for.
    const searchFrameBytesMax = Math.min(frameBytesMax, Math.max(walDefaults.recordBytesMax + frameHeaderBytes, largestFrameBytes));
    return { ...scan, ...endVerdict(fd, task, scan, stop, searchFrameBytesMax) };
  } finally {
    fileSystem.close(fd);
  }
}

/**
 * The frames of `walkSegment`, with the verdict handed to `onEnd` when the segment is read to
 * its end. Breaking out of a loop over it closes the file and skips `onEnd`.
 */
export function* segmentFrames(task: SegmentTask, onEnd: (scan: SegmentScan) => void): Generator<ScannedFrame, void> {
  onEnd(yield* walkSegment(task));
}

/** Scans a whole segment and returns its verdict (what a `--verify` worker does). */
export function scanSegmentFile(task: SegmentTask): SegmentScan {
  const walk = walkSegment(task);
  for (;;) {
    const next = walk.next();
    if (next.done === true) return next.value;
  }
}

function readHeader(
  fd: number,
  segment: string,
): { formatVersion: number; firstLsn: number } | { refused: SegmentRefusal } | { problem: string } {
  try {
    return readSegmentHeader(fileSystem, fd, segment);
  } catch (error) {
    if (!(error instanceof TxlogError)) throw error;
    if (error.code === 'NOT_A_LOG' || error.code === 'UNSUPPORTED_FORMAT') {
      return { refused: { code: error.code, message: error.message } };
    }
    if (error.code === 'CORRUPT_LOG') return { problem: error.message };
    throw error;
  }
}

/** What the bytes after the last valid frame mean: nothing, a torn tail, or corruption. */
function endVerdict(
  fd: number,
  task: SegmentTask,
  scan: SegmentScan,
  stop: ScanStop,
  searchFrameBytesMax: number,
): Pick<SegmentScan, 'problem' | 'torn'> {
  const endOffset = stop.offset;
  // A clean end is a zero length field (or the end of the file) followed by nothing but zeros.
  const garbageEnd = nonZeroExtentEnd(fileSystem, fd, endOffset, scan.sizeBytes);
  if (stop.kind === 'end' && garbageEnd === endOffset) return {};
  const reason = stop.kind === 'bad' ? stop.reason : 'non-zero bytes after the last record';
  const lsn = scan.lastLsn + 1;
  if (!task.isLast) return { problem: { offset: endOffset, lsn, reason: `${reason} in a sealed segment` } };
  const later = findValidFrameAfter(fileSystem, fd, {
    fromOffset: endOffset + 1,
    fileBytes: scan.sizeBytes,
    lsnAbove: scan.lastLsn,
    frameBytesMax: searchFrameBytesMax,
  });
  if (later !== undefined) {
    return { problem: { offset: endOffset, lsn, reason: `${reason}; a valid record follows at offset ${later}` } };
  }
  return { torn: { segment: task.segment, offset: endOffset, bytes: garbageEnd - endOffset, reason } };
}

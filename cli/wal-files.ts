/**
 * Reading a WAL directory file by file, without the `Wal` class: `inspect` needs every frame
 * with its segment and byte offset, a verdict on every segment (not only the tail), and a
 * promise that nothing is ever written. Files are opened 'r' and nothing else is called.
 *
 * Runs on the main thread (summary, records) and in the `--verify` workers, so it is
 * synchronous and what it returns survives structured cloning.
 *
 * What makes a segment valid, torn or corrupt is decided by the library's one segment walker
 * (`wal/segment-walker.ts`), the same that recovery and reads use; this file keeps what is the
 * CLI's own: finding the files, counting records, and the report's shape.
 */
import * as path from 'node:path';
import { TxlogError, txlogError } from '../wal/errors.js';
import { frameHeaderBytes, parseSegmentFileName, segmentHeaderBytes, segmentSuffix } from '../wal/format.js';
import { walDefaults } from '../wal/options.js';
import { nodePlatform } from '../wal/platform.js';
import { assertNever } from '../wal/assert.js';
import { readSegmentHeader } from '../wal/scan.js';
import { walkSegment as walkFrames, type ScannedFrame, type SegmentEnd } from '../wal/segment-walker.js';

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
 * Yields every valid frame of one segment, in order, then returns the segment's verdict: the
 * library's segment walker (`wal/segment-walker.ts`) judges it, by the rules recovery and reads
 * use; this adds the counts and the shape `inspect` reports. Frames are views valid until the
 * next step (see `scanFrames`). Stopping early closes the file.
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
    const walk = walkFrames(fileSystem, fd, {
      segment: { name: task.segment, firstLsn: nameFirstLsn },
      fileBytes: sizeBytes,
      frameBytesMax: Math.max(frameHeaderBytes, Math.min(recordBytesLimit + frameHeaderBytes, sizeBytes - segmentHeaderBytes)),
      ending: task.isLast ? 'tail' : 'sealed',
      // Inspect does not know the writer's limit: see `recordBytesLimit`.
      searchFrameBytesMax: walDefaults.recordBytesMax + frameHeaderBytes,
    });
    for (;;) {
      const next = walk.next();
      if (next.done === true) return { ...scan, ...verdictOf(task, next.value.end) };
      const frame = next.value;
      yield frame;
      if (scan.epochs[scan.epochs.length - 1] !== frame.epoch) scan.epochs.push(frame.epoch);
      scan.records += 1;
      scan.lastLsn = frame.lsn;
      scan.usedBytes = frame.offset + frame.frameBytes;
      scan.recordsByType[frame.type] = (scan.recordsByType[frame.type] ?? 0) + 1;
    }
  } finally {
    fileSystem.close(fd);
  }
}

function verdictOf(task: SegmentTask, end: SegmentEnd): Pick<SegmentScan, 'problem' | 'torn'> {
  switch (end.state) {
    case 'clean':
      return {};
    case 'torn':
      return { torn: { segment: task.segment, offset: end.offset, bytes: end.bytes, reason: end.reason } };
    case 'corrupt':
      return { problem: { offset: end.offset, lsn: end.lsn, reason: end.reason } };
    default:
      return assertNever(end, 'segment end');
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

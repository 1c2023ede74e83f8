/**
 * The segment files on disk: listing them, recovering the tail on open (cut a torn tail, refuse
 * corruption), and creating new segments atomically. `Wal` (wal.ts) owns the running log; this
 * file holds what happens to the files before and around it.
 */
import * as path from 'node:path';
import { TxlogError, txlogError } from './errors.js';
import { encodeSegmentHeader, parseSegmentFileName, segmentFileName, segmentHeaderBytes } from './format.js';
import { frameBytesMaxOf, type ResolvedWalOptions } from './options.js';
import type { FileSystem } from './platform.js';
import { findValidFrameAfter, nonZeroExtentEnd, readSegmentHeader, scanFrames } from './scan.js';

/** A sparse index entry every this many bytes of frames, per segment. */
export const indexEveryBytes = 64 * 1024;

export type TailState =
  | { state: 'clean' }
  /** Recovery found a torn or checksum-failing tail and (unless read-only) cut it. */
  | { state: 'cut' | 'torn'; segment: string; offset: number; bytes: number; reason: string };

export interface SparseEntry {
  lsn: number;
  offset: number;
}

export interface Segment {
  name: string;
  firstLsn: number;
  /** Last LSN in it; `firstLsn - 1` when empty. Known for the active segment and once scanned. */
  lastLsn: number;
  /** Built on first read (or by recovery for the tail segment). */
  index: SparseEntry[] | undefined;
}

export function corruptAt(segment: string, offset: number, lsn: number, reason: string): TxlogError {
  return txlogError('CORRUPT_LOG', `corrupt WAL: ${segment} at byte offset ${offset}, LSN ${lsn}: ${reason}`, {
    segment,
    offset,
    lsn,
    reason,
  });
}

export function zeroRange(fileSystem: FileSystem, fd: number, from: number, to: number): void {
  const chunkBytes = 1024 * 1024;
  const zeros = Buffer.alloc(Math.min(chunkBytes, Math.max(to - from, 0)));
  for (let at = from; at < to; at += chunkBytes) {
    fileSystem.writev(fd, [zeros.subarray(0, Math.min(chunkBytes, to - at))], at);
  }
}

export interface OpenedState {
  segments: Segment[];
  activeFd: number | undefined;
  writeOffset: number;
  activeFileBytes: number;
  lastLsn: number;
  lastEpoch: number;
  tail: TailState;
}

function listSegments(options: ResolvedWalOptions): Segment[] {
  const fileSystem = options.platform.fileSystem;
  const stat = fileSystem.stat(options.dir);
  if (stat === undefined) {
    if (options.readOnly) throw txlogError('NOT_FOUND', `no WAL directory at ${options.dir}`, { dir: options.dir });
    fileSystem.mkdirp(options.dir);
    return [];
  }
  if (!stat.isDirectory) throw txlogError('NOT_A_LOG', `${options.dir} is not a directory`, { dir: options.dir });
  const segments: Segment[] = [];
  for (const name of fileSystem.readdir(options.dir)) {
    const firstLsn = parseSegmentFileName(name);
    if (firstLsn !== undefined) segments.push({ name, firstLsn, lastLsn: firstLsn - 1, index: undefined });
    else if (name.endsWith('.tmp') && !options.readOnly) fileSystem.unlink(path.join(options.dir, name));
  }
  segments.sort((a, b) => a.firstLsn - b.firstLsn);
  return segments;
}

/** Scans the tail segment, cuts a torn tail (unless read-only), refuses corruption. */
export function recover(options: ResolvedWalOptions): OpenedState {
  const fileSystem = options.platform.fileSystem;
  const segments = listSegments(options);
  if (segments.length === 0) {
    if (options.readOnly) {
      return { segments, activeFd: undefined, writeOffset: 0, activeFileBytes: 0, lastLsn: 0, lastEpoch: 0, tail: { state: 'clean' } };
    }
    const created = createSegment(options, 1, undefined);
    segments.push({ name: created.name, firstLsn: 1, lastLsn: 0, index: [] });
    return {
      segments,
      activeFd: created.fd,
      writeOffset: segmentHeaderBytes,
      activeFileBytes: created.fileBytes,
      lastLsn: 0,
      lastEpoch: 0,
      tail: { state: 'clean' },
    };
  }
  for (const segment of segments.slice(0, -1)) checkHeader(fileSystem, options.dir, segment);
  const last = segments[segments.length - 1]!;
  const fd = fileSystem.open(path.join(options.dir, last.name), options.readOnly ? 'r' : 'r+');
  let keepOpen = false;
  try {
    const scanned = scanTail(options, fd, last);
    last.lastLsn = scanned.lastLsn;
    last.index = scanned.index;
    let lastEpoch = scanned.lastEpoch;
    if (scanned.lastLsn < last.firstLsn && segments.length > 1) {
      lastEpoch = epochOfLastRecord(options, segments, segments.length - 2);
    }
    keepOpen = !options.readOnly;
    return {
      segments,
      activeFd: keepOpen ? fd : undefined,
      writeOffset: scanned.endOffset,
      activeFileBytes: scanned.fileBytes,
      lastLsn: scanned.lastLsn,
      lastEpoch,
      tail: scanned.tail,
    };
  } finally {
    if (!keepOpen) fileSystem.close(fd);
  }
}

function checkHeader(fileSystem: FileSystem, dir: string, segment: Segment): void {
  const fd = fileSystem.open(path.join(dir, segment.name), 'r');
  try {
    const header = readSegmentHeader(fileSystem, fd, segment.name);
    if (header.firstLsn !== segment.firstLsn) {
      throw corruptAt(segment.name, 0, segment.firstLsn, `header says first LSN ${header.firstLsn}`);
    }
  } finally {
    fileSystem.close(fd);
  }
}

function epochOfLastRecord(options: ResolvedWalOptions, segments: Segment[], segmentIndex: number): number {
  const fileSystem = options.platform.fileSystem;
  const segment = segments[segmentIndex]!;
  const fd = fileSystem.open(path.join(options.dir, segment.name), 'r');
  try {
    let epoch = 0;
    const scan = scanFrames(fileSystem, fd, {
      fromOffset: segmentHeaderBytes,
      fileBytes: fileSystem.sizeOf(fd),
      expectedLsn: segment.firstLsn,
      frameBytesMax: frameBytesMaxOf(options),
    });
    for (const frame of scan) epoch = frame.epoch;
    return epoch;
  } finally {
    fileSystem.close(fd);
  }
}

interface ScannedTail {
  lastLsn: number;
  lastEpoch: number;
  endOffset: number;
  fileBytes: number;
  index: SparseEntry[];
  tail: TailState;
}

function scanTail(options: ResolvedWalOptions, fd: number, segment: Segment): ScannedTail {
  const fileSystem = options.platform.fileSystem;
  const frameBytesMax = frameBytesMaxOf(options);
  const header = readSegmentHeader(fileSystem, fd, segment.name);
  if (header.firstLsn !== segment.firstLsn) {
    throw corruptAt(segment.name, 0, segment.firstLsn, `header says first LSN ${header.firstLsn}`);
  }
  const fileBytes = fileSystem.sizeOf(fd);
  const index: SparseEntry[] = [];
  let nextIndexOffset = segmentHeaderBytes;
  let lastLsn = segment.firstLsn - 1;
  let lastEpoch = 0;
  const scan = scanFrames(fileSystem, fd, {
    fromOffset: segmentHeaderBytes,
    fileBytes,
    expectedLsn: segment.firstLsn,
    frameBytesMax,
  });
  let stop;
  for (;;) {
    const next = scan.next();
    if (next.done === true) {
      stop = next.value;
      break;
    }
    const frame = next.value;
    if (frame.epoch < lastEpoch) {
      throw corruptAt(segment.name, frame.offset, frame.lsn, `epoch ${frame.epoch} after epoch ${lastEpoch}`);
    }
    if (frame.offset >= nextIndexOffset) {
      index.push({ lsn: frame.lsn, offset: frame.offset });
      nextIndexOffset = frame.offset + indexEveryBytes;
    }
    lastLsn = frame.lsn;
    lastEpoch = frame.epoch;
  }
  const endOffset = stop.offset;
  const garbageEnd = nonZeroExtentEnd(fileSystem, fd, endOffset, fileBytes);
  const result = { lastLsn, lastEpoch, endOffset, fileBytes, index };
  if (stop.kind === 'end' && garbageEnd === endOffset) return { ...result, tail: { state: 'clean' } };
  const reason = stop.kind === 'bad' ? stop.reason : 'non-zero bytes after the last record';
  const later = findValidFrameAfter(fileSystem, fd, {
    fromOffset: endOffset + 1,
    fileBytes,
    lsnAbove: lastLsn,
    frameBytesMax,
  });
  if (later !== undefined) {
    throw corruptAt(segment.name, endOffset, lastLsn + 1, `${reason}; a valid record follows at offset ${later}`);
  }
  const bytes = garbageEnd - endOffset;
  if (options.readOnly) return { ...result, tail: { state: 'torn', segment: segment.name, offset: endOffset, bytes, reason } };
  zeroRange(fileSystem, fd, endOffset, garbageEnd);
  fileSystem.fdatasync(fd);
  return { ...result, tail: { state: 'cut', segment: segment.name, offset: endOffset, bytes, reason } };
}

/**
 * Creates a segment atomically: the header is written and synced under a temporary name, then
 * renamed, and the directory synced, so a crash never leaves a segment with a torn header.
 */
export function createSegment(
  options: ResolvedWalOptions,
  firstLsn: number,
  sparePath: string | undefined,
): { name: string; fd: number; fileBytes: number } {
  const fileSystem = options.platform.fileSystem;
  const name = segmentFileName(firstLsn);
  const finalPath = path.join(options.dir, name);
  let temporaryPath = sparePath;
  let fd: number;
  let fileBytes: number;
  if (temporaryPath !== undefined) {
    fd = fileSystem.open(temporaryPath, 'r+');
    fileBytes = fileSystem.sizeOf(fd);
  } else {
    temporaryPath = `${finalPath}.tmp`;
    fd = fileSystem.open(temporaryPath, 'wx');
    fileBytes = segmentHeaderBytes;
    if (options.preallocate) {
      zeroRange(fileSystem, fd, 0, options.segmentBytes);
      fileBytes = options.segmentBytes;
    }
  }
  fileSystem.writev(fd, [encodeSegmentHeader(firstLsn)], 0);
  fileSystem.fdatasync(fd);
  fileSystem.rename(temporaryPath, finalPath);
  fileSystem.syncDirectory(options.dir);
  return { name, fd, fileBytes: Math.max(fileBytes, segmentHeaderBytes) };
}

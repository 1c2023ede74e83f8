/**
 * The segment files on disk: listing them, recovering the tail on open (cut a torn tail, refuse
 * corruption), and creating new segments atomically. `Wal` (wal.ts) owns the running log; this
 * file holds what happens to the files before and around it.
 */
import * as path from 'node:path';
import { TxlogError, txlogError } from './errors.js';
import { assertNever } from './assert.js';
import { encodeSegmentHeader, parseSegmentFileName, segmentFileName, segmentHeaderBytes } from './format.js';
import { frameBytesMaxOf, type ResolvedWalOptions } from './options.js';
import type { FileSystem } from './platform.js';
import { headerMismatch, walkWholeSegment, type SparseEntry } from './segment-walker.js';

export { indexEveryBytes, type SparseEntry } from './segment-walker.js';

export type TailState =
  | { state: 'clean' }
  /** Recovery found a torn or checksum-failing tail and (unless read-only) cut it. */
  | { state: 'cut' | 'torn'; segment: string; offset: number; bytes: number; reason: string };

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
      lastEpoch = epochOfLastRecord(options, segments[segments.length - 2]!);
    }
    keepOpen = !options.readOnly;
    // The tail may hold records a process that died wrote but never synced: they are in the
    // page cache only. Make them durable before anything follows them, or a machine crash
    // could later drop them while records after them (in a newer segment) survive, leaving a
    // hole that no open gets past (found by the simulator).
    if (keepOpen && scanned.tail.state === 'clean') fileSystem.fdatasync(fd);
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
    const mismatch = headerMismatch(fileSystem, fd, segment.name, segment.firstLsn);
    if (mismatch !== undefined) throw corruptAt(segment.name, 0, segment.firstLsn, mismatch);
  } finally {
    fileSystem.close(fd);
  }
}

/**
 * Epoch of the last record of a sealed segment. Open scans only the tail segment; this one is
 * verified when first read, so its end is not judged here.
 */
export function epochOfLastRecord(options: ResolvedWalOptions, segment: Segment): number {
  const fileSystem = options.platform.fileSystem;
  const fd = fileSystem.open(path.join(options.dir, segment.name), 'r');
  try {
    const walked = walkWholeSegment(fileSystem, fd, {
      segment,
      fileBytes: fileSystem.sizeOf(fd),
      frameBytesMax: frameBytesMaxOf(options),
      ending: 'open',
    });
    return walked.lastEpoch;
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
  const fileBytes = fileSystem.sizeOf(fd);
  const walked = walkWholeSegment(fileSystem, fd, {
    segment,
    fileBytes,
    frameBytesMax: frameBytesMaxOf(options),
    ending: 'tail',
  });
  const { lastLsn, lastEpoch, endOffset, index, end } = walked;
  const result = { lastLsn, lastEpoch, endOffset, fileBytes, index };
  switch (end.state) {
    case 'clean':
      return { ...result, tail: { state: 'clean' } };
    case 'corrupt':
      throw corruptAt(segment.name, end.offset, end.lsn, end.reason);
    case 'torn': {
      const torn = { segment: segment.name, offset: end.offset, bytes: end.bytes, reason: end.reason };
      if (options.readOnly) return { ...result, tail: { state: 'torn', ...torn } };
      zeroRange(fileSystem, fd, end.offset, end.offset + end.bytes);
      fileSystem.fdatasync(fd);
      return { ...result, tail: { state: 'cut', ...torn } };
    }
    default:
      return assertNever(end, 'segment end');
  }
}

/**
 * Creates a segment atomically: the header is written and synced under a temporary name, then
 * renamed, and the directory synced, so a crash never leaves a segment with a torn header.
 * A disk error (a disk too small for a preallocated segment, most often) is `IO_ERROR` naming
 * the path and the bytes needed; the temporary file is removed, so it does not hold the space.
 */
export function createSegment(
  options: ResolvedWalOptions,
  firstLsn: number,
  sparePath: string | undefined,
): { name: string; fd: number; fileBytes: number } {
  const fileSystem = options.platform.fileSystem;
  const name = segmentFileName(firstLsn);
  const finalPath = path.join(options.dir, name);
  const temporaryPath = sparePath ?? `${finalPath}.tmp`;
  const bytesNeeded = sparePath === undefined && options.preallocate ? options.segmentBytes : segmentHeaderBytes;
  let fd: number | undefined;
  try {
    let fileBytes: number;
    if (sparePath !== undefined) {
      fd = fileSystem.open(sparePath, 'r+');
      fileBytes = fileSystem.sizeOf(fd);
    } else {
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
  } catch (error) {
    if (fd !== undefined) closeQuietly(fileSystem, fd);
    // A spare that failed is left for the next open to check (by its size) or replace.
    if (sparePath === undefined) removeQuietly(fileSystem, temporaryPath);
    throw txlogError(
      'IO_ERROR',
      `cannot create WAL segment ${finalPath} (${bytesNeeded} bytes needed): ${String(error)}`,
      { path: finalPath, bytesNeeded },
      error,
    );
  }
}

/** Cleanup on an error path: the first error is the one worth reporting. */
function closeQuietly(fileSystem: FileSystem, fd: number): void {
  try {
    fileSystem.close(fd);
  } catch {
    // The descriptor is released by the kernel either way.
  }
}

function removeQuietly(fileSystem: FileSystem, filePath: string): void {
  try {
    if (fileSystem.stat(filePath) !== undefined) fileSystem.unlink(filePath);
  } catch {
    // Left behind, it is removed as a stale `*.tmp` at the next open.
  }
}

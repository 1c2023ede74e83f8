/**
 * Copying a WAL for a backup: every whole, valid frame of the source's segment files, written
 * again through a fresh `Wal` in the target (fresh segment headers, each frame checked before it
 * is written: checksum, dense LSN, epochs that never go down), then fdatasync'd.
 *
 * The source may be written to while we read it, by this process or by another one: the reads
 * go through the files, never through the writer's memory. That is safe because a WAL only ever
 * appends: a sealed segment (one with a later segment beside it) is complete, and in the last
 * segment we stop where the valid frames stop (the segment walker's `open` ending), so a frame
 * the writer is halfway through, or a page not yet written, is simply where the copy ends. Every
 * frame up to the LSN the caller needs (`atLeastLsn`: the state copy's LSN, taken before the WAL
 * is read) was written before we started, so the copy always reaches it.
 */
import * as path from 'node:path';
import { txlogError } from '../wal/errors.js';
import { frameHeaderBytes, parseSegmentFileName, segmentHeaderBytes } from '../wal/format.js';
import { nodePlatform } from '../wal/platform.js';
import { walkSegment } from '../wal/segment-walker.js';
import { Wal } from '../wal/wal.js';

/** The widest record any WAL configuration writes (`recordBytesMax` ≤ 256 MiB in wal/options.ts). */
const recordBytesLimit = 256 * 1024 * 1024;
/** Segments of the copy are at least this large (the WAL's default), so a copy rotates rarely. */
const copySegmentBytesMin = 64 * 1024 * 1024;
/** Frames appended to the copy before we wait for them and let the event loop run. */
const copyChunkBytesMax = 4 * 1024 * 1024;

export interface WalCopy {
  firstLsn: number;
  /** The last LSN copied (`firstLsn - 1` for an empty log). */
  lastLsn: number;
  /** Epoch of that record; 0 for an empty log. */
  lastEpoch: number;
  /** Segment file names in the copy, oldest first. */
  segments: string[];
}

export interface WalCopyOptions {
  sourceDir: string;
  targetDir: string;
  /** The copy must reach this LSN (else the source changed under us: an error). */
  atLeastLsn: number;
  /** Bytes of frames copied so far, and of the source's segment files in all. */
  onProgress?: (copiedBytes: number, totalBytes: number) => void;
}

interface SourceSegment {
  name: string;
  firstLsn: number;
  sizeBytes: number;
}

export async function copyWal(options: WalCopyOptions): Promise<WalCopy> {
  const fileSystem = nodePlatform.fileSystem;
  const sources = listSourceSegments(options.sourceDir);
  const firstLsn = sources[0]?.firstLsn ?? 1;
  if (firstLsn !== 1) {
    // Retention is not used by the store yet; a copy starting above 1 would need a first
    // segment named by its LSN, which `Wal.open` on an empty directory does not make.
    throw txlogError('UNSUPPORTED_FORMAT', `the WAL in ${options.sourceDir} starts at LSN ${firstLsn}; backups of a truncated WAL are not supported yet`);
  }
  const largestSegmentBytes = Math.max(0, ...sources.map((segment) => segment.sizeBytes));
  const segmentBytes = Math.min(Math.max(copySegmentBytesMin, largestSegmentBytes), 2 ** 32 - 1);
  const target = await Wal.open({
    dir: options.targetDir,
    fsync: 'never',
    preallocate: false,
    segmentBytes,
    recordBytesMax: Math.min(recordBytesLimit, segmentBytes - segmentHeaderBytes - frameHeaderBytes),
    log: () => undefined,
  });
  const totalBytes = sources.reduce((sum, segment) => sum + segment.sizeBytes, 0);
  let copiedBytes = 0;
  let lastLsn = firstLsn - 1;
  let lastEpoch = 0;
  try {
    for (const [index, source] of sources.entries()) {
      const next = sources[index + 1];
      const fd = fileSystem.open(path.join(options.sourceDir, source.name), 'r');
      try {
        const walk = walkSegment(fileSystem, fd, {
          segment: { name: source.name, firstLsn: source.firstLsn },
          fileBytes: fileSystem.sizeOf(fd),
          frameBytesMax: recordBytesLimit + frameHeaderBytes,
          ending: next === undefined ? 'open' : 'sealed',
        });
        let pending: Array<Promise<number>> = [];
        let pendingBytes = 0;
        for (;;) {
          const step = walk.next();
          if (step.done === true) {
            if (step.value.end.state === 'corrupt') {
              const end = step.value.end;
              throw txlogError('CORRUPT_LOG', `corrupt WAL: ${source.name} at byte offset ${end.offset}, LSN ${end.lsn}: ${end.reason}`);
            }
            break;
          }
          const frame = step.value;
          pending.push(target.appendFrame(frame.frame));
          pendingBytes += frame.frameBytes;
          lastLsn = frame.lsn;
          lastEpoch = frame.epoch;
          if (pendingBytes >= copyChunkBytesMax) {
            await Promise.all(pending);
            copiedBytes += pendingBytes;
            options.onProgress?.(copiedBytes, totalBytes);
            pending = [];
            pendingBytes = 0;
          }
        }
        await Promise.all(pending);
        copiedBytes += pendingBytes;
      } finally {
        fileSystem.close(fd);
      }
      if (next !== undefined && lastLsn !== next.firstLsn - 1) {
        throw txlogError('CORRUPT_LOG', `corrupt WAL: ${source.name} ends at LSN ${lastLsn} but ${next.name} starts at ${next.firstLsn}`);
      }
      options.onProgress?.(copiedBytes, totalBytes);
    }
    if (lastLsn < options.atLeastLsn) {
      throw txlogError('STORE_FAILED', `the WAL copy ends at LSN ${lastLsn}, below the state copy's ${options.atLeastLsn}: the source log was cut while it was copied; try again`);
    }
    await target.settle();
    target.syncNow();
    return { firstLsn, lastLsn, lastEpoch, segments: target.segmentNames };
  } finally {
    await target.close();
  }
}

function listSourceSegments(dir: string): SourceSegment[] {
  const fileSystem = nodePlatform.fileSystem;
  const stat = fileSystem.stat(dir);
  if (stat === undefined) throw txlogError('NOT_FOUND', `no WAL directory at ${dir}`, { dir });
  if (!stat.isDirectory) throw txlogError('NOT_A_LOG', `${dir} is not a directory`, { dir });
  const segments: SourceSegment[] = [];
  for (const name of fileSystem.readdir(dir)) {
    const firstLsn = parseSegmentFileName(name);
    if (firstLsn === undefined) continue;
    segments.push({ name, firstLsn, sizeBytes: fileSystem.stat(path.join(dir, name))?.sizeBytes ?? 0 });
  }
  if (segments.length === 0) throw txlogError('NOT_FOUND', `no WAL segments in ${dir}`, { dir });
  return segments.sort((a, b) => a.firstLsn - b.firstLsn);
}

/**
 * The seams through which disk, time and randomness reach txlog. Every layer takes these as
 * options; `nodePlatform` is the one real implementation. A simulator (or a fault-injecting
 * test) swaps in its own to tear writes, fail fsyncs or drive time from one seed.
 *
 * The file system interface is mostly synchronous on purpose: the WAL writes each batch on the
 * event-loop thread, and fdatasyncs there too unless `syncOnWorkerThread` is set (a replicated
 * node); background work (preallocating a spare segment) goes to worker threads (see
 * ARCHITECTURE.md, "Group commit syncs inline by default, on a worker thread in a node").
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { lockDirectoryBySocket, type DirectoryLock } from './directory-lock.js';

export type { DirectoryLock } from './directory-lock.js';

export interface FileStat {
  sizeBytes: number;
  isFile: boolean;
  isDirectory: boolean;
}

export interface FileSystem {
  open(path: string, flags: 'r' | 'r+' | 'wx'): number;
  close(fd: number): void;
  /** Reads up to `length` bytes at `position`; returns how many were read (0 at end of file). */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  /** Writes all of `buffers` at `position`, in order. */
  writev(fd: number, buffers: readonly Uint8Array[], position: number): void;
  fdatasync(fd: number): void;
  /**
   * fdatasync off the event-loop thread (`syncOnWorkerThread`): the event loop keeps running
   * while it syncs (group commit pipelining). Node runs it on libuv's worker pool; a simulator
   * resolves it when its schedule says the sync is done.
   */
  fdatasyncAsync(fd: number): Promise<void>;
  truncate(fd: number, lengthBytes: number): void;
  sizeOf(fd: number): number;
  stat(path: string): FileStat | undefined;
  readdir(dir: string): string[];
  mkdirp(dir: string): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** Makes a directory's entries (created, renamed, deleted files) durable. */
  syncDirectory(dir: string): void;
  /** Fills `lengthBytes` bytes with zeros from `position` without blocking the event loop. */
  fillZeros(fd: number, position: number, lengthBytes: number): Promise<void>;
  /**
   * Takes the lock the one writer of the directory `dir` (which exists) holds, or resolves
   * undefined when a live holder has it: another process, or another open in this one. A
   * process that ends, however it ends, holds no lock (`directory-lock.ts`).
   */
  lockDirectory(dir: string): Promise<DirectoryLock | undefined>;
}

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch (for records and `ctx.now()`). */
  nowMs(): number;
  /** Monotonic milliseconds, for timeouts and latency; never goes backwards. */
  monotonicMs(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /**
   * Runs `callback` once this turn of the event loop has handled its I/O (Node's
   * `setImmediate`): later than a microtask, so whatever else arrives in this turn runs first.
   */
  setImmediate(callback: () => void): TimerHandle;
}

export interface Random {
  /** A float in [0, 1). */
  float(): number;
  bytes(count: number): Uint8Array;
}

export interface Platform {
  fileSystem: FileSystem;
  clock: Clock;
  random: Random;
}

const zeroChunkBytes = 1024 * 1024;

function writevAll(fd: number, buffers: readonly Uint8Array[], position: number): void {
  let remaining = buffers;
  let at = position;
  while (remaining.length > 0) {
    let written = fs.writevSync(fd, remaining, at);
    at += written;
    // A short write is legal; resume from the first byte not yet written. (One slice per short
    // write, not one per buffer: a batch holds up to 1024 buffers.)
    let done = 0;
    while (done < remaining.length && written >= remaining[done]!.byteLength) {
      written -= remaining[done]!.byteLength;
      done += 1;
    }
    if (done === remaining.length) return;
    const rest = remaining.slice(done);
    rest[0] = rest[0]!.subarray(written);
    remaining = rest;
  }
}

export const nodeFileSystem: FileSystem = {
  open: (path, flags) => fs.openSync(path, flags),
  close: (fd) => fs.closeSync(fd),
  read: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  writev: writevAll,
  fdatasync: (fd) => fs.fdatasyncSync(fd),
  fdatasyncAsync: (fd) => new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()))),
  truncate: (fd, lengthBytes) => fs.ftruncateSync(fd, lengthBytes),
  sizeOf: (fd) => fs.fstatSync(fd).size,
  stat(path) {
    const stats = fs.statSync(path, { throwIfNoEntry: false });
    if (stats === undefined) return undefined;
    return { sizeBytes: stats.size, isFile: stats.isFile(), isDirectory: stats.isDirectory() };
  },
  readdir: (dir) => fs.readdirSync(dir),
  mkdirp: (dir) => void fs.mkdirSync(dir, { recursive: true }),
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (path) => fs.unlinkSync(path),
  syncDirectory(dir) {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  async fillZeros(fd, position, lengthBytes) {
    const zeros = Buffer.alloc(Math.min(zeroChunkBytes, lengthBytes));
    let at = position;
    const end = position + lengthBytes;
    while (at < end) {
      const chunk = Math.min(zeros.length, end - at);
      const { bytesWritten } = await new Promise<{ bytesWritten: number }>((resolve, reject) =>
        fs.write(fd, zeros, 0, chunk, at, (error, bytesWritten) =>
          error ? reject(error) : resolve({ bytesWritten }),
        ),
      );
      at += bytesWritten;
    }
    await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
  },
  lockDirectory: lockDirectoryBySocket,
};

export const nodeClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
  setImmediate(callback) {
    const handle = setImmediate(callback);
    return { cancel: () => clearImmediate(handle) };
  },
};

export const nodeRandom: Random = {
  float: () => Math.random(),
  bytes: (count) => randomBytes(count),
};

export const nodePlatform: Platform = { fileSystem: nodeFileSystem, clock: nodeClock, random: nodeRandom };

/**
 * A simulated disk behind the `FileSystem` seam, one per simulated machine, with the failure
 * semantics of a real one:
 * - A write lands in the page cache: readers see it at once, but it survives a machine crash only
 *   once an fdatasync of its file covered it. At a crash each file keeps its synced content plus
 *   a random prefix of the writes made since, the last of them possibly torn at any byte.
 * - A created, renamed or deleted name survives a crash only once its directory was synced.
 * - Faults drawn from the seed: fdatasync fails (EIO), a write fails (ENOSPC), fdatasync is slow.
 * A process crash (not a machine crash) keeps the page cache: nothing is lost.
 */
import type { FileStat, FileSystem } from '../../wal/platform.js';
import type { SeededRandom } from '../helpers/random.js';
import type { ProcessClock } from './scheduler.js';

export interface DiskFaults {
  /** Probability that one fdatasync fails with EIO. */
  syncFailure: number;
  /** Probability that one write fails with ENOSPC (nothing of it written). */
  writeFailure: number;
  /** Probability that one asynchronous fdatasync takes 5..50 ms instead of 0.1..1 ms. */
  slowSync: number;
}

export const noDiskFaults: DiskFaults = { syncFailure: 0, writeFailure: 0, slowSync: 0 };

interface Inode {
  id: number;
  content: Buffer;
  lengthBytes: number;
  durable: Buffer;
  durableLengthBytes: number;
  /** Writes since the last fdatasync, in order (a crash keeps a prefix, the last maybe torn). */
  unsynced: Array<{ position: number; bytes: Buffer }>;
}

interface Handle {
  inode: Inode;
  /** The machine incarnation that opened it: a handle from before a crash fails. */
  incarnation: number;
}

const directoryMarker = -1;

export class SimDisk {
  private nextInode = 1;
  private nextFd = 10;
  private incarnation = 0;
  /** path → inode id (directoryMarker for a directory), as processes see it now. */
  private names = new Map<string, number>();
  /** What the namespace would be after a crash: updated per directory by syncDirectory. */
  private durableNames = new Map<string, number>();
  private readonly inodes = new Map<number, Inode>();
  private readonly handles = new Map<number, Handle>();
  /** Directory → the incarnation whose process holds its lock (a lock dies with its process). */
  private readonly locks = new Map<string, number>();
  faults: DiskFaults = noDiskFaults;
  /** Counted faults, for the run's summary. */
  injected = { syncFailures: 0, writeFailures: 0, tornWrites: 0, lostWrites: 0 };

  constructor(
    private readonly random: SeededRandom,
    readonly name: string,
  ) {}

  /**
   * The FileSystem a process on this machine uses; `clock` is that process's clock. Paths under
   * `root` (the process's store directory, which differs between incarnations because LMDB's
   * state lives in a real directory) are stored under one name, `/disk`, so every incarnation
   * sees the same files.
   */
  fileSystemFor(clock: ProcessClock, root: string): FileSystem {
    const disk = this;
    const incarnation = this.incarnation;
    const canonical = (path: string): string => (path.startsWith(root) ? `/disk${path.slice(root.length)}` : path);
    const handle = (fd: number): Handle => {
      const found = disk.handles.get(fd);
      if (found === undefined || found.incarnation !== incarnation) throw errno('EBADF', `bad file descriptor ${fd}`);
      return found;
    };
    return {
      open(realPath, flags) {
        disk.checkAlive(incarnation);
        const path = canonical(realPath);
        let id = disk.names.get(path);
        if (flags === 'wx') {
          if (id !== undefined) throw errno('EEXIST', `file exists: ${path}`);
          id = disk.createInode();
          disk.names.set(path, id);
        } else if (id === undefined || id === directoryMarker) {
          throw errno('ENOENT', `no such file: ${path}`);
        }
        const fd = disk.nextFd++;
        disk.handles.set(fd, { inode: disk.inodes.get(id)!, incarnation });
        return fd;
      },
      close(fd) {
        disk.handles.delete(fd);
      },
      read(fd, buffer, offset, length, position) {
        const { inode } = handle(fd);
        const available = Math.max(0, Math.min(length, inode.lengthBytes - position));
        inode.content.copy(buffer, offset, position, position + available);
        return available;
      },
      writev(fd, buffers, position) {
        const { inode } = handle(fd);
        if (disk.random.float() < disk.faults.writeFailure) {
          disk.injected.writeFailures += 1;
          throw errno('ENOSPC', 'no space left on device, write');
        }
        let at = position;
        for (const buffer of buffers) {
          disk.write(inode, at, Buffer.from(buffer));
          at += buffer.byteLength;
        }
      },
      fdatasync(fd) {
        disk.sync(handle(fd).inode);
      },
      fdatasyncAsync(fd) {
        const { inode } = handle(fd);
        const slow = disk.random.float() < disk.faults.slowSync;
        const delayMs = slow ? 5 + disk.random.float() * 45 : 0.1 + disk.random.float() * 0.9;
        return new Promise<void>((resolve, reject) => {
          clock.setTimeout(() => {
            try {
              disk.checkAlive(incarnation);
              disk.sync(inode);
              resolve();
            } catch (error) {
              reject(error);
            }
          }, delayMs);
        });
      },
      async lockDirectory(realPath) {
        disk.checkAlive(incarnation);
        const path = canonical(realPath);
        if (disk.locks.get(path) === incarnation) return undefined;
        disk.locks.set(path, incarnation);
        let released = false;
        return {
          release: async () => {
            if (!released && disk.locks.get(path) === incarnation) disk.locks.delete(path);
            released = true;
          },
        };
      },
      truncate(fd, lengthBytes) {
        const { inode } = handle(fd);
        disk.resize(inode, lengthBytes);
        if (lengthBytes < inode.lengthBytes) inode.content.fill(0, lengthBytes);
        inode.lengthBytes = lengthBytes;
        inode.unsynced.push({ position: lengthBytes, bytes: Buffer.alloc(0) });
      },
      sizeOf(fd) {
        return handle(fd).inode.lengthBytes;
      },
      stat(realPath): FileStat | undefined {
        const path = canonical(realPath);
        const id = disk.names.get(path);
        if (id === undefined) return undefined;
        if (id === directoryMarker) return { sizeBytes: 0, isFile: false, isDirectory: true };
        return { sizeBytes: disk.inodes.get(id)!.lengthBytes, isFile: true, isDirectory: false };
      },
      readdir(realDir) {
        const prefix = `${canonical(realDir)}/`;
        const entries: string[] = [];
        for (const path of disk.names.keys()) {
          if (path.startsWith(prefix) && !path.slice(prefix.length).includes('/')) entries.push(path.slice(prefix.length));
        }
        return entries.sort();
      },
      mkdirp(realDir) {
        disk.checkAlive(incarnation);
        let at = '';
        for (const part of canonical(realDir).split('/').filter((piece) => piece !== '')) {
          at += `/${part}`;
          if (!disk.names.has(at)) {
            disk.names.set(at, directoryMarker);
            disk.durableNames.set(at, directoryMarker);
          }
        }
      },
      rename(realFrom, realTo) {
        disk.checkAlive(incarnation);
        const from = canonical(realFrom);
        const to = canonical(realTo);
        const id = disk.names.get(from);
        if (id === undefined) throw errno('ENOENT', `no such file: ${from}`);
        disk.names.delete(from);
        disk.names.set(to, id);
      },
      unlink(realPath) {
        disk.checkAlive(incarnation);
        const path = canonical(realPath);
        if (!disk.names.delete(path)) throw errno('ENOENT', `no such file: ${path}`);
      },
      syncDirectory(realDir) {
        disk.checkAlive(incarnation);
        const prefix = `${canonical(realDir)}/`;
        for (const path of [...disk.durableNames.keys()]) {
          if (path.startsWith(prefix) && !path.slice(prefix.length).includes('/') && !disk.names.has(path)) disk.durableNames.delete(path);
        }
        for (const [path, id] of disk.names) {
          if (path.startsWith(prefix) && !path.slice(prefix.length).includes('/')) disk.durableNames.set(path, id);
        }
      },
      fillZeros(fd, position, lengthBytes) {
        const { inode } = handle(fd);
        return new Promise<void>((resolve, reject) => {
          clock.setTimeout(() => {
            try {
              disk.checkAlive(incarnation);
              disk.resize(inode, position + lengthBytes);
              inode.content.fill(0, position, position + lengthBytes);
              inode.lengthBytes = Math.max(inode.lengthBytes, position + lengthBytes);
              disk.sync(inode);
              resolve();
            } catch (error) {
              reject(error);
            }
          }, 1);
        });
      },
    };
  }

  /**
   * A machine crash: every file keeps what was synced plus a random prefix of later writes (the
   * last one possibly torn), the namespace reverts to what its directories' syncs made durable,
   * and handles from before fail.
   */
  crash(): void {
    this.incarnation += 1;
    this.handles.clear();
    for (const inode of this.inodes.values()) {
      const kept = this.random.integer(0, inode.unsynced.length);
      const writes = inode.unsynced.slice(0, kept).map((write) => ({ ...write }));
      const last = writes[writes.length - 1];
      if (last !== undefined && last.bytes.length > 0 && this.random.float() < 0.5) {
        last.bytes = last.bytes.subarray(0, this.random.integer(0, last.bytes.length - 1));
        this.injected.tornWrites += 1;
      }
      const capacity = Math.max(inode.durableLengthBytes, ...writes.map((write) => write.position + write.bytes.length));
      const content = Buffer.alloc(capacity);
      inode.durable.copy(content, 0, 0, inode.durableLengthBytes);
      let lengthBytes = inode.durableLengthBytes;
      for (const write of writes) {
        if (write.bytes.length === 0) {
          // A truncation: what lay beyond reads as zeros if the file grows again.
          content.fill(0, write.position);
          lengthBytes = write.position;
        } else {
          write.bytes.copy(content, write.position);
          lengthBytes = Math.max(lengthBytes, write.position + write.bytes.length);
        }
      }
      this.injected.lostWrites += inode.unsynced.length - kept;
      inode.content = content;
      inode.lengthBytes = lengthBytes;
      inode.unsynced = [];
      inode.durable = Buffer.from(content.subarray(0, lengthBytes));
      inode.durableLengthBytes = lengthBytes;
    }
    this.names = new Map(this.durableNames);
  }

  /** A process crash: the page cache survives; only the process's handles go. */
  processCrash(): void {
    this.incarnation += 1;
    this.handles.clear();
  }

  private checkAlive(incarnation: number): void {
    if (incarnation !== this.incarnation) throw errno('EIO', 'the process that opened this file is gone');
  }

  private createInode(): number {
    const id = this.nextInode++;
    this.inodes.set(id, { id, content: Buffer.alloc(0), lengthBytes: 0, durable: Buffer.alloc(0), durableLengthBytes: 0, unsynced: [] });
    return id;
  }

  private resize(inode: Inode, lengthBytes: number): void {
    if (inode.content.length >= lengthBytes) return;
    const grown = Buffer.alloc(Math.max(lengthBytes, inode.content.length * 2));
    inode.content.copy(grown);
    inode.content = grown;
  }

  private write(inode: Inode, position: number, bytes: Buffer): void {
    this.resize(inode, position + bytes.length);
    bytes.copy(inode.content, position);
    inode.lengthBytes = Math.max(inode.lengthBytes, position + bytes.length);
    inode.unsynced.push({ position, bytes });
  }

  private sync(inode: Inode): void {
    if (this.random.float() < this.faults.syncFailure) {
      this.injected.syncFailures += 1;
      throw errno('EIO', 'i/o error, fdatasync');
    }
    inode.durable = Buffer.from(inode.content.subarray(0, Math.max(inode.lengthBytes, 0)));
    inode.durableLengthBytes = inode.lengthBytes;
    inode.unsynced = [];
  }
}

function errno(code: string, message: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

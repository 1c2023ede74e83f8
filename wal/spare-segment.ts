/**
 * The next segment, zero-filled in the background so that rotation does not stall a commit on
 * zero-filling 64 MiB. Only a completely filled and synced spare gets the name that is trusted
 * (and reused) at the next open; one half filled is deleted there.
 */
import * as path from 'node:path';
import type { ResolvedWalOptions } from './options.js';

/** The next segment while it is being zero-filled (deleted at open: it may be incomplete). */
const spareFillingName = 'spare.tmp';
/** The next segment, zero-filled and fdatasync'd: kept across restarts and reused. */
const spareReadyName = 'spare.ready';

interface Spare {
  state: 'preparing' | 'ready' | 'failed';
  done: Promise<void>;
}

export class SpareSegment {
  private spare: Spare | undefined;

  constructor(private readonly options: ResolvedWalOptions) {}

  /** The path of a ready spare, handed over to become the next segment; undefined when none is. */
  take(): string | undefined {
    if (this.spare?.state !== 'ready') return undefined;
    this.spare = undefined;
    return path.join(this.options.dir, spareReadyName);
  }

  /** Starts zero-filling the next segment, unless one is ready or being prepared. */
  prepare(): void {
    if (this.spare !== undefined) return;
    const fileSystem = this.options.platform.fileSystem;
    const readyPath = path.join(this.options.dir, spareReadyName);
    if (fileSystem.stat(readyPath)?.sizeBytes === this.options.segmentBytes) {
      this.spare = { state: 'ready', done: Promise.resolve() };
      return;
    }
    const spare: Spare = { state: 'preparing', done: Promise.resolve() };
    spare.done = this.fill(spare, readyPath);
    this.spare = spare;
  }

  /** Resolves when no background preparation is running (close waits for it). */
  async settled(): Promise<void> {
    await this.spare?.done;
  }

  private async fill(spare: Spare, readyPath: string): Promise<void> {
    const fileSystem = this.options.platform.fileSystem;
    const fillingPath = path.join(this.options.dir, spareFillingName);
    let fd: number | undefined;
    try {
      if (fileSystem.stat(readyPath) !== undefined) fileSystem.unlink(readyPath);
      if (fileSystem.stat(fillingPath) !== undefined) fileSystem.unlink(fillingPath);
      fd = fileSystem.open(fillingPath, 'wx');
      await fileSystem.fillZeros(fd, 0, this.options.segmentBytes);
      const filled = fd;
      fd = undefined;
      fileSystem.close(filled);
      fileSystem.rename(fillingPath, readyPath);
      spare.state = 'ready';
    } catch (error) {
      spare.state = 'failed';
      this.options.log(`could not preallocate the next segment (rotation will grow a file instead): ${String(error)}`);
      // A spare that failed for want of space must not keep holding the space it got.
      try {
        if (fd !== undefined) fileSystem.close(fd);
        if (fileSystem.stat(fillingPath) !== undefined) fileSystem.unlink(fillingPath);
      } catch {
        // Left behind, it is removed as a stale `*.tmp` at the next open.
      }
    }
  }
}

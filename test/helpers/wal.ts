/**
 * Helpers shared by the WAL tests: open a log quietly, make payloads derivable from their LSN,
 * read everything back, catch error codes, and fail chosen disk calls.
 */
import { createHash } from 'node:crypto';
import { Wal, nodePlatform, recordPayload, type FileSystem, type Platform, type WalOptions, type WalRecord } from '../../wal/index.js';
import { TxlogError } from '../../wal/errors.js';

export interface QuietWal {
  wal: Wal;
  /** What the WAL logged (recovery reports, background failures). */
  messages: string[];
}

export async function openQuietWal(options: WalOptions): Promise<QuietWal> {
  const messages: string[] = [];
  const wal = await Wal.open({ log: (message) => messages.push(message), ...options });
  return { wal, messages };
}

/** A payload whose content follows from its LSN, so a reader can check it without a copy. */
export function payloadFor(lsn: number, sizeBytes = 32): { lsn: number; body: string } {
  const seed = createHash('sha256').update(`record ${lsn}`).digest('hex');
  return { lsn, body: seed.repeat(Math.ceil(sizeBytes / seed.length)).slice(0, sizeBytes) };
}

export function readAll(wal: Wal, fromLsn = wal.firstLsn): WalRecord[] {
  return [...wal.read(fromLsn)];
}

export function payloadsOf(records: readonly WalRecord[]): unknown[] {
  return records.map((record) => recordPayload(record));
}

/** The error code a promise rejects with (fails the test when it resolves or throws something else). */
export async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TxlogError) return error.code;
    throw error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** The TxlogError a function throws (fails the test when it returns or throws something else). */
export function thrownError(action: () => unknown): TxlogError {
  try {
    action();
  } catch (error) {
    if (error instanceof TxlogError) return error;
    throw error;
  }
  throw new Error('expected a TxlogError, but nothing was thrown');
}

export async function rejectedError(action: () => Promise<unknown>): Promise<TxlogError> {
  try {
    await action();
  } catch (error) {
    if (error instanceof TxlogError) return error;
    throw error;
  }
  throw new Error('expected a TxlogError, but the promise resolved');
}

/** The file system calls a `FaultyDisk` can fail. */
export type FaultyOperation = 'open' | 'writev' | 'fdatasync' | 'fdatasyncAsync';

/** What a fault predicate sees: the file's path and, for a write, where it would end. */
export interface FaultyCall {
  path: string;
  endBytes: number;
}

export interface FaultyDisk {
  platform: Platform;
  /** From now on `operation` fails with the errno `code` whenever `when` says so (default: always). */
  fail(operation: FaultyOperation, code: 'EIO' | 'ENOSPC', when?: (call: FaultyCall) => boolean): void;
  /** No more faults. */
  heal(): void;
}

/**
 * The real file system, except for the calls told to fail: they throw (or reject with) an
 * errno-style error as Node's would, before touching the disk. Unlike a crash, the process goes
 * on, so this shows what callers are told when the disk fails under them.
 */
export function faultyDisk(): FaultyDisk {
  const real = nodePlatform.fileSystem;
  const paths = new Map<number, string>();
  const faults = new Map<FaultyOperation, { code: string; when: (call: FaultyCall) => boolean }>();
  const check = (operation: FaultyOperation, call: FaultyCall): void => {
    const fault = faults.get(operation);
    if (fault === undefined || !fault.when(call)) return;
    throw Object.assign(new Error(`${fault.code}: simulated ${operation} failure, '${call.path}'`), {
      code: fault.code,
      syscall: operation,
      path: call.path,
    });
  };
  const pathOf = (fd: number): string => paths.get(fd) ?? `fd ${fd}`;
  const fileSystem: FileSystem = {
    ...real,
    open(filePath, flags) {
      check('open', { path: filePath, endBytes: 0 });
      const fd = real.open(filePath, flags);
      paths.set(fd, filePath);
      return fd;
    },
    writev(fd, buffers, position) {
      const bytes = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
      check('writev', { path: pathOf(fd), endBytes: position + bytes });
      real.writev(fd, buffers, position);
    },
    fdatasync(fd) {
      check('fdatasync', { path: pathOf(fd), endBytes: 0 });
      real.fdatasync(fd);
    },
    async fdatasyncAsync(fd) {
      check('fdatasyncAsync', { path: pathOf(fd), endBytes: 0 });
      await real.fdatasyncAsync(fd);
    },
  };
  return {
    platform: { ...nodePlatform, fileSystem },
    fail: (operation, code, when = () => true) => void faults.set(operation, { code, when }),
    heal: () => faults.clear(),
  };
}

/**
 * Helpers shared by the WAL tests: open a log quietly, make payloads derivable from their LSN,
 * read everything back, and catch error codes.
 */
import { createHash } from 'node:crypto';
import { Wal, recordPayload, type WalOptions, type WalRecord } from '../../wal/index.js';
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

/**
 * Helpers for the backup tests: the state a store had at one LSN, built by copying its WAL up to
 * that LSN into a fresh directory and letting recovery rebuild the state from it (handlers never
 * run on recovery, so this is exactly the source's state at that LSN).
 */
import * as path from 'node:path';
import { openStore } from '../../engine/index.js';
import { Wal } from '../../wal/wal.js';

export async function stateAt(sourceDir: string, lsn: number, scratchDir: string): Promise<unknown> {
  const source = await Wal.open({ dir: path.join(sourceDir, 'wal'), readOnly: true, log: () => undefined });
  const target = await Wal.open({ dir: path.join(scratchDir, 'wal'), fsync: 'never', preallocate: false, log: () => undefined });
  try {
    for (const record of source.read(1, lsn)) await target.appendFrame(Buffer.from(record.frame));
  } finally {
    await source.close();
    await target.close();
  }
  return dumpOf(scratchDir);
}

/** The derived state of the store at `dir`, opened and closed again. */
export async function dumpOf(dir: string): Promise<unknown> {
  const store = await openStore({ dir, fsync: 'never', preallocate: false, log: () => undefined });
  try {
    return store.dumpState();
  } finally {
    await store.close();
  }
}

/**
 * Helpers for the backup tests: the state a store had at one LSN, built by copying its WAL up to
 * that LSN into a fresh directory and letting recovery rebuild the state from it (handlers never
 * run on recovery, so this is exactly the source's state at that LSN); a writer process that
 * keeps a store busy.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** The backup bench's writer process (bench/backup-bench.ts `--writer`), built. */
const writerPath = fileURLToPath(new URL('../../dist/bench/backup-bench.js', import.meta.url));

/**
 * Starts a writer process on the store `dir` (`writers` clients appending ~400-byte events, no
 * fsync) with `spawnChild` (a test's `useChildProcesses`), and resolves once it has `prefill`
 * records applied. Its stdin is a pipe: it ends when the pipe does, should the test die first.
 */
export async function startWriterProcess(
  spawnChild: (command: string, args: readonly string[], options?: SpawnOptions) => ChildProcess,
  dir: string,
  prefill: number,
  writers = 16,
): Promise<ChildProcess> {
  const args = ['--writer', dir, '--writers', String(writers), '--prefill', String(prefill), '--fsync', 'never', '--light'];
  const child = spawnChild(process.execPath, [writerPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('writing\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
  });
  return child;
}

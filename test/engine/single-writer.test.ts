/**
 * One writer per store: a WAL open for writing holds its directory's lock (`wal/directory-lock.ts`)
 * until it closes, and a second writer is refused with STORE_IN_USE before it reads or writes
 * anything, whether it is another open in this process, another process, or another worker of a
 * `cluster`. The lock dies with its process: after a SIGKILL the store opens at once. Real
 * processes, files and sockets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/index.js';
import { Wal } from '../../wal/index.js';
import { startWriterProcess } from '../helpers/backup.js';
import { exited, killAndWait, useChildProcesses, useTempDir } from '../helpers/temp.js';
import { openQuietWal, rejectedError } from '../helpers/wal.js';

const tempDir = useTempDir('txlog-single-writer-');
const spawnChild = useChildProcesses();

describe('one writer per WAL directory', () => {
  it('refuses a second writer in this process until the first closes; readers are not refused', async () => {
    const dir = tempDir();
    const { wal } = await openQuietWal({ dir, preallocate: false, fsync: 'never' });
    await wal.append(1, { n: 1 }, 1);
    const files = (): Array<[string, number]> => fs.readdirSync(dir).sort().map((name) => [name, fs.statSync(path.join(dir, name)).size]);
    const before = files();
    const refused = await rejectedError(() => Wal.open({ dir, preallocate: false, log: () => undefined }));
    expect(refused.code).toBe('STORE_IN_USE');
    expect(refused.retryable).toBe(false);
    expect(refused.details).toEqual({ dir });
    // Refused before anything was touched: no file made, removed or cut.
    expect(files()).toEqual(before);

    const reader = await Wal.open({ dir, readOnly: true, log: () => undefined });
    expect(reader.lastLsn).toBe(1);
    await reader.close();

    await wal.close();
    const { wal: reopened } = await openQuietWal({ dir, preallocate: false, fsync: 'never' });
    expect(reopened.lastLsn).toBe(1);
    await reopened.close();
  });

  it('refuses a path that is no directory with NOT_A_LOG, and lets go of its lock when it does', async () => {
    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, 'not a log');
    // The second open would meet STORE_IN_USE had the first kept the lock it took.
    for (let attempt = 0; attempt < 2; attempt++) {
      expect((await rejectedError(() => Wal.open({ dir: file, log: () => undefined }))).code).toBe('NOT_A_LOG');
    }
  });

  it('knows the directory by its identity, not by the path that names it', async () => {
    const dir = tempDir();
    const alias = path.join(tempDir(), 'alias');
    const { wal } = await openQuietWal({ dir, preallocate: false, fsync: 'never' });
    fs.symlinkSync(dir, alias);
    try {
      expect((await rejectedError(() => Wal.open({ dir: alias, preallocate: false, log: () => undefined }))).code).toBe('STORE_IN_USE');
    } finally {
      await wal.close();
    }
  });

  it('refuses the second of two cluster workers (each binds its own lock, not one the primary shares)', async () => {
    const dir = tempDir();
    const child = spawnChild(process.execPath, [fileURLToPath(new URL('./cluster-child.mjs', import.meta.url)), dir]);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const { code } = await exited(child);
    expect(code).toBe(0);
    expect(JSON.parse(output)).toEqual(['opened', 'refused STORE_IN_USE']);
  });

  it('refuses to open a store another process runs, and opens it once that process is killed', async () => {
    const dir = tempDir();
    const writer = await startWriterProcess(spawnChild, dir, 200, 4);
    const refused = await rejectedError(() => openStore({ dir, preallocate: false, log: () => undefined }));
    expect(refused.code).toBe('STORE_IN_USE');
    // The writer goes on (it rolls segments as it writes, so its files are not compared here:
    // the test above shows a refused open touches none).
    expect(writer.exitCode).toBeNull();

    await killAndWait(writer);
    const store = await openStore({ dir, preallocate: false, fsync: 'never', log: () => undefined });
    try {
      expect(store.lastLsn).toBeGreaterThanOrEqual(200);
    } finally {
      await store.close();
    }
  });
});

/**
 * Proves `store.backup` (engine/backup.ts, backup-wal.ts, backup-manifest.ts) in one process:
 * a backup taken while writers keep committing is a store whose state equals the source's at
 * the manifest's LSN; the manifest lists every file with its checksum and `verifyBackup` catches
 * a changed byte; a target that exists and is not empty is refused (`TARGET_NOT_EMPTY`) and
 * nothing is written to it; a directory holding the in-progress marker and no manifest (a backup
 * that was killed) is refused by `openStore` and `verifyBackup` (`NOT_A_LOG`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore, verifyBackup } from '../../engine/index.js';
import { incompleteMarkerName, manifestFileName } from '../../engine/backup-manifest.js';
import { useTempDir } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { openQuietStore } from '../helpers/store.js';
import { dumpOf, stateAt } from '../helpers/backup.js';

const newDir = useTempDir('txlog-backup-');

describe('store.backup', () => {
  it('copies a store under load; the copy opens at the state the source had at its LSN', async () => {
    const sourceDir = newDir();
    const outDir = path.join(newDir(), 'copy');
    const { store } = await openQuietStore(sourceDir);
    let writing = true;
    const writer = async (index: number): Promise<void> => {
      for (let count = 0; writing; count++) {
        await store.append(`stream-${index}`, [{ type: 'Written', data: { count, padding: 'x'.repeat(200) } }], {
          clientId: `writer-${index}`,
          requestId: count + 1,
        });
      }
    };
    const writers = Array.from({ length: 8 }, (_, index) => writer(index));
    while (store.appliedLsn < 3000) await new Promise((resolve) => setTimeout(resolve, 5));
    const phases = new Set<string>();
    const manifest = await store.backup(outDir, { onProgress: (progress) => phases.add(progress.phase) });
    const lsnAfterBackup = store.lastLsn;
    writing = false;
    await Promise.all(writers);
    await store.close();

    expect(manifest.stateLsn).not.toBeNull();
    expect(manifest.stateLsn!).toBeGreaterThanOrEqual(3000);
    expect(manifest.lsn).toBeGreaterThanOrEqual(manifest.stateLsn!);
    expect(manifest.lsn).toBeLessThanOrEqual(lsnAfterBackup);
    expect(lsnAfterBackup, 'the writers went on during the backup').toBeGreaterThan(3000);
    expect([...phases]).toEqual(['state', 'wal', 'checksums']);
    expect(manifest.files.map((file) => file.path)).toContain('state/data.mdb');
    expect(fs.existsSync(path.join(outDir, incompleteMarkerName))).toBe(false);
    await verifyBackup(outDir);

    const restored = await dumpOf(outDir);
    expect(restored).toEqual(await stateAt(sourceDir, manifest.lsn, newDir()));
    expect((restored as { appliedLsn: number }).appliedLsn).toBe(manifest.lsn);
  });

  it('verifyBackup finds a changed byte in a copied file', async () => {
    const sourceDir = newDir();
    const outDir = path.join(newDir(), 'copy');
    const { store } = await openQuietStore(sourceDir);
    for (let count = 0; count < 50; count++) await store.append('orders', [{ type: 'Placed', data: { count } }]);
    await store.backup(outDir);
    await store.close();
    const segment = path.join(outDir, 'wal', fs.readdirSync(path.join(outDir, 'wal'))[0]!);
    const bytes = fs.readFileSync(segment);
    bytes[200] = bytes[200]! ^ 0xff;
    fs.writeFileSync(segment, bytes);
    expect((await rejectedError(() => verifyBackup(outDir))).code).toBe('CORRUPT_LOG');
  });

  it('refuses a target that exists and is not empty, and writes nothing to it', async () => {
    const { store } = await openQuietStore(newDir());
    await store.append('orders', [{ type: 'Placed', data: {} }]);
    const outDir = newDir();
    fs.writeFileSync(path.join(outDir, 'keep.txt'), 'mine');
    const error = await rejectedError(() => store.backup(outDir));
    expect(error.code).toBe('TARGET_NOT_EMPTY');
    expect(fs.readdirSync(outDir)).toEqual(['keep.txt']);
    const file = path.join(newDir(), 'a-file');
    fs.writeFileSync(file, '');
    expect((await rejectedError(() => store.backup(file))).code).toBe('TARGET_NOT_EMPTY');
    await store.append('orders', [{ type: 'Placed', data: {} }]);
    await store.close();
  });

  it('a backup that never wrote its manifest does not open as a store', async () => {
    const sourceDir = newDir();
    const outDir = path.join(newDir(), 'copy');
    const { store } = await openQuietStore(sourceDir);
    await store.append('orders', [{ type: 'Placed', data: {} }]);
    await store.backup(outDir);
    await store.close();
    // What a backup killed before its commit point leaves: the marker, no manifest.
    fs.renameSync(path.join(outDir, manifestFileName), path.join(newDir(), manifestFileName));
    fs.writeFileSync(path.join(outDir, incompleteMarkerName), '');
    expect((await rejectedError(() => openStore({ dir: outDir, log: () => undefined }))).code).toBe('NOT_A_LOG');
    expect((await rejectedError(() => verifyBackup(outDir))).code).toBe('NOT_A_LOG');
    expect(fs.existsSync(path.join(outDir, 'state', 'lock.mdb')), 'nothing was opened').toBe(false);
  });
});

/**
 * Proves `txlog backup` (cli/backup.ts) as real processes:
 * - `--dir` on a store that another process is writing to exits 0 and copies its WAL only (a
 *   note on stderr, `stateLsn` null), never opening its state; the copy passes `txlog inspect
 *   --verify` and `txlog backup --verify`, and opens at the state the source had at the
 *   manifest's LSN; the source's state is whole afterwards; once the writer is gone, a backup
 *   copies the state too;
 * - a backup SIGKILLed half way leaves a directory with no manifest, which `openStore` refuses
 *   and `txlog backup --verify` reports (exit 2), and nothing of the source changed;
 * - a full disk (a small tmpfs, when the test may mount one) fails with one IO_ERROR line,
 *   exit 1, removes what it wrote, and leaves the source as it was;
 * - bad input: an `--out` that exists and is not empty (exit 2, one line, nothing written), a
 *   missing store, and flags that do not go together.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/index.js';
import { manifestFileName } from '../../engine/backup-manifest.js';
import { useChildProcesses, useTempDir, killAndWait, exited } from '../helpers/temp.js';
import { rejectedError } from '../helpers/wal.js';
import { dumpOf, startWriterProcess, stateAt } from '../helpers/backup.js';
import { fingerprint, runCli, useBuiltCli } from './helpers.js';

const tempDir = useTempDir('txlog-cli-backup-');
const spawnChild = useChildProcesses();
const cli = useBuiltCli();

/** The writer child on `dir`, once it has `prefill` records applied. */
const startWriter = (dir: string, prefill: number): ReturnType<typeof startWriterProcess> => startWriterProcess(spawnChild, dir, prefill);

describe('txlog backup', () => {
  it('copies the WAL of a store another process is writing to, never its state, which stays whole', async () => {
    const sourceDir = tempDir();
    const writer = await startWriter(sourceDir, 5000);
    // Opening the state's LMDB beside its writer could lose one of the writer's commits (see
    // engine/backup.ts): each of these backups, taken while it writes, copies the WAL alone.
    const lines: Array<{ event: string; lsn: number; stateLsn: number | null; files: number }> = [];
    const outDirs: string[] = [];
    for (let round = 0; round < 2; round++) {
      const outDir = path.join(tempDir(), 'copy');
      const result = await runCli(cli(), ['backup', '--dir', sourceDir, '--out', outDir]);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/^txlog backup: the store in \S+ is running: its WAL is copied without its state, [^\n]+\n$/);
      const line = JSON.parse(result.stdout) as (typeof lines)[number];
      expect(line.event).toBe('backup');
      expect(line.stateLsn).toBeNull();
      expect(line.lsn).toBeGreaterThanOrEqual(round === 0 ? 5000 : lines[round - 1]!.lsn);
      lines.push(line);
      outDirs.push(outDir);
    }
    await killAndWait(writer);

    const last = lines[lines.length - 1]!;
    const outDir = outDirs[outDirs.length - 1]!;
    expect((await runCli(cli(), ['inspect', outDir, '--verify'])).exitCode).toBe(0);
    const verified = await runCli(cli(), ['backup', '--verify', outDir]);
    expect(verified.exitCode, verified.stderr).toBe(0);
    // Opening the backup rebuilds the state from its WAL: the source's state at that LSN.
    expect(await dumpOf(outDir)).toEqual(await stateAt(sourceDir, last.lsn, tempDir()));
    // The source's own state kept every commit its writer made while the backups ran: it opens
    // (its applied records as they were) and equals a rebuild from its whole WAL.
    const source = (await dumpOf(sourceDir)) as { appliedLsn: number };
    expect(source).toEqual(await stateAt(sourceDir, source.appliedLsn, tempDir()));

    // With the writer gone, a backup copies the state too, as of the LSN it had.
    const idleOut = path.join(tempDir(), 'idle');
    const idle = await runCli(cli(), ['backup', '--dir', sourceDir, '--out', idleOut]);
    expect(idle.exitCode, idle.stderr).toBe(0);
    expect(idle.stderr).toBe('');
    const idleLine = JSON.parse(idle.stdout) as (typeof lines)[number];
    expect(idleLine.stateLsn).toBe(source.appliedLsn);
    expect(await dumpOf(idleOut)).toEqual(source);
  });

  it('a backup SIGKILLed half way leaves no directory that looks complete', async () => {
    const sourceDir = tempDir();
    const outDir = path.join(tempDir(), 'copy');
    const writer = await startWriter(sourceDir, 40_000);
    await killAndWait(writer);
    const before = fingerprint(path.join(sourceDir, 'wal'));
    const backup = spawn(process.execPath, [cli(), 'backup', '--dir', sourceDir, '--out', outDir], { stdio: 'ignore' });
    try {
      // Killed as soon as the WAL copy has begun: the state is copied, the manifest is not written.
      const walDir = path.join(outDir, 'wal');
      while (!fs.existsSync(walDir) && backup.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 1));
      backup.kill('SIGKILL');
      await exited(backup);
    } finally {
      await killAndWait(backup);
    }
    expect(backup.signalCode, 'the backup was killed before it finished').toBe('SIGKILL');
    expect(fs.existsSync(path.join(outDir, manifestFileName))).toBe(false);
    expect((await rejectedError(() => openStore({ dir: outDir, log: () => undefined }))).code).toBe('NOT_A_LOG');
    const verified = await runCli(cli(), ['backup', '--verify', outDir]);
    expect(verified.exitCode).toBe(2);
    expect(verified.stderr).toMatch(/^txlog: NOT_A_LOG: .*never completed\n$/);
    expect(fingerprint(path.join(sourceDir, 'wal')), 'the source is untouched').toEqual(before);
  });

  it('a full disk during the backup is one line, exit 1, nothing left behind, the source untouched', async (context) => {
    const sourceDir = tempDir();
    const writer = await startWriter(sourceDir, 20_000);
    await killAndWait(writer);
    // A real full disk: a tmpfs too small for the copy (needs root; skipped elsewhere).
    const mountPoint = tempDir();
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
    if (mounted.status !== 0) {
      context.skip();
      return;
    }
    try {
      const before = fingerprint(path.join(sourceDir, 'wal'));
      const result = await runCli(cli(), ['backup', '--dir', sourceDir, '--out', path.join(mountPoint, 'copy')]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/^txlog: IO_ERROR: backup to \S+ failed: [^\n]*(ENOSPC|No space left on device)[^\n]*\n$/);
      expect(fs.readdirSync(mountPoint)).toEqual([]);
      expect(fingerprint(path.join(sourceDir, 'wal'))).toEqual(before);
    } finally {
      spawnSync('umount', [mountPoint]);
    }
  });

  it('refuses an --out that is not empty, a missing store, and flags that do not go together', async () => {
    const sourceDir = tempDir();
    const store = await openStore({ dir: sourceDir, preallocate: false, fsync: 'never', log: () => undefined });
    await store.append('orders', [{ type: 'Placed', data: {} }]);
    await store.close();
    const outDir = tempDir();
    fs.writeFileSync(path.join(outDir, 'keep.txt'), 'mine');

    const notEmpty = await runCli(cli(), ['backup', '--dir', sourceDir, '--out', outDir]);
    expect(notEmpty.exitCode).toBe(2);
    expect(notEmpty.stderr).toMatch(/^txlog: TARGET_NOT_EMPTY: [^\n]+\n$/);
    expect(fs.readdirSync(outDir)).toEqual(['keep.txt']);

    const missing = await runCli(cli(), ['backup', '--dir', path.join(sourceDir, 'nope'), '--out', path.join(outDir, 'x')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/^txlog: NOT_FOUND: [^\n]+\n$/);
    expect(fs.existsSync(path.join(outDir, 'x'))).toBe(false);

    for (const args of [['--dir', sourceDir], ['--dir', sourceDir, '--servers', '127.0.0.1:1', '--out', 'x'], ['--servers', '127.0.0.1:1', '--out', 'relative']]) {
      const usage = await runCli(cli(), ['backup', ...args]);
      expect(usage.exitCode, args.join(' ')).toBe(2);
      expect(usage.stderr).toMatch(/^txlog: USAGE: [^\n]+\n$/);
    }
  });
});

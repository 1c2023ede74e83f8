/**
 * Online backup: a consistent copy of a store's directory, taken while the store runs (in this
 * process: `store.backup`; closed, or running in another process: `backupStoreDirectory`), that
 * is itself a store directory: opening it is the restore.
 *
 * Order, and why it is consistent:
 *   1. The state (LMDB) is copied first, as of one read snapshot, at LSN S (its applied LSN).
 *      The state only ever holds records that were in the WAL files before it applied them.
 *   2. The WAL is copied next, frame by frame, to the last whole valid frame at that moment,
 *      LSN E ≥ S (every frame up to S was written before step 1 began).
 *   3. Opening the copy applies S+1..E from the copied WAL, exactly as recovery does after a
 *      crash; handlers never run again. So the backup holds every record up to E, as a store
 *      killed at that moment would.
 * A state copy at exactly E would need the writer stopped between the two copies (LMDB takes
 * its snapshot on its own thread, at a moment we cannot pin to an LSN while commits apply);
 * replaying E − S records on open is what recovery does anyway, and costs the store nothing.
 *
 * The state of a store that runs in another process is not copied: the backup holds its WAL
 * alone, and opening it rebuilds the state from the WAL (`stateLsn` is null). Opening the
 * LMDB environment from a second process while its writer commits can lose one of the
 * writer's transactions: the LMDB that lmdb-js 3.5 bundles sets the lock file's last
 * transaction id, on every open, from the meta page it has just read, so a commit landing in
 * between is forgotten and the next one is built on the older snapshot (the stock library does
 * that only when opening a previous snapshot, which takes the environment exclusively). Found
 * when a copy taken this way failed to open (its stream index out of order); the source's state
 * had lost 64 applied events. So the state is copied only under the WAL's lock
 * (`wal/directory-lock.ts`): when no process runs the store, and none can start it while the
 * copy is made. A running node copies its own state (`txlog backup --servers`, `store.backup`).
 *
 * The copied state was left "open" by its source (see `State.mayBeDamagedByMachineCrash`); the
 * copy is a snapshot that we fsync, so it is sealed (marked cleanly closed) before the manifest
 * says the backup is complete, and a restore on another machine keeps it instead of rebuilding.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TxlogError, txlogError } from '../wal/errors.js';
import { formatVersion } from '../wal/format.js';
import { nodePlatform } from '../wal/platform.js';
import { checksumFiles, writeIncompleteMarker, writeManifest, type BackupManifest } from './backup-manifest.js';
import { fsyncPath } from './state-files.js';
import { copyWal } from './backup-wal.js';
import { State } from './state.js';

export type { BackupManifest } from './backup-manifest.js';

export interface BackupProgress {
  /** What is being copied now. */
  phase: 'state' | 'wal' | 'checksums';
  /** Bytes of the WAL copied, and of its segment files in all (0 in the other phases). */
  copiedBytes: number;
  totalBytes: number;
}

export interface BackupOptions {
  /** Called as the backup goes on (at each phase, and after every few MiB of WAL copied). */
  onProgress?: (progress: BackupProgress) => void;
  /** Told why the state was not copied, when it was not (the restore then rebuilds it). */
  log?: (message: string) => void;
}

/** LMDB map size used to open a state copy (address space only; the file grows as needed). */
const stateCopyMapBytes = 64 * 1024 ** 3;

/**
 * Backs up the store at `storeDir` into `outDir` (absent or empty). `live` is the state of the
 * store when it runs in this process; otherwise the state is read through its files, which is
 * safe while another process runs the store. Resolves with the manifest once the backup is
 * complete and durable. Fails with `TARGET_NOT_EMPTY`, `NOT_FOUND` (no store), or `IO_ERROR`
 * (a full disk, say): then what was written to `outDir` is removed, and nothing of the source
 * was ever written to.
 */
export async function backupStoreDirectory(storeDir: string, outDir: string, options: BackupOptions = {}, live?: State): Promise<BackupManifest> {
  const sourceWalDir = path.join(storeDir, 'wal');
  if (!fs.existsSync(sourceWalDir)) throw txlogError('NOT_FOUND', `no store at ${storeDir} (no wal/ directory)`, { dir: storeDir });
  const created = prepareTarget(outDir);
  try {
    writeIncompleteMarker(outDir);
    options.onProgress?.({ phase: 'state', copiedBytes: 0, totalBytes: 0 });
    const stateDir = path.join(outDir, 'state');
    let stateLsn: number | null = null;
    if (live !== undefined) {
      await live.copyTo(stateDir);
      stateLsn = await sealStateCopy(stateDir);
    } else {
      stateLsn = await copyIdleState(storeDir, stateDir, options);
    }
    const wal = await copyWal({
      sourceDir: sourceWalDir,
      targetDir: path.join(outDir, 'wal'),
      atLeastLsn: stateLsn ?? 0,
      onProgress: (copiedBytes, totalBytes) => options.onProgress?.({ phase: 'wal', copiedBytes, totalBytes }),
    });
    options.onProgress?.({ phase: 'checksums', copiedBytes: 0, totalBytes: 0 });
    const files = [...wal.segments.map((name) => `wal/${name}`), ...(stateLsn === null ? [] : ['state/data.mdb'])];
    const manifest: BackupManifest = {
      manifestVersion: 1,
      walFormatVersion: formatVersion,
      lsn: wal.lastLsn,
      epoch: wal.lastEpoch,
      stateLsn,
      createdAt: new Date().toISOString(),
      files: await checksumFiles(outDir, files),
    };
    fsyncPath(path.join(outDir, 'wal'));
    if (stateLsn !== null) fsyncPath(stateDir);
    writeManifest(outDir, manifest);
    return manifest;
  } catch (error) {
    removeTarget(outDir, created);
    if (error instanceof TxlogError && verdictCodes.has(error.code)) throw error;
    throw txlogError('IO_ERROR', `backup to ${outDir} failed: ${rootMessage(error)}`, { dir: outDir }, error);
  }
}

/**
 * Errors that are a verdict on the source or the target, passed on as they are. Anything else
 * failed while writing the copy (a full disk: the copy's WAL says OUTCOME_UNKNOWN, which means
 * nothing to the operator here), and becomes IO_ERROR with its first cause's message.
 */
const verdictCodes: ReadonlySet<string> = new Set(['TARGET_NOT_EMPTY', 'NOT_FOUND', 'NOT_A_LOG', 'CORRUPT_LOG', 'UNSUPPORTED_FORMAT', 'STORE_FAILED']);

/** The message of the innermost cause (`ENOSPC: no space left on device, write`). */
function rootMessage(error: unknown): string {
  let innermost = error;
  for (let depth = 0; depth < 8 && innermost instanceof Error && innermost.cause !== undefined; depth++) innermost = innermost.cause;
  return innermost instanceof Error ? innermost.message : String(innermost);
}

/** Creates `outDir` or checks that it is empty. Returns whether it was created. */
function prepareTarget(outDir: string): boolean {
  const stat = fs.statSync(outDir, { throwIfNoEntry: false });
  if (stat !== undefined) {
    if (!stat.isDirectory() || fs.readdirSync(outDir).length > 0) {
      throw txlogError('TARGET_NOT_EMPTY', `${outDir} exists and is not an empty directory; a backup goes to a new or empty one`, { dir: outDir });
    }
    return false;
  }
  fs.mkdirSync(outDir, { recursive: true });
  fsyncPath(path.dirname(path.resolve(outDir)));
  return true;
}

/** Removes what a failed backup wrote; `outDir` was empty or absent before it began. */
function removeTarget(outDir: string, created: boolean): void {
  try {
    if (created) {
      fs.rmSync(outDir, { recursive: true, force: true });
      return;
    }
    for (const name of fs.readdirSync(outDir)) fs.rmSync(path.join(outDir, name), { recursive: true, force: true });
  } catch {
    // Best effort: what is left has no manifest, so it never looks like a complete backup.
  }
}

/**
 * Copies the state of a store that no process runs, holding its WAL's lock meanwhile so that
 * none starts it; returns the copy's LSN, or null when nothing was copied: the store runs (in
 * another process, or in this one outside `live`), or it has no state to trust.
 */
async function copyIdleState(storeDir: string, stateDir: string, options: BackupOptions): Promise<number | null> {
  const lock = await nodePlatform.fileSystem.lockDirectory(path.join(storeDir, 'wal'));
  if (lock === undefined) {
    options.log?.(`the store in ${storeDir} is running: its WAL is copied without its state, which opening the backup rebuilds from the WAL (a running node copies its state too: txlog backup --servers)`);
    return null;
  }
  try {
    if (!(await State.copyDirectory(path.join(storeDir, 'state'), stateDir, stateCopyMapBytes))) {
      options.log?.(`the store in ${storeDir} has no state that can be trusted: opening the backup rebuilds it from the WAL`);
      return null;
    }
    return await sealStateCopy(stateDir);
  } finally {
    await lock.release();
  }
}

/** Marks the copied state cleanly closed (and fsyncs it); returns the LSN it is at. */
async function sealStateCopy(stateDir: string): Promise<number> {
  const state = State.open(stateDir, stateCopyMapBytes);
  const lsn = state.appliedLsn;
  await state.close();
  // LMDB makes a lock file when it opens; a restore makes its own.
  fs.rmSync(path.join(stateDir, 'lock.mdb'), { force: true });
  return lsn;
}

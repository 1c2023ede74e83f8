/**
 * The backup's manifest and the marker of a backup in progress. A backup directory is complete
 * exactly when it holds `manifest.json`: the manifest is written last, under a temporary name,
 * fsync'd, renamed into place and the directory fsync'd, so a backup interrupted at any point
 * (SIGKILL, a full disk, a machine crash) never looks complete. Until then the directory holds
 * `backup-incomplete`, written first, and `openStore` refuses a directory with the marker and no
 * manifest rather than open half a copy as if it were a store.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { txlogError } from '../wal/errors.js';
import { fsyncPath } from './state-files.js';

export const manifestFileName = 'manifest.json';
export const incompleteMarkerName = 'backup-incomplete';
/** The version of the manifest's own shape. */
export const manifestVersion = 1;
/** A manifest larger than this is not one of ours (it lists a few files). */
const manifestBytesMax = 1024 * 1024;
/** Bytes read at a time while checksumming a file. */
const checksumChunkBytes = 1024 * 1024;

export interface BackupFile {
  /** Relative to the backup directory, with `/` separators. */
  path: string;
  sizeBytes: number;
  sha256: string;
}

export interface BackupManifest {
  manifestVersion: number;
  /** The WAL's on-disk format version (`wal/format.ts`). */
  walFormatVersion: number;
  /** The last LSN in the WAL copy: the backup holds every record up to it. */
  lsn: number;
  /** The epoch of that record. */
  epoch: number;
  /**
   * The LSN the copied state is at (≤ `lsn`; opening the backup applies the records after it),
   * or null when no state was copied (opening the backup rebuilds it from the WAL).
   */
  stateLsn: number | null;
  createdAt: string;
  files: BackupFile[];
}

/** Refuses a directory a backup was being written to and never finished. */
export function refuseIncompleteBackup(dir: string): void {
  const marker = path.join(dir, incompleteMarkerName);
  if (!fs.existsSync(marker)) return;
  if (fs.existsSync(path.join(dir, manifestFileName))) {
    // The backup completed and was stopped before it removed its marker.
    fs.rmSync(marker, { force: true });
    return;
  }
  throw txlogError('NOT_A_LOG', `${dir} holds a backup that never completed (no ${manifestFileName}); take the backup again`, { dir });
}

export function writeIncompleteMarker(dir: string): void {
  writeFileDurably(path.join(dir, incompleteMarkerName), 'a backup is being written here; it is complete only once manifest.json exists\n');
  fsyncPath(dir);
}

/** Writes the manifest under a temporary name, then renames it into place: the backup's commit point. */
export function writeManifest(dir: string, manifest: BackupManifest): void {
  const finalPath = path.join(dir, manifestFileName);
  const temporaryPath = `${finalPath}.tmp`;
  writeFileDurably(temporaryPath, `${JSON.stringify(manifest, null, 2)}\n`);
  fs.renameSync(temporaryPath, finalPath);
  fsyncPath(dir);
  fs.rmSync(path.join(dir, incompleteMarkerName), { force: true });
  fsyncPath(dir);
}

export async function checksumFiles(dir: string, relativePaths: readonly string[]): Promise<BackupFile[]> {
  const files: BackupFile[] = [];
  for (const relativePath of relativePaths) {
    const absolutePath = path.join(dir, ...relativePath.split('/'));
    const hash = createHash('sha256');
    let sizeBytes = 0;
    for await (const chunk of fs.createReadStream(absolutePath, { highWaterMark: checksumChunkBytes })) {
      hash.update(chunk as Buffer);
      sizeBytes += (chunk as Buffer).length;
    }
    files.push({ path: relativePath, sizeBytes, sha256: hash.digest('hex') });
  }
  return files;
}

/**
 * Checks a backup directory against its manifest: NOT_A_LOG without a manifest (not a complete
 * backup), CORRUPT_LOG when a file is missing or differs from what was written.
 */
export async function verifyBackup(dir: string): Promise<BackupManifest> {
  const manifest = readManifest(dir);
  const actual = await checksumFiles(dir, manifest.files.map((file) => file.path)).catch((error: unknown) => {
    throw txlogError('CORRUPT_LOG', `backup in ${dir} is missing a file its manifest lists: ${String(error)}`, { dir }, error);
  });
  for (const [index, expected] of manifest.files.entries()) {
    const found = actual[index]!;
    if (found.sha256 !== expected.sha256 || found.sizeBytes !== expected.sizeBytes) {
      throw txlogError('CORRUPT_LOG', `backup in ${dir}: ${expected.path} differs from its manifest (${found.sizeBytes} bytes, checksum ${found.sha256.slice(0, 12)}…)`, { dir, file: expected.path });
    }
  }
  return manifest;
}

export function readManifest(dir: string): BackupManifest {
  const manifestPath = path.join(dir, manifestFileName);
  const stat = fs.statSync(manifestPath, { throwIfNoEntry: false });
  if (stat === undefined) {
    const why = fs.existsSync(path.join(dir, incompleteMarkerName)) ? 'a backup that never completed' : 'not a backup';
    throw txlogError('NOT_A_LOG', `${dir} has no ${manifestFileName}: ${why}`, { dir });
  }
  if (stat.size > manifestBytesMax) throw txlogError('NOT_A_LOG', `${manifestPath} is too large to be a backup manifest`, { dir });
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (error) {
    throw txlogError('CORRUPT_LOG', `${manifestPath} is not valid JSON`, { dir }, error);
  }
  if (!isManifest(parsed)) throw txlogError('CORRUPT_LOG', `${manifestPath} is not a txlog backup manifest`, { dir });
  if (parsed.manifestVersion > manifestVersion) {
    throw txlogError('UNSUPPORTED_FORMAT', `${manifestPath} has manifest version ${parsed.manifestVersion}; this txlog reads ${manifestVersion}`, { dir });
  }
  return parsed;
}

function isManifest(value: unknown): value is BackupManifest {
  if (typeof value !== 'object' || value === null) return false;
  const fields = value as Record<string, unknown>;
  const count = (name: string): boolean => Number.isSafeInteger(fields[name]) && (fields[name] as number) >= 0;
  return (
    count('manifestVersion') &&
    count('walFormatVersion') &&
    count('lsn') &&
    count('epoch') &&
    (fields['stateLsn'] === null || count('stateLsn')) &&
    Array.isArray(fields['files']) &&
    (fields['files'] as unknown[]).every(isBackupFile)
  );
}

function isBackupFile(value: unknown): value is BackupFile {
  if (typeof value !== 'object' || value === null) return false;
  const fields = value as Record<string, unknown>;
  return (
    typeof fields['path'] === 'string' &&
    !fields['path'].split('/').includes('..') &&
    !path.isAbsolute(fields['path']) &&
    Number.isSafeInteger(fields['sizeBytes']) &&
    typeof fields['sha256'] === 'string'
  );
}

function writeFileDurably(filePath: string, text: string): void {
  const fd = fs.openSync(filePath, 'w');
  try {
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}


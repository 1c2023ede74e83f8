/**
 * The files around the LMDB state, outside LMDB's API (and outside the WAL's `FileSystem` seam,
 * as LMDB itself is): fsyncing a file or a directory (the state's data file, a backup's
 * directories), the kernel's boot id, and the check that a data file starts with an LMDB meta
 * page (the native library crashes on one that does not).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** fsyncs a file, or a directory (its entries: names created, renamed or removed in it). */
export function fsyncPath(filePath: string): void {
  const fd = fs.openSync(filePath, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The kernel's id for this boot (Linux), or undefined where there is none. */
export function currentBootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** LMDB's magic number, in the meta page at the start of its data file. */
const lmdbMagic = 0xbeefc0de;

/**
 * Refuses a data file that does not start with an LMDB meta page (zeroed, truncated, garbage):
 * the native library crashes the process on such a file instead of returning an error, so the
 * store could not rebuild it. This does not catch damage deeper in the file.
 */
export function checkDataFile(dir: string): void {
  const dataPath = path.join(dir, 'data.mdb');
  let fd: number;
  try {
    fd = fs.openSync(dataPath, 'r');
  } catch {
    return; // no data file yet: LMDB creates it
  }
  try {
    const head = Buffer.alloc(32);
    const read = fs.readSync(fd, head, 0, head.length, 0);
    if (read === 0) return;
    // The meta page header is 16 bytes in classic LMDB and 24 in the version lmdb-js 3 bundles.
    const magicFound = read === head.length && (head.readUInt32LE(16) === lmdbMagic || head.readUInt32LE(24) === lmdbMagic);
    if (!magicFound) throw new Error(`${dataPath} does not start with an LMDB meta page`);
  } finally {
    fs.closeSync(fd);
  }
}

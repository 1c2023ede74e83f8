/**
 * A platform whose fdatasync fails once armed (ENOSPC inline, EIO on the worker thread): the
 * bytes were written to the page cache, whether they would last is unknown. This is the failure
 * the store must answer with OUTCOME_UNKNOWN rather than a definite error.
 */
import { nodePlatform, type FileSystem, type Platform } from '../../wal/index.js';

export function failingSyncPlatform(): { platform: Platform; arm: () => void } {
  let armed = false;
  const real = nodePlatform.fileSystem;
  const failure = (code: string): NodeJS.ErrnoException => {
    const error = new Error(`${code}: simulated failure, fdatasync`) as NodeJS.ErrnoException;
    error.code = code;
    return error;
  };
  const fileSystem: FileSystem = {
    ...real,
    fdatasync: (fd) => {
      if (armed) throw failure('ENOSPC');
      real.fdatasync(fd);
    },
    fdatasyncAsync: (fd) => (armed ? Promise.reject(failure('EIO')) : real.fdatasyncAsync(fd)),
  };
  return { platform: { ...nodePlatform, fileSystem }, arm: () => (armed = true) };
}

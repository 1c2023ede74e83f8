/**
 * The lock one writer of a WAL directory holds while it runs (`FileSystem.lockDirectory` of
 * `nodeFileSystem`): a listening socket in Linux's abstract namespace, named after the
 * directory's device and inode. Binding a name that is bound fails at once, and the kernel
 * unbinds it when the process ends, however it ends: no file to leave behind after a crash, no
 * stale lock to judge, no race between two openers (a pid file has all three). The same
 * directory reached by another path (a symlink, a bind mount) has the same device and inode.
 *
 * Limits: the abstract namespace belongs to a network namespace, so two containers that share
 * the directory but not the network namespace do not see each other's lock; any local user who
 * can stat the directory can bind the name first and keep the store from opening; on other
 * systems than Linux there is no lock (a second writer is not refused).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface DirectoryLock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

/** The lock's name: the directory's identity, which every path to it shares. */
function lockNameOf(dir: string): string {
  const stats = fs.statSync(dir, { bigint: true });
  return `\0txlog-wal-lock-${stats.dev}-${stats.ino}`;
}

/** Takes the lock of `dir` (an existing directory), or returns undefined when it is held. */
export async function lockDirectoryBySocket(dir: string): Promise<DirectoryLock | undefined> {
  if (process.platform !== 'linux') return { release: async () => undefined };
  const name = lockNameOf(dir);
  // Whoever connects (nothing of ours does) is hung up on.
  const server = net.createServer((socket) => socket.destroy());
  const bound = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    // `exclusive`: in a cluster worker, bind here rather than through the primary process,
    // which would share one handle among workers and hold it past a worker's death.
    server.listen({ path: name, exclusive: true }, () => resolve(true));
  });
  if (!bound) return undefined;
  // The lock does not keep the process alive; the store's own work decides that.
  server.unref();
  let released: Promise<void> | undefined;
  return {
    release: () => (released ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

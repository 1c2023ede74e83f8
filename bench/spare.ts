/**
 * Waiting for a WAL's next segment to be preallocated: its zero-fill (64 MiB by default) runs in
 * the background and competes for the disk, so a measurement must not overlap it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Resolves once `walDir` holds a ready spare segment (`spare.ready`: zero-filled, fdatasync'd and
 * renamed by the WAL), or after `timeoutMs`.
 */
export async function settleSpare(walDir: string, timeoutMs = 30_000): Promise<void> {
  const readyPath = path.join(walDir, 'spare.ready');
  const deadlineMs = Date.now() + timeoutMs;
  while (Date.now() < deadlineMs && !fs.existsSync(readyPath)) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

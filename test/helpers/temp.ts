/**
 * Test helpers for things that must not outlive a test: temporary directories and child
 * processes. Each `use*` call registers its own `afterEach` teardown, so call it at the top level
 * of a `describe` (or file), then call the returned function inside each test.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach } from 'vitest';

/**
 * Returns a function that makes a fresh empty directory for the running test; every directory
 * made is removed after the test, whether it passed or failed.
 */
export function useTempDir(prefix = 'txlog-test-'): () => string {
  const made: string[] = [];
  afterEach(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = mkdtempSync(path.join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

/**
 * Returns a `spawn` for the running test; every child still running after the test is killed by
 * its own pid (SIGKILL) and awaited, so no test leaves a process behind.
 */
export function useChildProcesses(): (command: string, args: readonly string[], options?: SpawnOptions) => ChildProcess {
  const started: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((child) => killAndWait(child)));
  });
  return (command, args, options = {}) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    started.push(child);
    return child;
  };
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGKILLs the child by its pid unless it has exited, and waits for it to be gone. */
export async function killAndWait(child: ChildProcess): Promise<void> {
  const done = exited(child);
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone between the check and the kill: nothing to clean up.
    }
  }
  await done;
}

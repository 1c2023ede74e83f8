/**
 * Helpers for the CLI tests: run the built `txlog` as a real process, start a lone `txlog serve`
 * for the client commands (stopped after each test), write a known log with the WAL API (record
 * types and payloads shaped like `engine/records.ts`), and fingerprint a directory to prove a
 * command wrote nothing.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Wal } from '../../wal/index.js';
import type { SerializedError } from '../../wal/errors.js';
import { recordTypes, type CommitPayload, type EpochPayload, type JournalPayload } from '../../engine/records.js';

const repositoryDir = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Makes the built CLI runnable for this test file and returns a function giving its path.
 *
 * Other engineers rebuild `dist/` in the same checkout while tests run, and `tsc` rewrites
 * every file in place: a process started mid-rebuild can load a half-written module. So each
 * test file runs its own copy of `dist/`, taken (and smoke-tested, retrying while a rebuild is
 * under way) before its tests, with `node_modules` linked in so packages resolve, and removed
 * after them.
 */
export function useBuiltCli(): () => string {
  let copyDir: string | undefined;
  beforeAll(async () => {
    const built = path.join(repositoryDir, 'dist', 'cli', 'main.js');
    if (!existsSync(built)) throw new Error(`${built} is missing: run 'npm run build' first (npm test does)`);
    copyDir = mkdtempSync(path.join(tmpdir(), 'txlog-cli-build-'));
    for (let attempt = 1; ; attempt++) {
      rmSync(path.join(copyDir, 'dist'), { recursive: true, force: true });
      cpSync(path.join(repositoryDir, 'dist'), path.join(copyDir, 'dist'), { recursive: true });
      if (attempt === 1) {
        writeFileSync(path.join(copyDir, 'package.json'), JSON.stringify({ type: 'module' }));
        symlinkSync(path.join(repositoryDir, 'node_modules'), path.join(copyDir, 'node_modules'), 'dir');
      }
      const smoke = spawnSync(process.execPath, [path.join(copyDir, 'dist', 'cli', 'main.js'), 'inspect', '--help']);
      const workerLoads = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(copyDir, 'dist', 'cli', 'verify-worker.js'))})`]);
      if (smoke.status === 0 && workerLoads.status === 0) break;
      if (attempt === 5) throw new Error(`the built CLI does not run: ${smoke.stderr.toString()}${workerLoads.stderr.toString()}`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  });
  afterAll(() => {
    if (copyDir !== undefined) rmSync(copyDir, { recursive: true, force: true });
  });
  return () => {
    if (copyDir === undefined) throw new Error('useBuiltCli: the CLI copy is made in beforeAll');
    return path.join(copyDir, 'dist', 'cli', 'main.js');
  };
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `node <built CLI> ...args` with `CI` set (no progress bar) and waits for it. */
export function runCli(cliPath: string, args: readonly string[], environment: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { ...process.env, CI: '1', ...environment }, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error === null) return resolve({ exitCode: 0, stdout, stderr });
        if (typeof error.code === 'number') return resolve({ exitCode: error.code, stdout, stderr });
        reject(new Error(`txlog ${args.join(' ')} did not exit normally: ${error.message}\n${stderr}`));
      },
    );
  });
}

/**
 * Starts lone `txlog serve` processes of the built CLI on loopback port 0 (call at the top level
 * of a test file); each resolves with its address once it says it listens, and every one is
 * stopped (SIGTERM, then waited for) after each test.
 */
export function useServers(cli: () => string): (dir: string, extra?: string[]) => Promise<{ child: ChildProcess; address: string }> {
  const servers: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(stopServer));
  });
  return async (dir, extra = []) => {
    const child = spawn(process.execPath, [cli(), 'serve', '--dir', dir, '--listen', '127.0.0.1:0', '--segment-bytes', '1048576', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    servers.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const address = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const newline = stdout.indexOf('\n');
        if (newline >= 0) resolve((JSON.parse(stdout.slice(0, newline)) as { addresses: string[] }).addresses[0]!);
      });
      child.once('exit', (code) => reject(new Error(`txlog serve exited with ${String(code)}: ${stderr}`)));
    });
    return { child, address };
  };
}

/** SIGTERM, and waits for the exit (at once if it has exited). */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** One line of `--json --records` output per record. */
export function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export type WrittenPayload = CommitPayload | JournalPayload | EpochPayload;

export interface WrittenRecord {
  lsn: number;
  epoch: number;
  type: number;
  payload: WrittenPayload;
}

export interface LogShape {
  /** Transactions written at epoch 1 (one journal and one commit record each). */
  transactions: number;
  segmentBytes: number;
  preallocate?: boolean;
}

const failedCall: SerializedError = { code: 'HANDLER_FAILED', message: 'gateway down', details: {} };

/**
 * Writes a log to `storeDir/wal`: an epoch record (epoch 1), then per transaction a journal
 * record and a commit record (every fifth one failed, with an error in both), then an epoch
 * record (epoch 2) and one more transaction at epoch 2. Returns what was written, in LSN order.
 */
export async function writeLog(storeDir: string, shape: LogShape): Promise<WrittenRecord[]> {
  const wal = await Wal.open({
    dir: path.join(storeDir, 'wal'),
    segmentBytes: shape.segmentBytes,
    preallocate: shape.preallocate ?? true,
    fsync: 'never',
    log: () => undefined,
  });
  const written: WrittenRecord[] = [];
  const append = async (type: number, payload: WrittenPayload, epoch: number): Promise<void> => {
    const lsn = await wal.append(type, payload, epoch);
    written.push({ lsn, epoch, type, payload });
  };
  try {
    await append(recordTypes.epoch, { epoch: 1, fromLsn: 0, nodeId: 'node-a', atMs: 1_700_000_000_000 }, 1);
    for (let requestId = 1; requestId <= shape.transactions; requestId++) {
      await appendTransaction(append, requestId, 1);
    }
    const lastLsn = written[written.length - 1]!.lsn;
    await append(recordTypes.epoch, { epoch: 2, fromLsn: lastLsn, nodeId: 'node-b', atMs: 1_700_000_001_000 }, 2);
    await appendTransaction(append, shape.transactions + 1, 2);
  } finally {
    await wal.close();
  }
  return written;
}

async function appendTransaction(
  append: (type: number, payload: WrittenPayload, epoch: number) => Promise<void>,
  requestId: number,
  epoch: number,
): Promise<void> {
  const clientId = `client-${requestId % 2}`;
  const failed = requestId % 5 === 0;
  const journal: JournalPayload = { clientId, requestId, callIndex: 0, name: 'ledger.ref' };
  if (failed) journal.error = failedCall;
  else journal.result = { ref: `ref-${requestId}` };
  await append(recordTypes.journal, journal, epoch);
  const commit: CommitPayload = {
    clientId,
    requestId,
    command: 'deposit',
    args: { account: `a${requestId % 3}`, amount: requestId },
    events: failed
      ? []
      : [
          {
            stream: `account-a${requestId % 3}`,
            firstVersion: Math.floor(requestId / 3),
            events: [{ type: 'Deposited', data: { amount: requestId } }],
          },
        ],
    firstPosition: requestId - 1,
    now: [1_700_000_000_000 + requestId],
    random: [0.5],
    readSet: [[`account-a${requestId % 3}`, Math.floor(requestId / 3) - 1]],
    calls: 1,
    digest: `digest-${requestId}`,
  };
  if (failed) commit.error = { code: 'HANDLER_FAILED', message: 'ledger failed', details: {} };
  else commit.reply = { ref: `ref-${requestId}` };
  await append(recordTypes.commit, commit, epoch);
}

/** Every file under `dir` with its SHA-256: equal fingerprints mean nothing was written. */
export function fingerprint(dir: string): Record<string, string> {
  const result: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const name of readdirSync(at).sort()) {
      const full = path.join(at, name);
      if (statSync(full).isDirectory()) walk(full);
      else result[path.relative(dir, full)] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(dir);
  return result;
}

/** Segment file names of the store, oldest first. */
export function segmentNames(storeDir: string): string[] {
  return readdirSync(path.join(storeDir, 'wal'))
    .filter((name) => /^\d{20}\.wal$/.test(name))
    .sort();
}

/**
 * What an online backup costs a running store: the commit throughput of a writer process, in
 * windows of `--window-ms`, while nothing else runs and while `txlog backup --dir` copies its
 * store back to back (each copy removed after it completes), in alternating phases so both see
 * the same disk and the same log size. Reports the median window of each, their ratio, and the
 * median backup duration and size. Not a test: nothing is asserted.
 *
 *   npm run build && node dist/bench/backup-bench.js [--json] [--writers 64] [--prefill 100000]
 *       [--phase-ms 4000] [--rounds 3] [--window-ms 500] [--fsync always|interval|never] [--dir D]
 *
 * The writer is this script again (`--writer DIR`): a store with `writers` clients appending one
 * ~400-byte event each, awaiting each commit, printing `writing` once `prefill` records are
 * applied and then its commits per window on stdout, until its stdin ends. `--light` (1 MiB
 * segments, no preallocation) is for the tests, which use it as their writer process too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openStore } from '../engine/index.js';
import type { FsyncPolicy } from '../wal/options.js';
import { median } from './stats.js';

const cliPath = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const selfPath = fileURLToPath(import.meta.url);

const { values } = parseArgs({
  options: {
    writer: { type: 'string' },
    writers: { type: 'string', default: '64' },
    prefill: { type: 'string', default: '100000' },
    'phase-ms': { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '3' },
    'window-ms': { type: 'string', default: '500' },
    fsync: { type: 'string', default: 'always' },
    dir: { type: 'string' },
    json: { type: 'boolean', default: false },
    light: { type: 'boolean', default: false },
  },
});

const writers = Number(values.writers);
const prefillRecords = Number(values.prefill);
const windowMs = Number(values['window-ms']);
const fsync = values.fsync as FsyncPolicy;

if (values.writer !== undefined) await runWriter(values.writer);
else await runBench();

async function runWriter(dir: string): Promise<void> {
  const light = values.light ? { segmentBytes: 1024 * 1024, preallocate: false } : {};
  const store = await openStore({ dir, fsync, ...light, log: () => undefined });
  const padding = 'x'.repeat(400);
  let committed = 0;
  let announced = false;
  const writer = async (index: number): Promise<void> => {
    for (let count = 1; ; count++) {
      await store.append(`stream-${index}`, [{ type: 'Written', data: { count, padding } }], { clientId: `writer-${index}`, requestId: count });
      committed += 1;
      if (!announced && store.appliedLsn >= prefillRecords) {
        announced = true;
        process.stdout.write('writing\n');
      }
    }
  };
  setInterval(() => {
    process.stdout.write(`committed ${committed}\n`);
    committed = 0;
  }, windowMs);
  // Never outlive a parent that died without killing us.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  for (let index = 0; index < writers; index++) void writer(index);
}

async function runBench(): Promise<void> {
  const root = fs.mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'txlog-backup-bench-'));
  const storeDir = path.join(root, 'store');
  const child = spawn(process.execPath, [selfPath, '--writer', storeDir, '--writers', String(writers), '--prefill', String(prefillRecords), '--window-ms', String(windowMs), '--fsync', fsync], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const windows: number[] = [];
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line === 'writing') resolve();
          const match = /^committed (\d+)$/.exec(line);
          if (match !== null) windows.push(Number(match[1]) * (1000 / windowMs));
        }
      });
      child.once('exit', (code) => reject(new Error(`writer exited with ${code}`)));
    });
    const without: number[] = [];
    const during: number[] = [];
    const backupMs: number[] = [];
    let backupBytes = 0;
    let copies = 0;
    const phaseMs = Number(values['phase-ms']);
    for (let round = 0; round < Number(values.rounds); round++) {
      windows.length = 0;
      await sleep(phaseMs);
      without.push(...windows.slice(1));
      windows.length = 0;
      const phaseEnd = performance.now() + phaseMs;
      while (performance.now() < phaseEnd) {
        const out = path.join(root, `copy-${copies++}`);
        const started = performance.now();
        await runBackup(storeDir, out);
        backupMs.push(performance.now() - started);
        backupBytes = directoryBytes(out);
        fs.rmSync(out, { recursive: true, force: true });
      }
      during.push(...windows.slice(1));
    }
    const logBytes = directoryBytes(path.join(storeDir, 'wal'));
    const report = {
      writers,
      fsync,
      windowMs,
      windowsWithout: without.length,
      windowsDuring: during.length,
      medianTransactionsPerSecondWithout: Math.round(median(without)),
      medianTransactionsPerSecondDuring: Math.round(median(during)),
      ratio: Number((median(during) / median(without)).toFixed(3)),
      backups: backupMs.length,
      medianBackupMs: Math.round(median(backupMs)),
      backupBytes,
      sourceWalBytes: logBytes,
      loadAverage: os.loadavg().map((value) => Number(value.toFixed(2))),
    };
    if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      process.stdout.write(
        `writer (${writers} clients, fsync ${fsync}): median ${report.medianTransactionsPerSecondWithout} tx/s alone, ` +
          `${report.medianTransactionsPerSecondDuring} tx/s during backups (${(report.ratio * 100).toFixed(1)}%); ` +
          `${report.backups} backups, median ${report.medianBackupMs} ms for ${(backupBytes / 1024 ** 2).toFixed(1)} MiB\n`,
      );
    }
  } finally {
    child.stdin!.end();
    killChild(child);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function runBackup(storeDir: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const backup = spawn(process.execPath, [cliPath, 'backup', '--dir', storeDir, '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] });
    backup.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`txlog backup exited with ${code}`))));
  });
}

function killChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function directoryBytes(dir: string): number {
  const result = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(result.stdout.split('\t')[0] ?? 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

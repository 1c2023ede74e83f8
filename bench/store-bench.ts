/**
 * Store commit benchmark: `execute()` of a one-event transaction (the built-in `append`, one
 * ~200-byte event, one stream per client, exactly-once ids) under `fsync: 'always'`, beside the
 * raw WAL append (`Wal.append` of a record of the same size, also `always`) measured in the same
 * run, in alternating slices so both see the same disk.
 *
 *   npm run build && node dist/bench/store-bench.js [--json] [--duration-ms 3000] [--slices 3] [--event-bytes 200] [--dir D]
 *
 * Latency: one client, each request awaited before the next (p50/p99). Throughput: 1, 64 and
 * 256 clients at once, each awaiting its own requests. `--dir` should be on the disk under test
 * (default: the OS temporary directory); a fresh subdirectory is made and removed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Wal, encodePayload } from '../wal/index.js';
import { openStore, type Store } from '../engine/index.js';
import { recordTypes, type CommitPayload } from '../engine/records.js';
import { LatencySamples, elapsedNs, type LatencySummary } from './stats.js';
import { settleSpare } from './spare.js';
import { commitRecordOf, eventOf } from './txlog-subjects.js';

/** Targets the store is held to (reported, not enforced). */
const targets = {
  /** One client: execute p50 at most this many times the raw WAL append's p50. */
  singleClientP50RatioMax: 1.3,
  /** 256 clients: at least this many transactions per second. */
  transactionsPerSecondMin: 50_000,
} as const;
const concurrencies = [1, 64, 256] as const;
const warmupMs = 300;

interface Arguments {
  json: boolean;
  durationMs: number;
  slices: number;
  eventBytes: number;
  dir: string;
}

function parseArguments(): Arguments {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      'duration-ms': { type: 'string', default: '3000' },
      slices: { type: 'string', default: '3' },
      'event-bytes': { type: 'string', default: '200' },
      dir: { type: 'string', default: os.tmpdir() },
    },
  });
  const durationMs = Number(values['duration-ms']);
  const slices = Number(values.slices);
  const eventBytes = Number(values['event-bytes']);
  if (!Number.isSafeInteger(durationMs) || durationMs < 100) throw new Error('--duration-ms must be an integer of at least 100');
  if (!Number.isSafeInteger(slices) || slices < 1 || slices > 100) throw new Error('--slices must be an integer in [1, 100]');
  if (!Number.isSafeInteger(eventBytes) || eventBytes < 16 || eventBytes > 64 * 1024) throw new Error('--event-bytes must be an integer in [16, 65536]');
  return { json: values.json === true, durationMs, slices, eventBytes, dir: values.dir ?? os.tmpdir() };
}

interface Subjects {
  store: Store;
  wal: Wal;
  event: unknown;
  walRecord: CommitPayload;
  nextRequestId: Map<number, number>;
}

/** One client's loop: awaited executes until the deadline; returns how many completed. */
async function storeClient(subjects: Subjects, client: number, endNs: bigint, samples?: LatencySamples): Promise<number> {
  let count = 0;
  const clientId = `client-${client}`;
  const args = { stream: `stream-${client}`, events: [subjects.event] };
  let requestId = subjects.nextRequestId.get(client) ?? 1;
  while (process.hrtime.bigint() < endNs) {
    const startNs = process.hrtime.bigint();
    await subjects.store.execute('append', args, { clientId, requestId });
    samples?.add(elapsedNs(startNs));
    requestId += 1;
    count += 1;
  }
  subjects.nextRequestId.set(client, requestId);
  return count;
}

async function walAppender(subjects: Subjects, endNs: bigint, samples?: LatencySamples): Promise<number> {
  let count = 0;
  while (process.hrtime.bigint() < endNs) {
    const startNs = process.hrtime.bigint();
    await subjects.wal.append(recordTypes.commit, subjects.walRecord, 1);
    samples?.add(elapsedNs(startNs));
    count += 1;
  }
  return count;
}

function deadline(durationMs: number): bigint {
  return process.hrtime.bigint() + BigInt(durationMs) * 1_000_000n;
}

async function runStore(subjects: Subjects, clients: number, durationMs: number, samples?: LatencySamples): Promise<{ count: number; seconds: number }> {
  const startNs = process.hrtime.bigint();
  const endNs = deadline(durationMs);
  const counts = await Promise.all(Array.from({ length: clients }, (_, client) => storeClient(subjects, client, endNs, samples)));
  return { count: counts.reduce((sum, count) => sum + count, 0), seconds: elapsedNs(startNs) / 1e9 };
}

async function runWal(subjects: Subjects, appenders: number, durationMs: number, samples?: LatencySamples): Promise<{ count: number; seconds: number }> {
  const startNs = process.hrtime.bigint();
  const endNs = deadline(durationMs);
  const counts = await Promise.all(Array.from({ length: appenders }, () => walAppender(subjects, endNs, samples)));
  return { count: counts.reduce((sum, count) => sum + count, 0), seconds: elapsedNs(startNs) / 1e9 };
}

interface LatencyReport {
  store: LatencySummary;
  wal: LatencySummary;
  p50Ratio: number;
}

interface ThroughputRow {
  clients: number;
  storeTransactionsPerSecond: number;
  walRecordsPerSecond: number;
  ratio: number;
}

async function main(): Promise<void> {
  const args = parseArguments();
  const progress = (message: string): void => {
    if (!args.json) process.stderr.write(`${message}\n`);
  };
  const root = fs.mkdtempSync(path.join(args.dir, 'txlog-store-bench-'));
  const event = eventOf(args.eventBytes);
  const store = await openStore({ dir: path.join(root, 'store'), fsync: 'always', log: () => {} });
  const wal = await Wal.open({ dir: path.join(root, 'raw-wal'), fsync: 'always', log: () => {} });
  const subjects: Subjects = { store, wal, event, walRecord: commitRecordOf(event), nextRequestId: new Map() };
  const sliceMs = Math.max(50, Math.round(args.durationMs / args.slices));
  try {
    await settleSpare(path.join(root, 'store', 'wal'));
    await settleSpare(path.join(root, 'raw-wal'));
    const recordBytes = encodePayload(subjects.walRecord).length;

    progress('one client, each execute awaited, beside one raw WAL appender');
    await runStore(subjects, 1, warmupMs);
    await runWal(subjects, 1, warmupMs);
    const storeSamples = new LatencySamples();
    const walSamples = new LatencySamples();
    for (let slice = 0; slice < args.slices; slice++) {
      await runWal(subjects, 1, sliceMs, walSamples);
      await runStore(subjects, 1, sliceMs, storeSamples);
    }
    const storeLatency = storeSamples.summarize();
    const walLatency = walSamples.summarize();
    const latency: LatencyReport = { store: storeLatency, wal: walLatency, p50Ratio: storeLatency.p50Us / walLatency.p50Us };

    const throughput: ThroughputRow[] = [];
    for (const clients of concurrencies) {
      progress(`${clients} clients at once, beside ${clients} raw WAL appenders`);
      await runStore(subjects, clients, warmupMs);
      let storeCount = 0;
      let storeSeconds = 0;
      let walCount = 0;
      let walSeconds = 0;
      for (let slice = 0; slice < args.slices; slice++) {
        const walRun = await runWal(subjects, clients, sliceMs);
        walCount += walRun.count;
        walSeconds += walRun.seconds;
        const storeRun = await runStore(subjects, clients, sliceMs);
        storeCount += storeRun.count;
        storeSeconds += storeRun.seconds;
      }
      const storeTransactionsPerSecond = storeCount / storeSeconds;
      const walRecordsPerSecond = walCount / walSeconds;
      throughput.push({ clients, storeTransactionsPerSecond, walRecordsPerSecond, ratio: storeTransactionsPerSecond / walRecordsPerSecond });
    }

    const widest = throughput.find((row) => row.clients === 256)!;
    const verdicts = {
      singleClientP50: { ratio: latency.p50Ratio, target: `<= ${targets.singleClientP50RatioMax}`, met: latency.p50Ratio <= targets.singleClientP50RatioMax },
      throughput256: {
        transactionsPerSecond: widest.storeTransactionsPerSecond,
        target: `>= ${targets.transactionsPerSecondMin}`,
        met: widest.storeTransactionsPerSecond >= targets.transactionsPerSecondMin,
      },
    };
    const report = { eventBytes: encodePayload(event).length, walRecordBytes: recordBytes, durationMs: args.durationMs, slices: args.slices, dir: args.dir, node: process.version, latency, throughput, targets: verdicts };
    if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else printTables(report);
  } finally {
    await store.close();
    await wal.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function printTables(report: {
  eventBytes: number;
  walRecordBytes: number;
  durationMs: number;
  slices: number;
  dir: string;
  latency: LatencyReport;
  throughput: ThroughputRow[];
  targets: { singleClientP50: { ratio: number; met: boolean }; throughput256: { transactionsPerSecond: number; met: boolean } };
}): void {
  const fixed = (value: number, digits = 1): string => value.toFixed(digits);
  const cells = (values: readonly string[], width: number): string => values.map((value) => value.padStart(width)).join('');
  const lines: string[] = [];
  lines.push(
    `txlog store bench: built-in append of one ${report.eventBytes} B event (raw WAL record ${report.walRecordBytes} B), fsync always, ${report.durationMs} ms per measurement in ${report.slices} slices alternating with the raw WAL, dir ${report.dir}, node ${process.version}`,
  );
  lines.push('');
  lines.push('One client, each request awaited (latency in µs)');
  lines.push(cells(['', 'samples', 'p50', 'p99', 'p999', 'max'], 14));
  for (const [name, summary] of [['execute', report.latency.store], ['raw WAL', report.latency.wal]] as const) {
    lines.push(cells([name, String(summary.samples), fixed(summary.p50Us), fixed(summary.p99Us), fixed(summary.p999Us), fixed(summary.maxUs)], 14));
  }
  lines.push('');
  lines.push('Concurrent clients (each awaiting its own requests)');
  lines.push(cells(['clients', 'execute tx/s', 'raw WAL rec/s', 'execute / WAL'], 16));
  for (const row of report.throughput) {
    lines.push(cells([String(row.clients), fixed(row.storeTransactionsPerSecond, 0), fixed(row.walRecordsPerSecond, 0), `${fixed(row.ratio, 2)}x`], 16));
  }
  lines.push('');
  lines.push(`target: one client p50 <= ${targets.singleClientP50RatioMax}x raw WAL: ${fixed(report.targets.singleClientP50.ratio, 2)}x ${report.targets.singleClientP50.met ? 'met' : 'MISSED'}`);
  lines.push(
    `target: 256 clients >= ${targets.transactionsPerSecondMin} tx/s: ${fixed(report.targets.throughput256.transactionsPerSecond, 0)} ${report.targets.throughput256.met ? 'met' : 'MISSED'}`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();

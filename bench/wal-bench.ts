/**
 * WAL commit benchmark: append latency per fsync policy with one appender (each append awaited
 * before the next), and records per second with 1, 8, 64 and 512 concurrent appenders under
 * `fsync: 'always'`, each beside a raw floor measured in the same run (bench/floors.ts).
 *
 *   npm run build && node dist/bench/wal-bench.js [--json] [--record-bytes 200] [--duration-ms 3000] [--slices 3] [--dir D]
 *
 * `--record-bytes` is the msgpack payload size; the floors write the same bytes as the WAL's
 * frame (payload plus the 24-byte frame header). `--dir` should be on the disk under test
 * (default: the OS temporary directory); a fresh subdirectory is made and removed. Each
 * measurement runs `--duration-ms` in total, cut into `--slices` that alternate with its floor.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Wal, encodePayload, frameHeaderBytes, type FsyncPolicy } from '../wal/index.js';
import { measureFloor, type FloorResult } from './floors.js';
import { LatencySamples, elapsedNs, type LatencySummary } from './stats.js';
import { settleSpare } from './spare.js';

/** Targets the WAL is held to (reported, not enforced). */
const targets = {
  /** One appender under `always`: p50 at most this many times the write+fdatasync floor's p50. */
  singleAppenderP50RatioMax: 1.2,
  /** 64 and 512 appenders under `always`: at least this fraction of the batched floor's records/s. */
  concurrentThroughputRatioMin: 0.7,
} as const;
const concurrencies = [1, 8, 64, 512] as const;
const policies: readonly FsyncPolicy[] = ['always', 'interval', 'never'];
const warmupMs = 300;
const floorFileBytes = 64 * 1024 * 1024;

interface Arguments {
  json: boolean;
  recordBytes: number;
  durationMs: number;
  dir: string;
  slices: number;
}

function parseArguments(): Arguments {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      'record-bytes': { type: 'string', default: '200' },
      'duration-ms': { type: 'string', default: '3000' },
      dir: { type: 'string', default: os.tmpdir() },
      slices: { type: 'string', default: '3' },
    },
  });
  const recordBytes = Number(values['record-bytes']);
  const durationMs = Number(values['duration-ms']);
  if (!Number.isSafeInteger(recordBytes) || recordBytes < 8 || recordBytes > 1024 * 1024) throw new Error('--record-bytes must be an integer in [8, 1048576]');
  if (!Number.isSafeInteger(durationMs) || durationMs < 100) throw new Error('--duration-ms must be an integer of at least 100');
  const slices = Number(values.slices);
  if (!Number.isSafeInteger(slices) || slices < 1 || slices > 100) throw new Error('--slices must be an integer in [1, 100]');
  return { json: values.json === true, recordBytes, durationMs, dir: values.dir ?? os.tmpdir(), slices };
}

/** A Buffer payload whose msgpack encoding is exactly `recordBytes` long. */
function payloadOf(recordBytes: number): Buffer {
  for (let length = recordBytes; length > recordBytes - 8; length--) {
    const candidate = Buffer.alloc(length, 0x61);
    if (encodePayload(candidate).length === recordBytes) return candidate;
  }
  throw new Error(`no payload packs to exactly ${recordBytes} bytes`);
}

async function withWal<T>(parent: string, fsync: FsyncPolicy, run: (wal: Wal) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(parent, `wal-${fsync}-`));
  const wal = await Wal.open({ dir, fsync, log: () => {} });
  try {
    await settleSpare(dir);
    return await run(wal);
  } finally {
    await wal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}


async function singleAppender(wal: Wal, payload: Buffer, durationMs: number, samples: LatencySamples): Promise<void> {
  const endNs = process.hrtime.bigint() + BigInt(durationMs) * 1_000_000n;
  while (process.hrtime.bigint() < endNs) {
    const startNs = process.hrtime.bigint();
    await wal.append(1, payload, 1);
    samples.add(elapsedNs(startNs));
  }
}

/** Runs `appenders` loops of awaited appends until the deadline; returns how many completed. */
async function concurrentAppenders(wal: Wal, payload: Buffer, appenders: number, durationMs: number): Promise<number> {
  const endNs = process.hrtime.bigint() + BigInt(durationMs) * 1_000_000n;
  const counts = await Promise.all(
    Array.from({ length: appenders }, async () => {
      let count = 0;
      while (process.hrtime.bigint() < endNs) {
        await wal.append(1, payload, 1);
        count += 1;
      }
      return count;
    }),
  );
  return counts.reduce((sum, count) => sum + count, 0);
}

interface LatencyRow {
  policy: FsyncPolicy;
  wal: LatencySummary;
  floorName: string;
  floor: LatencySummary;
  p50Ratio: number;
}

interface ThroughputRow {
  appenders: number;
  walRecordsPerSecond: number;
  /** Mean records per write (group commit at work). */
  walRecordsPerBatch: number;
  floorRecordsPerSecond: number;
  ratio: number;
}

interface Setup {
  root: string;
  payload: Buffer;
  floorOptions: { dir: string; recordBytes: number; durationMs: number; fileBytes: number };
  sliceMs: number;
  slices: number;
  progress: (message: string) => void;
}

/**
 * The disk is shared and its speed drifts, so the WAL and its floor are measured in alternating
 * slices (floor, WAL, floor, WAL...) and pooled: both see the same conditions.
 */
async function latencyRow(setup: Setup, policy: FsyncPolicy): Promise<LatencyRow> {
  const sync = policy === 'always';
  setup.progress(`one appender, fsync ${policy}, beside a write${sync ? '+fdatasync' : ''} floor`);
  const walSamples = new LatencySamples();
  const floorSamples = new LatencySamples();
  await withWal(setup.root, policy, async (wal) => {
    await singleAppender(wal, setup.payload, warmupMs, new LatencySamples());
    for (let slice = 0; slice < setup.slices; slice++) {
      measureFloor({ ...setup.floorOptions, durationMs: setup.sliceMs, batchRecords: 1, sync, samples: floorSamples });
      await singleAppender(wal, setup.payload, setup.sliceMs, walSamples);
    }
  });
  const walSummary = walSamples.summarize();
  const floor = floorSamples.summarize();
  return { policy, wal: walSummary, floorName: sync ? 'write+fdatasync' : 'write', floor, p50Ratio: walSummary.p50Us / floor.p50Us };
}

async function throughputRow(setup: Setup, appenders: number): Promise<ThroughputRow> {
  setup.progress(`${appenders} concurrent appenders, fsync always, beside ${appenders} records per write+fdatasync`);
  let walRecords = 0;
  let walSeconds = 0;
  let walBatches = 0;
  let floorRecords = 0;
  let floorSeconds = 0;
  await withWal(setup.root, 'always', async (wal) => {
    await concurrentAppenders(wal, setup.payload, appenders, warmupMs);
    const stopListening = wal.onBatch(() => (walBatches += 1));
    for (let slice = 0; slice < setup.slices; slice++) {
      const floor: FloorResult = measureFloor({ ...setup.floorOptions, durationMs: setup.sliceMs, batchRecords: appenders, sync: true, samples: new LatencySamples() });
      floorRecords += floor.records;
      floorSeconds += floor.seconds;
      const startNs = process.hrtime.bigint();
      walRecords += await concurrentAppenders(wal, setup.payload, appenders, setup.sliceMs);
      walSeconds += elapsedNs(startNs) / 1e9;
    }
    stopListening();
  });
  const walRecordsPerSecond = walRecords / walSeconds;
  const floorRecordsPerSecond = floorRecords / floorSeconds;
  return {
    appenders,
    walRecordsPerSecond,
    walRecordsPerBatch: walRecords / Math.max(walBatches, 1),
    floorRecordsPerSecond,
    ratio: walRecordsPerSecond / floorRecordsPerSecond,
  };
}

async function main(): Promise<void> {
  const args = parseArguments();
  const root = fs.mkdtempSync(path.join(args.dir, 'txlog-bench-'));
  const setup: Setup = {
    root,
    payload: payloadOf(args.recordBytes),
    floorOptions: { dir: root, recordBytes: args.recordBytes + frameHeaderBytes, durationMs: args.durationMs, fileBytes: floorFileBytes },
    slices: args.slices,
    sliceMs: Math.max(50, Math.round(args.durationMs / args.slices)),
    progress: (message) => {
      if (!args.json) process.stderr.write(`${message}\n`);
    },
  };
  try {
    const latencyRows: LatencyRow[] = [];
    for (const policy of policies) latencyRows.push(await latencyRow(setup, policy));
    const throughputRows: ThroughputRow[] = [];
    for (const appenders of concurrencies) throughputRows.push(await throughputRow(setup, appenders));

    const always = latencyRows.find((row) => row.policy === 'always')!;
    const verdicts = {
      singleAppenderP50: { ratio: always.p50Ratio, target: `<= ${targets.singleAppenderP50RatioMax}`, met: always.p50Ratio <= targets.singleAppenderP50RatioMax },
      concurrent: throughputRows
        .filter((row) => row.appenders >= 64)
        .map((row) => ({ appenders: row.appenders, ratio: row.ratio, target: `>= ${targets.concurrentThroughputRatioMin}`, met: row.ratio >= targets.concurrentThroughputRatioMin })),
    };
    const report = {
      recordBytes: args.recordBytes,
      frameBytes: args.recordBytes + frameHeaderBytes,
      durationMs: args.durationMs,
      slices: args.slices,
      dir: args.dir,
      node: process.version,
      latency: latencyRows,
      throughput: throughputRows,
      targets: verdicts,
    };
    if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else printTables(report.latency, report.throughput, verdicts, args);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function printTables(
  latency: readonly LatencyRow[],
  throughput: readonly ThroughputRow[],
  verdicts: { singleAppenderP50: { ratio: number; met: boolean }; concurrent: Array<{ appenders: number; ratio: number; met: boolean }> },
  args: Arguments,
): void {
  const fixed = (value: number, digits = 1): string => value.toFixed(digits);
  const lines: string[] = [];
  lines.push(
    `txlog WAL bench: payload ${args.recordBytes} B (frame ${args.recordBytes + frameHeaderBytes} B), ${args.durationMs} ms per measurement in ${args.slices} slices alternating with its floor, dir ${args.dir}, node ${process.version}`,
  );
  lines.push('');
  lines.push('One appender, each append awaited (latency in µs)');
  lines.push(['policy', 'samples', 'p50', 'p99', 'p999', 'max', 'floor', 'floor p50', 'floor p99', 'p50 / floor'].map((cell) => cell.padStart(16)).join(''));
  for (const row of latency) {
    lines.push(
      [row.policy, String(row.wal.samples), fixed(row.wal.p50Us), fixed(row.wal.p99Us), fixed(row.wal.p999Us), fixed(row.wal.maxUs), row.floorName, fixed(row.floor.p50Us), fixed(row.floor.p99Us), `${fixed(row.p50Ratio, 2)}x`]
        .map((cell) => cell.padStart(16))
        .join(''),
    );
  }
  lines.push('');
  lines.push("Concurrent appenders, fsync 'always' (floor: N records per write+fdatasync)");
  lines.push(['appenders', 'wal records/s', 'records/batch', 'floor records/s', 'wal / floor'].map((cell) => cell.padStart(18)).join(''));
  for (const row of throughput) {
    lines.push(
      [String(row.appenders), fixed(row.walRecordsPerSecond, 0), fixed(row.walRecordsPerBatch, 1), fixed(row.floorRecordsPerSecond, 0), `${fixed(row.ratio, 2)}x`]
        .map((cell) => cell.padStart(18))
        .join(''),
    );
  }
  lines.push('');
  lines.push(`target: one appender 'always' p50 <= ${targets.singleAppenderP50RatioMax}x floor: ${fixed(verdicts.singleAppenderP50.ratio, 2)}x ${verdicts.singleAppenderP50.met ? 'met' : 'MISSED'}`);
  for (const verdict of verdicts.concurrent) {
    lines.push(`target: ${verdict.appenders} appenders >= ${targets.concurrentThroughputRatioMin}x batched floor: ${fixed(verdict.ratio, 2)}x ${verdict.met ? 'met' : 'MISSED'}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();

/**
 * What Prometheus metrics cost: the same closed-loop load (one-event transactions, `concurrency`
 * in flight) against a txlog with metrics off and one with metrics on, in alternating slices so
 * both see the same machine (this VM is shared: its load moves within seconds), reporting the
 * median over slices of throughput and of CPU per transaction (this process for the embedded
 * store, the primary's process for the pair). Not a test: nothing is asserted.
 *
 *   npm run build && node dist/bench/metrics-bench.js [--json] [--mode embedded|replicated|both]
 *       [--fsync always|interval|never] [--concurrency 256] [--slice-ms 1000] [--rounds 8] [--dir D]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { FsyncPolicy } from '../wal/options.js';
import { processCpuUs } from './cpu-meter.js';
import { runLoad } from './load.js';
import { median } from './stats.js';
import { eventOf, openEmbedded, startReplicated, type TxlogSubject } from './txlog-subjects.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'both' },
    fsync: { type: 'string', default: 'always' },
    concurrency: { type: 'string', default: '256' },
    'slice-ms': { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '8' },
    dir: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const fsync = values.fsync as FsyncPolicy;
const concurrency = Number(values.concurrency);
const sliceMs = Number(values['slice-ms']);
const rounds = Number(values.rounds);

interface Slice {
  transactionsPerSecond: number;
  cpuUsPerTransaction: number;
}

interface Subject extends TxlogSubject {
  /** CPU µs used so far by the process that runs the store. */
  cpuUs(): number;
}

const root = fs.mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'txlog-metrics-bench-'));
const event = eventOf(200);
const report: Record<string, unknown> = { fsync, concurrency, sliceMs, rounds, loadAverageBefore: os.loadavg().map((value) => Number(value.toFixed(2))) };
try {
  if (values.mode !== 'replicated') {
    const off = await openEmbedded(path.join(root, 'embedded-off'), fsync, event, false);
    const on = await openEmbedded(path.join(root, 'embedded-on'), fsync, event, true);
    const ownCpuUs = (): number => {
      const used = process.cpuUsage();
      return used.user + used.system;
    };
    report['embedded'] = await compare({ ...off, cpuUs: ownCpuUs }, { ...on, cpuUs: ownCpuUs });
  }
  if (values.mode !== 'embedded') {
    const placement = { primaryCpus: undefined, backupCpus: undefined };
    const off = await startReplicated(path.join(root, 'pair-off'), fsync, event, placement, { metrics: false });
    const on = await startReplicated(path.join(root, 'pair-on'), fsync, event, placement, { metrics: true });
    report['replicated'] = await compare({ ...off, cpuUs: () => processCpuUs(off.primary.pid) ?? 0 }, { ...on, cpuUs: () => processCpuUs(on.primary.pid) ?? 0 });
  }
  report['loadAverageAfter'] = os.loadavg().map((value) => Number(value.toFixed(2)));
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}

/** Alternating slices (off first in even rounds, on first in odd ones); closes both subjects. */
async function compare(off: Subject, on: Subject): Promise<Record<string, number>> {
  const slices = { off: [] as Slice[], on: [] as Slice[] };
  try {
    for (let round = 0; round < rounds; round++) {
      const order: Array<['off' | 'on', Subject]> = round % 2 === 0 ? [['off', off], ['on', on]] : [['on', on], ['off', off]];
      for (const [name, subject] of order) slices[name].push(await slice(subject));
    }
  } finally {
    await off.close();
    await on.close();
  }
  const medianOf = (name: 'off' | 'on', field: keyof Slice): number => median(slices[name].map((entry) => entry[field]));
  const summary = {
    transactionsPerSecondOff: Math.round(medianOf('off', 'transactionsPerSecond')),
    transactionsPerSecondOn: Math.round(medianOf('on', 'transactionsPerSecond')),
    cpuUsPerTransactionOff: Number(medianOf('off', 'cpuUsPerTransaction').toFixed(1)),
    cpuUsPerTransactionOn: Number(medianOf('on', 'cpuUsPerTransaction').toFixed(1)),
  };
  return {
    ...summary,
    throughputRatio: Number((summary.transactionsPerSecondOn / summary.transactionsPerSecondOff).toFixed(3)),
    cpuRatio: Number((summary.cpuUsPerTransactionOn / summary.cpuUsPerTransactionOff).toFixed(3)),
  };
}

async function slice(subject: Subject): Promise<Slice> {
  const cpuBefore = subject.cpuUs();
  const result = await runLoad({ concurrency, durationMs: sliceMs, count: undefined, warmupMs: 0 }, subject.transaction);
  const cpuUs = subject.cpuUs() - cpuBefore;
  return { transactionsPerSecond: result.completed / result.seconds, cpuUsPerTransaction: cpuUs / Math.max(1, result.completed) };
}

/**
 * State apply benchmark: the CPU one commit costs the LMDB state alone (`State.apply`), without
 * the WAL, the handler or the pipeline around it, so a change of the state layout is measured
 * where it acts. Applies one-event commits of the built-in append's shape (a 200-byte event, a
 * reply), `--clients` clients round robin with exactly-once ids, in LMDB transactions of
 * `--batch` commits (64: the live pipeline's `applyBatchRecords`), to a fresh state; times
 * `--commits` of them after as many again of warm-up, `--rounds` times. `--records decoded` (the
 * default) gives the apply records as a backup has them, decoded objects whose events and reply
 * it packs for LMDB; `--records packed` as a primary has them, with those bytes as views of the
 * record it packed (`encodeCommitForApply`).
 *
 *   npm run build && node dist/bench/apply-bench.js [--clients 256] [--commits 200000] [--batch 64] [--records decoded|packed] [--rounds 3] [--json]
 *
 * To compare two builds, run each one's script alternately on the same machine: the figures
 * are ratios between builds, not absolute numbers (a loaded machine moves them by 10%).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeCommitForApply } from '../engine/commit-encoding.js';
import { recordTypes, type CommitPayload } from '../engine/records.js';
import { sessionLimitDefaults } from '../engine/options.js';
import { State, type ApplicableRecord } from '../engine/state.js';
import { median as medianOf } from './stats.js';
import { eventOf } from './txlog-subjects.js';

interface Options {
  clients: number;
  commits: number;
  batch: number;
  /** decoded: records as a backup applies them (objects whose events and reply the apply packs); packed: as a primary does (views of the record it packed). */
  records: 'decoded' | 'packed';
  rounds: number;
  json: boolean;
}

function integerOption(name: string, value: string | undefined, min: number, max: number): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < min || number > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return number;
}

function parseArguments(): Options {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '256' },
      commits: { type: 'string', default: '200000' },
      batch: { type: 'string', default: '64' },
      records: { type: 'string', default: 'decoded' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
  });
  return {
    clients: integerOption('clients', values.clients, 1, 1_000_000),
    commits: integerOption('commits', values.commits, 1000, 10_000_000),
    batch: integerOption('batch', values.batch, 1, 100_000),
    records: recordsOption(values.records),
    rounds: integerOption('rounds', values.rounds, 1, 20),
    json: values.json === true,
  };
}

function recordsOption(value: string | undefined): 'decoded' | 'packed' {
  if (value === 'decoded' || value === 'packed') return value;
  throw new Error('--records must be decoded or packed');
}

/** The commits of one round, built before the clock starts: the warm-up's, then the timed ones. */
function commitsOf(options: Options): ApplicableRecord[] {
  const event = eventOf(200);
  const versions = new Array<number>(options.clients).fill(0);
  return Array.from({ length: 2 * options.commits }, (_, index) => {
    const client = index % options.clients;
    const version = versions[client]!;
    versions[client] = version + 1;
    const stream = `stream-${client}`;
    const payload: CommitPayload = {
      clientId: `client-${client}`,
      requestId: version + 1,
      command: 'append',
      args: { stream, events: [event] },
      events: [{ stream, firstVersion: version, events: [{ id: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, ...event }] }],
      firstPosition: index,
      reply: { stream, version, position: index },
      createdAtMs: 1_800_000_000_000 + index,
      now: [],
      random: [],
      readSet: [],
      calls: 0,
      digest: '0',
    };
    const record: ApplicableRecord = { lsn: index + 1, type: recordTypes.commit, payload };
    if (options.records === 'packed') {
      const { forApply } = encodeCommitForApply(payload, undefined);
      if (forApply === undefined) throw new Error('no view of a packed commit record');
      record.commitForApply = () => forApply;
    }
    return record;
  });
}

async function round(options: Options, records: ApplicableRecord[]): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txlog-apply-bench-'));
  const state = State.open(dir, 64 * 1024 ** 3);
  try {
    const apply = (from: number, to: number): void => {
      for (let start = from; start < to; start += options.batch) state.apply(records.slice(start, Math.min(to, start + options.batch)), sessionLimitDefaults);
    };
    apply(0, options.commits);
    const before = process.cpuUsage();
    apply(options.commits, records.length);
    const cpu = process.cpuUsage(before);
    if (state.appliedLsn !== records.length) throw new Error(`applied up to LSN ${state.appliedLsn}, not ${records.length}`);
    return (cpu.user + cpu.system) / options.commits;
  } finally {
    await state.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const options = parseArguments();
  const records = commitsOf(options);
  const cpuUsPerCommit: number[] = [];
  for (let index = 0; index < options.rounds; index++) cpuUsPerCommit.push(await round(options, records));
  const median = medianOf(cpuUsPerCommit);
  const summary = { clients: options.clients, commits: options.commits, batch: options.batch, records: options.records, loadAverage: os.loadavg(), cpuUsPerCommit, medianCpuUsPerCommit: median };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  const rounds = cpuUsPerCommit.map((value) => value.toFixed(2)).join(', ');
  process.stdout.write(`${options.clients} clients, batches of ${options.batch}, records ${options.records}: ${rounds} µs CPU/commit, median ${median.toFixed(2)} (load average ${summary.loadAverage.map((load) => load.toFixed(2)).join(' ')})\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`apply-bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

/**
 * Two builds of txlog compared on a noisy machine: runs alternate between them, the order
 * flipping every pair, and what is reported is the ratio within each pair (new / base), whose
 * median and range say more than two medians taken minutes apart. Not a test: nothing is
 * asserted.
 *
 *   node dist/bench/ab-bench.js --base DIR --new DIR [--mode embedded|pair] [--pairs 8]
 *       [--slice-ms 600] [--warmup-ms N] [--concurrency 256] [--fsync always|interval|never] [--json]
 *
 * DIR is a checkout with its `dist/` built (`git worktree add /tmp/base <commit>`, a
 * `node_modules` there, `npx tsc -p tsconfig.json`).
 * - `embedded`: both builds' stores in this process, each opened as `txlog bench` opens it
 *   (that build's `openEmbedded`), `--concurrency` appenders of the bench's 200-byte event,
 *   `--slice-ms` measured per slice after `--warmup-ms` (default 150), CPU per transaction of
 *   this process from schedstat (`cpu-meter.ts`). The builds share the process (its GC, its
 *   CPU): pass a build its own copy of a package it changes globally (a msgpackr extension).
 * Each slice is the bench's closed loop (`load.ts`) after its warm-up, and one slice of each
 * side runs uncounted first. The same build as both sides (two A/A runs, 8 pairs, embedded)
 * gave 0.93x and 1.03x throughput, 1.08x and 0.94x CPU: differences under about a tenth are
 * within the noise.
 * - `pair`: per slice, a pair started as `txlog bench` starts it from that build (primary
 *   `taskset -c 0`, backup `taskset -c 1` when taskset exists), `--concurrency` transactions in
 *   flight over its connections, `--slice-ms` measured after `--warmup-ms` (default 4000), CPU
 *   per transaction of the primary, the backup and this process (the clients) from schedstat
 *   (`cpu-meter.ts`). The nodes are new processes each slice, and a pair under load takes about
 *   4 s to reach its steady state (V8 compiling the hot code on its worker threads): `--base .
 *   --new . --mode pair --pairs 3 --slice-ms 2500` gave the primary 56-58 µs of CPU per
 *   transaction with `--warmup-ms 800` and 42-45 with 4000 (README, Benchmarks), so a short
 *   warm-up compares two builds' warm-ups as much as their commit paths. Its noise, the same
 *   build as both sides (6 pairs): 0.91x throughput (0.76-1.10).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { processCpuUs } from './cpu-meter.js';
import { runLoad } from './load.js';
import { median } from './stats.js';
import { tasksetAvailable } from './txlog-subjects.js';

type Mode = 'embedded' | 'pair';

interface Options {
  base: string;
  new: string;
  mode: Mode;
  pairs: number;
  sliceMs: number;
  /** Unrecorded load before each slice (ms). */
  warmupMs: number;
  concurrency: number;
  fsync: 'always' | 'interval' | 'never';
  json: boolean;
}

/** One measured slice: throughput and CPU µs per transaction by process. */
interface Slice {
  txPerSec: number;
  cpuUs: Record<string, number>;
}

function integerOption(name: string, value: string | undefined, min: number, max: number): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < min || number > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return number;
}

function buildOption(name: string, value: string | undefined): string {
  if (value === undefined) throw new Error(`--${name} DIR is required: a checkout with dist/ built`);
  const dir = path.resolve(value);
  if (!fs.existsSync(path.join(dir, 'dist', 'engine', 'index.js'))) throw new Error(`--${name} ${dir} has no dist/engine/index.js: build it first`);
  return dir;
}

function parseArguments(): Options {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      new: { type: 'string' },
      mode: { type: 'string', default: 'embedded' },
      pairs: { type: 'string', default: '8' },
      'slice-ms': { type: 'string', default: '600' },
      'warmup-ms': { type: 'string' },
      concurrency: { type: 'string', default: '256' },
      fsync: { type: 'string', default: 'always' },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.mode !== 'embedded' && values.mode !== 'pair') throw new Error('--mode must be embedded or pair');
  if (values.fsync !== 'always' && values.fsync !== 'interval' && values.fsync !== 'never') throw new Error('--fsync must be always, interval or never');
  return {
    base: buildOption('base', values.base),
    new: buildOption('new', values.new),
    mode: values.mode,
    pairs: integerOption('pairs', values.pairs, 1, 100),
    sliceMs: integerOption('slice-ms', values['slice-ms'], 50, 600_000),
    warmupMs: integerOption('warmup-ms', values['warmup-ms'] ?? (values.mode === 'pair' ? '4000' : '150'), 0, 600_000),
    concurrency: integerOption('concurrency', values.concurrency, 1, 4096),
    fsync: values.fsync,
    json: values.json === true,
  };
}

/** A build's module, by its path under the checkout. */
async function moduleOf<T>(build: string, file: string): Promise<T> {
  return (await import(pathToFileURL(path.join(build, 'dist', file)).href)) as T;
}

/** What `bench/txlog-subjects.ts` of a build offers (the same in every build since the bench's first). */
interface Subject {
  transaction(worker: number): Promise<void>;
  close(): Promise<void>;
}

interface SubjectsModule {
  eventOf(bytes: number): unknown;
  openEmbedded(dir: string, fsync: string, event: unknown): Promise<Subject>;
  startReplicated(
    dir: string,
    fsync: string,
    event: unknown,
    placement: { primaryCpus: string | undefined; backupCpus: string | undefined },
  ): Promise<Subject & { primary: { pid: number }; backup: { pid: number } }>;
}

/** The bench's closed loop (`load.ts`): a warm-up, then `sliceMs` measured, CPU read around it. */
async function measure(subject: Subject, options: Options, pids: Record<string, number>): Promise<Slice> {
  let before: Record<string, number> = {};
  const plan = { concurrency: options.concurrency, durationMs: options.sliceMs, count: undefined, warmupMs: options.warmupMs };
  const result = await runLoad(plan, (worker) => subject.transaction(worker), () => (before = cpuOf(pids)));
  const after = cpuOf(pids);
  const cpuUs: Record<string, number> = {};
  for (const name of Object.keys(pids)) cpuUs[name] = result.completed === 0 ? 0 : (after[name]! - before[name]!) / result.completed;
  return { txPerSec: result.completed / result.seconds, cpuUs };
}

function cpuOf(pids: Record<string, number>): Record<string, number> {
  const cpu: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) cpu[name] = processCpuUs(pid) ?? 0;
  return cpu;
}

/** A side of the comparison: measures one slice of its build. */
type Side = () => Promise<Slice>;

async function embeddedSide(build: string, options: Options, dirs: string[]): Promise<{ side: Side; close: () => Promise<void> }> {
  const { openEmbedded, eventOf } = await moduleOf<SubjectsModule>(build, 'bench/txlog-subjects.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txlog-ab-'));
  dirs.push(dir);
  const store = await openEmbedded(dir, options.fsync, eventOf(200));
  return { side: () => measure(store, options, { process: process.pid }), close: () => store.close() };
}

function pairSide(build: string, options: Options, dirs: string[]): Side {
  const placement = tasksetAvailable() && os.cpus().length >= 2 ? { primaryCpus: '0', backupCpus: '1' } : { primaryCpus: undefined, backupCpus: undefined };
  return async () => {
    const { startReplicated, eventOf } = await moduleOf<SubjectsModule>(build, 'bench/txlog-subjects.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txlog-ab-'));
    dirs.push(dir);
    const pair = await startReplicated(dir, options.fsync, eventOf(200), placement);
    try {
      return await measure(pair, options, { primary: pair.primary.pid, backup: pair.backup.pid, clients: process.pid });
    } finally {
      await pair.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}

function ratioSummary(ratios: number[]): string {
  return `${median(ratios).toFixed(3)}x (range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
}

async function main(): Promise<void> {
  const options = parseArguments();
  const dirs: string[] = [];
  const closers: Array<() => Promise<void>> = [];
  try {
    const sides: Record<'base' | 'new', Side> = { base: async () => ({ txPerSec: 0, cpuUs: {} }), new: async () => ({ txPerSec: 0, cpuUs: {} }) };
    for (const name of ['base', 'new'] as const) {
      if (options.mode === 'pair') {
        sides[name] = pairSide(options[name], options, dirs);
      } else {
        const { side, close } = await embeddedSide(options[name], options, dirs);
        sides[name] = side;
        closers.push(close);
      }
    }
    // One slice of each, not counted: the first slice of a process runs cold (its JIT, the
    // stores' first pages) and would count against whichever side came first.
    for (const name of ['base', 'new'] as const) await sides[name]();
    const slices: Record<'base' | 'new', Slice[]> = { base: [], new: [] };
    for (let pair = 0; pair < options.pairs; pair++) {
      // The order flips every pair: a drift of the machine does not favour one side.
      for (const name of pair % 2 === 0 ? (['base', 'new'] as const) : (['new', 'base'] as const)) slices[name].push(await sides[name]());
      if (!options.json) process.stderr.write(`\rpair ${pair + 1}/${options.pairs}`);
    }
    if (!options.json) process.stderr.write('\n');
    const report = summarize(options, slices);
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${report.lines.join('\n')}\n`);
  } finally {
    for (const close of closers) await close();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function summarize(options: Options, slices: Record<'base' | 'new', Slice[]>): { options: Options; slices: typeof slices; lines: string[] } {
  const lines = [`${options.mode}, ${options.fsync}, c=${options.concurrency}, ${options.pairs} pairs of ${options.sliceMs} ms after ${options.warmupMs} ms; load average now ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}`];
  const throughput = slices.new.map((slice, index) => slice.txPerSec / slices.base[index]!.txPerSec);
  lines.push(`tx/s: base median ${Math.round(median(slices.base.map((slice) => slice.txPerSec)))}, new ${Math.round(median(slices.new.map((slice) => slice.txPerSec)))}; paired new/base ${ratioSummary(throughput)}`);
  for (const name of Object.keys(slices.base[0]!.cpuUs)) {
    const ratios = slices.new.map((slice, index) => slice.cpuUs[name]! / slices.base[index]!.cpuUs[name]!);
    const medians = (['base', 'new'] as const).map((side) => median(slices[side].map((slice) => slice.cpuUs[name]!)).toFixed(1));
    lines.push(`CPU µs per transaction, ${name}: base median ${medians[0]}, new ${medians[1]}; paired new/base ${ratioSummary(ratios)}`);
  }
  return { options, slices, lines };
}

main().catch((error: unknown) => {
  process.stderr.write(`ab-bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

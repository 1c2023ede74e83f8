/**
 * `txlog bench`: commit latency of txlog (embedded and replicated, fsync always and interval, at
 * several concurrencies) beside the floors of this machine and the peers a user would pick, all
 * measured in the same run. The measuring lives in `bench/commit-bench.ts`; this file parses the
 * flags, shows progress on stderr (only for a person at a terminal) and prints the report.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { pairTlsModes, type BenchOptions, type PairTls } from '../bench/bench-types.js';
import { runCommitBench } from '../bench/commit-bench.js';
import { formatHtml, formatText } from '../bench/report.js';
import { tasksetAvailable } from '../bench/txlog-subjects.js';
import { checkPositionals, exitCodes, parseCommandArgs, parseIntegerFlag, usageError } from './common.js';
import { progressWanted } from './progress.js';

export const benchHelp = `Usage: txlog bench [--quick] [--duration-ms N | --count N] [--warmup-ms N] [--floor-ms N]
                   [--event-bytes N] [--concurrency 1,8,64,256] [--with-postgres]
                   [--cpus PRIMARY:BACKUP | --no-pin] [--default-gc] [--only FILTER[,FILTER...]]
                   [--profile-primary DIR] [--profile-backup DIR] [--metrics] [--tls off|psk|off,psk] [--dir D]
                   [--json] [--report FILE.html]

Measures commit latency (p50, p99, p999, max, in µs) and throughput of one-event transactions
(the built-in append): txlog embedded (openStore in this process) and replicated (a primary and
a backup as 'txlog serve' child processes, clients here), each with fsync always and interval,
at each concurrency (transactions in flight). Beside them, measured in the same run: floors
(write+fdatasync and write of the same record, a Node-to-Node loopback TCP round trip, the two
overlapped, and the two-hop floor of a replicated commit: client to a forwarder placed like the
primary, on to an echo placed like the backup, fdatasync overlapped) and peers (lmdb put, SQLite WAL synchronous=FULL, and with --with-postgres
PostgreSQL with a synchronous standby). A peer whose package or binaries are missing is skipped
with a note. A load average above the CPU count less 0.5 at the start is warned about on stderr
(and in the notes): the figures of such a run are noisy.

  --quick              short run (under a minute): 500 ms per scenario
  --duration-ms N      measured time per scenario (default 3000)
  --count N            measure N transactions per scenario instead of a duration
  --warmup-ms N        unrecorded warm-up per scenario (default 500; --quick 150)
  --floor-ms N         each floor is measured twice for this long (default 1000; --quick 300)
  --event-bytes N      encoded size of the event (default 200)
  --concurrency LIST   transactions in flight (default 1,8,64,256)
  --with-postgres      include PostgreSQL (needs /usr/lib/postgresql/*/bin; never installed here)
  --cpus P:B           taskset CPU lists for the primary and the backup, and for the
                       forwarder and echo children of the floors (default 0:1 when taskset
                       exists and there are 2 or more CPUs)
  --no-pin             do not pin the pair
  --default-gc         run the pair's nodes with node's own garbage-collector settings (by
                       default they get --max-semi-space-size=8, and --single-threaded-gc
                       when pinned to one CPU, as txlog starts its nodes)
  --only LIST          run only scenarios whose system-mode contains one of these, e.g.
                       txlog-replicated,sqlite (floors always run)
  --profile-primary D  run the replicated primaries with --cpu-prof into directory D
  --profile-backup D   run the replicated backups with --cpu-prof into directory D
  --metrics            with Prometheus metrics on (the embedded stores get a sink, the
                       pair's nodes --metrics-listen): compare with a run without it
  --tls LIST           the replicated pair's links: off (plaintext on loopback, the
                       default) or psk (TLS 1.3 with the key of a secret, as a pair with
                       --secret-file runs), or off,psk to measure both in one run (scenarios
                       'txlog replicated tls-psk ...'); the targets judge the plaintext pair
  --dir D              where data goes (default: the OS temporary directory)
  --json               print one JSON document on stdout
  --report FILE        also write a self-contained HTML page with the table and a chart
  -h, --help           show this help`;

const benchOptions = {
  quick: { type: 'boolean' },
  'duration-ms': { type: 'string' },
  count: { type: 'string' },
  'warmup-ms': { type: 'string' },
  'floor-ms': { type: 'string' },
  'event-bytes': { type: 'string' },
  concurrency: { type: 'string' },
  'with-postgres': { type: 'boolean' },
  cpus: { type: 'string' },
  'no-pin': { type: 'boolean' },
  'default-gc': { type: 'boolean' },
  only: { type: 'string' },
  'profile-primary': { type: 'string' },
  'profile-backup': { type: 'string' },
  metrics: { type: 'boolean' },
  tls: { type: 'string' },
  dir: { type: 'string' },
  json: { type: 'boolean' },
  report: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function pairCpus(cpus: string | undefined, noPin: boolean): { primaryCpus: string | undefined; backupCpus: string | undefined } {
  if (noPin) return { primaryCpus: undefined, backupCpus: undefined };
  if (cpus !== undefined) {
    const match = /^([0-9,-]+):([0-9,-]+)$/.exec(cpus);
    if (match === null) throw usageError('--cpus must be PRIMARY:BACKUP CPU lists, e.g. 0:1', 'bench');
    return { primaryCpus: match[1], backupCpus: match[2] };
  }
  if (os.cpus().length < 2 || !tasksetAvailable()) return { primaryCpus: undefined, backupCpus: undefined };
  return { primaryCpus: '0', backupCpus: '1' };
}

/** `--tls off,psk`: each mode once, in the order given. */
function pairTlsList(value: string | undefined): PairTls[] {
  if (value === undefined) return ['off'];
  const modes = value.split(',').map((text) => text.trim());
  const unknown = modes.find((mode) => !(pairTlsModes as readonly string[]).includes(mode));
  if (unknown !== undefined || modes.length === 0) throw usageError(`--tls takes off, psk or off,psk, got '${value}'`, 'bench');
  if (new Set(modes).size !== modes.length) throw usageError(`--tls names a mode twice: '${value}'`, 'bench');
  return modes as PairTls[];
}

export async function runBench(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('bench', () => parseArgs({ args, options: benchOptions, allowPositionals: true, strict: true }));
  if (values.help === true) {
    process.stdout.write(`${benchHelp}\n`);
    return exitCodes.done;
  }
  checkPositionals('bench', positionals, [], 0);
  const quick = values.quick === true;
  const integer = (flag: 'duration-ms' | 'count' | 'warmup-ms' | 'floor-ms' | 'event-bytes', fallback: number, min: number, max: number): number => {
    const value = values[flag];
    return value === undefined ? fallback : parseIntegerFlag('bench', `--${flag}`, value, min, max);
  };
  if (values['duration-ms'] !== undefined && values.count !== undefined) throw usageError('give --duration-ms or --count, not both', 'bench');
  const concurrencies = (values.concurrency ?? '1,8,64,256').split(',').map((text) => parseIntegerFlag('bench', '--concurrency', text.trim(), 1, 4096));
  if (values.cpus !== undefined && values['no-pin'] === true) throw usageError('give --cpus or --no-pin, not both', 'bench');
  const dir = values.dir ?? os.tmpdir();
  if (!fs.existsSync(dir)) throw usageError(`--dir ${dir} does not exist`, 'bench');
  const profileDir = values['profile-primary'];
  if (profileDir !== undefined) fs.mkdirSync(profileDir, { recursive: true });
  const backupProfileDir = values['profile-backup'];
  if (backupProfileDir !== undefined) fs.mkdirSync(backupProfileDir, { recursive: true });
  const showProgress = progressWanted();
  const options: BenchOptions = {
    dir,
    eventBytes: integer('event-bytes', 200, 64, 64 * 1024),
    durationMs: integer('duration-ms', quick ? 500 : 3000, 10, 3_600_000),
    count: values.count === undefined ? undefined : integer('count', 1, 1, 100_000_000),
    warmupMs: integer('warmup-ms', quick ? 150 : 500, 0, 600_000),
    floorMs: integer('floor-ms', quick ? 300 : 1000, 10, 600_000),
    concurrencies,
    withPostgres: values['with-postgres'] === true,
    ...pairCpus(values.cpus, values['no-pin'] === true),
    defaultGc: values['default-gc'] === true,
    primaryNodeArgs: profileDir === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    backupNodeArgs: backupProfileDir === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${backupProfileDir}`],
    metrics: values.metrics === true,
    pairTls: pairTlsList(values.tls),
    only: values.only?.split(',').map((text) => text.trim()).filter((text) => text !== ''),
    // Said at the start, not only in the report's notes: a person can stop and retry later.
    onWarning: (warning) => process.stderr.write(`${warning}\n`),
    onStep: (label, index, total) => {
      if (showProgress) process.stderr.write(`\r\x1b[K[${index + 1}/${total}] ${label}`);
    },
  };
  let report;
  try {
    report = await runCommitBench(options);
  } finally {
    if (showProgress) process.stderr.write('\r\x1b[K');
  }
  if (values.report !== undefined) fs.writeFileSync(values.report, formatHtml(report));
  process.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatText(report));
  return exitCodes.done;
}

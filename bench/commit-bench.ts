/**
 * `txlog bench`: commit latency of txlog, embedded and replicated, under `fsync: 'always'` and
 * `'interval'` at several concurrencies, side by side with the floors of this machine (disk and
 * loopback network, measured in the same run) and with the peers a user would pick (lmdb,
 * SQLite, optionally PostgreSQL with a synchronous standby).
 *
 * Every scenario is a closed loop (bench/load.ts): `concurrency` transactions in flight, a
 * warm-up that is not recorded, then a fixed duration or count. The floors are measured twice,
 * before and after the scenarios, and pooled, so a drift of the shared disk over the run shows
 * in both. The CLI (`cli/bench.ts`) parses flags, draws progress and prints; this module only
 * measures and returns a report.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { frameHeaderBytes, type FsyncPolicy } from '../wal/index.js';
import { measureFloor } from './floors.js';
import { runLoad, type LoadPlan, type Transaction } from './load.js';
import { measureOverlapped, measureRoundTrips, startEchoPeer, echoFrameBytes, type EchoPeer } from './network-floors.js';
import { openLmdbPeer, openSqlitePeer, type PeerSubject } from './peers.js';
import { findPostgresBin, startPostgresPair } from './postgres.js';
import { LatencySamples } from './stats.js';
import { commitRecordBytes, eventOf, openEmbedded, startReplicated, clientConnectionsMax, type BenchEvent } from './txlog-subjects.js';
import { encodePayload } from '../wal/index.js';

export type BenchSystem = 'txlog' | 'lmdb' | 'sqlite' | 'postgres' | 'floor';
export type BenchMode = 'embedded' | 'replicated';
export type FloorName = 'write+fdatasync' | 'write' | 'tcp-rtt' | 'tcp-rtt+fdatasync';

export interface ScenarioResult {
  name: string;
  system: BenchSystem;
  mode: BenchMode;
  /** txlog's policy; for a peer or floor, the nearest one to what it promises (see `notes`). */
  fsync: string;
  concurrency: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  throughputPerSec: number;
  samples: number;
  /**
   * CPU time (user + system) per transaction, in µs, of this bench process (clients, or the
   * whole embedded system) and, for txlog replicated, of the primary and backup processes:
   * where the time goes when the latency is far above the floor.
   */
  cpuUsPerTransaction: { bench: number | null; primary: number | null; backup: number | null };
  /** The floor this scenario is read against, and its p50 over that floor's p50. */
  floor: FloorName | null;
  p50VsFloor: number | null;
}

export interface FloorSummary {
  name: FloorName;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  throughputPerSec: number;
  samples: number;
  what: string;
}

export interface TargetVerdict {
  target: string;
  value: number;
  limit: number;
  met: boolean;
  detail: string;
}

export interface BenchReport {
  machine: {
    date: string;
    hostname: string;
    platform: string;
    cpuModel: string;
    cpus: number;
    memoryBytes: number;
    node: string;
    loadAverageStart: number[];
    loadAverageEnd: number[];
    dir: string;
    placement: string;
  };
  settings: {
    eventBytes: number;
    commitRecordBytes: number;
    echoFrameBytes: number;
    durationMs: number;
    count: number | null;
    warmupMs: number;
    floorMs: number;
    concurrencies: number[];
  };
  scenarios: ScenarioResult[];
  floors: FloorSummary[];
  targets: TargetVerdict[];
  notes: string[];
}

export interface BenchOptions {
  dir: string;
  eventBytes: number;
  durationMs: number;
  count: number | undefined;
  warmupMs: number;
  /** Each floor is measured twice for this long (before and after the scenarios). */
  floorMs: number;
  concurrencies: number[];
  withPostgres: boolean;
  /** `taskset -c` lists, or undefined: the pair's primary and backup (the echo child goes with the backup). */
  primaryCpus: string | undefined;
  backupCpus: string | undefined;
  /** Node arguments for the replicated primary, e.g. `--cpu-prof --cpu-prof-dir=D`. */
  primaryNodeArgs: string[] | undefined;
  /** txlog with Prometheus metrics on (a sink for the embedded store, `--metrics-listen` for the pair). */
  metrics: boolean;
  /** Substrings of `system-mode` (e.g. `txlog-replicated`, `lmdb`): run only matching scenarios. */
  only: string[] | undefined;
  /** Called before each step with a short description and the step's index and total. */
  onStep: (label: string, index: number, total: number) => void;
}

const fsyncPolicies: readonly FsyncPolicy[] = ['always', 'interval'];
const floorFileBytes = 64 * 1024 * 1024;

const floorDescriptions: Record<FloorName, string> = {
  'write+fdatasync': 'pwrite of one commit record then fdatasync, in a preallocated file (bench/floors.ts)',
  write: 'pwrite of one commit record, no fdatasync (bench/floors.ts)',
  'tcp-rtt': `Node-to-Node loopback TCP round trip to a child echo process, ${echoFrameBytes}-byte frames, one at a time`,
  'tcp-rtt+fdatasync': 'send to the echo child, write+fdatasync one commit record locally, await the echo',
};

interface Step {
  label: string;
  run(): Promise<void>;
}

export async function runCommitBench(options: BenchOptions): Promise<BenchReport> {
  const loadAverageStart = os.loadavg();
  const root = fs.mkdtempSync(path.join(options.dir, 'txlog-bench-'));
  const event = eventOf(options.eventBytes);
  const recordBytes = commitRecordBytes(event, frameHeaderBytes);
  const scenarios: ScenarioResult[] = [];
  const notes: string[] = [];
  const floorSamples = new Map<FloorName, LatencySamples>(
    (['write+fdatasync', 'write', 'tcp-rtt', 'tcp-rtt+fdatasync'] as const).map((name) => [name, new LatencySamples()]),
  );
  const wanted = (system: BenchSystem, mode: BenchMode): boolean =>
    options.only === undefined || options.only.some((filter) => `${system}-${mode}`.includes(filter));
  const plan = (concurrency: number): LoadPlan => ({ concurrency, durationMs: options.durationMs, count: options.count, warmupMs: options.warmupMs });
  const measure = async (base: ScenarioBase, transaction: Transaction, pids?: { primary: number; backup: number }): Promise<void> => {
    let meter: CpuMeter | undefined;
    const result = await runLoad(plan(base.concurrency), transaction, () => {
      meter = startCpuMeter(pids);
    });
    const cpu = meter!.stop();
    const summary = result.samples.summarize();
    const perTransaction = (microseconds: number | null): number | null => (microseconds === null || result.completed === 0 ? null : microseconds / result.completed);
    scenarios.push({
      ...base,
      p50Us: summary.p50Us,
      p99Us: summary.p99Us,
      p999Us: summary.p999Us,
      maxUs: summary.maxUs,
      throughputPerSec: result.completed / result.seconds,
      samples: summary.samples,
      cpuUsPerTransaction: { bench: perTransaction(cpu.bench), primary: perTransaction(cpu.primary), backup: perTransaction(cpu.backup) },
      p50VsFloor: null,
    });
  };

  let echo: EchoPeer | undefined;
  const steps: Step[] = [];
  const floorSteps = (half: string): Step[] => [
    {
      label: `floors (${half}): write+fdatasync, write`,
      run: async () => {
        const floorOptions = { dir: root, recordBytes, durationMs: options.floorMs, fileBytes: floorFileBytes };
        measureFloor({ ...floorOptions, batchRecords: 1, sync: true, samples: floorSamples.get('write+fdatasync')! });
        measureFloor({ ...floorOptions, batchRecords: 1, sync: false, samples: floorSamples.get('write')! });
      },
    },
    {
      label: `floors (${half}): loopback round trip, and overlapped with fdatasync`,
      run: async () => {
        echo ??= await startEchoPeer(options.backupCpus);
        await measureRoundTrips(echo, Math.min(200, options.floorMs), new LatencySamples()); // warm-up
        await measureRoundTrips(echo, options.floorMs, floorSamples.get('tcp-rtt')!);
        await measureOverlapped(echo, { dir: root, recordBytes, fileBytes: floorFileBytes, durationMs: options.floorMs }, floorSamples.get('tcp-rtt+fdatasync')!);
      },
    },
  ];

  steps.push(...floorSteps('first half'));
  for (const fsync of fsyncPolicies) {
    if (!wanted('txlog', 'embedded')) continue;
    for (const concurrency of options.concurrencies) {
      steps.push({
        label: `txlog embedded, fsync ${fsync}, ${concurrency} in flight`,
        run: async () => {
          const subject = await openEmbedded(path.join(root, `embedded-${fsync}-${concurrency}`), fsync, event, options.metrics);
          try {
            await measure(txlogBase('embedded', fsync, concurrency), subject.transaction);
          } finally {
            await subject.close();
          }
        },
      });
    }
  }
  for (const fsync of fsyncPolicies) {
    if (!wanted('txlog', 'replicated')) continue;
    let pair: Awaited<ReturnType<typeof startReplicated>> | undefined;
    options.concurrencies.forEach((concurrency, index) => {
      steps.push({
        label: `txlog replicated, fsync ${fsync}, ${concurrency} in flight`,
        run: async () => {
          pair ??= await startReplicated(path.join(root, `pair-${fsync}`), fsync, event, { primaryCpus: options.primaryCpus, backupCpus: options.backupCpus }, options.primaryNodeArgs, options.metrics);
          try {
            await measure(txlogBase('replicated', fsync, concurrency), pair.transaction, { primary: pair.primary.pid, backup: pair.backup.pid });
          } finally {
            if (index === options.concurrencies.length - 1) {
              await pair.close();
              fs.rmSync(path.join(root, `pair-${fsync}`), { recursive: true, force: true });
            }
          }
        },
      });
    });
  }
  if (wanted('lmdb', 'embedded')) {
    for (const concurrency of options.concurrencies) {
      steps.push({
        label: `lmdb put, ${concurrency} in flight`,
        run: () => runPeer(notes, 'lmdb', () => openLmdbPeer(fs.mkdtempSync(path.join(root, 'lmdb-')), event), async (peer) => {
          await measure({ name: `lmdb put c=${concurrency}`, system: 'lmdb', mode: 'embedded', fsync: 'overlapped', concurrency, floor: 'write+fdatasync' }, peer.transaction);
        }),
      });
    }
  }
  if (wanted('sqlite', 'embedded')) {
    steps.push({
      label: 'SQLite WAL synchronous=FULL, 1 in flight (its API is synchronous)',
      run: () => runPeer(notes, 'sqlite', () => openSqlitePeer(fs.mkdtempSync(path.join(root, 'sqlite-')), event), async (peer) => {
        await measure({ name: 'sqlite FULL c=1', system: 'sqlite', mode: 'embedded', fsync: 'always', concurrency: 1, floor: 'write+fdatasync' }, peer.transaction);
      }),
    });
  }
  if (wanted('postgres', 'replicated')) addPostgresSteps(steps, options, root, event, notes, measure);
  steps.push(...floorSteps('second half'));

  try {
    for (const [index, step] of steps.entries()) {
      options.onStep(step.label, index, steps.length);
      await step.run();
    }
  } finally {
    await echo?.close();
    fs.rmSync(root, { recursive: true, force: true });
  }

  const floors: FloorSummary[] = [...floorSamples.entries()].map(([name, samples]) => {
    const summary = samples.summarize();
    return { name, p50Us: summary.p50Us, p99Us: summary.p99Us, p999Us: summary.p999Us, maxUs: summary.maxUs, throughputPerSec: 1e6 / summary.meanUs, samples: summary.samples, what: floorDescriptions[name] };
  });
  for (const scenario of scenarios) {
    const floor = floors.find((candidate) => candidate.name === scenario.floor);
    if (floor !== undefined) scenario.p50VsFloor = scenario.p50Us / floor.p50Us;
  }
  const floorScenarios: ScenarioResult[] = floors.map((floor) => ({
    name: `floor ${floor.name}`,
    system: 'floor',
    mode: floor.name.startsWith('tcp') ? 'replicated' : 'embedded',
    fsync: floor.name.endsWith('fdatasync') ? 'always' : 'never',
    concurrency: 1,
    p50Us: floor.p50Us,
    p99Us: floor.p99Us,
    p999Us: floor.p999Us,
    maxUs: floor.maxUs,
    throughputPerSec: floor.throughputPerSec,
    samples: floor.samples,
    cpuUsPerTransaction: { bench: null, primary: null, backup: null },
    floor: floor.name,
    p50VsFloor: 1,
  }));
  notes.unshift(...peerNotes());
  return {
    machine: {
      date: new Date().toISOString(),
      hostname: os.hostname(),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      memoryBytes: os.totalmem(),
      node: process.version,
      loadAverageStart,
      loadAverageEnd: os.loadavg(),
      dir: options.dir,
      placement: placementOf(options),
    },
    settings: {
      eventBytes: encodePayload(event).length,
      commitRecordBytes: recordBytes,
      echoFrameBytes,
      durationMs: options.durationMs,
      count: options.count ?? null,
      warmupMs: options.warmupMs,
      floorMs: options.floorMs,
      concurrencies: options.concurrencies,
    },
    scenarios: [...scenarios, ...floorScenarios],
    floors,
    targets: verdicts(scenarios, floors),
    notes,
  };
}

type ScenarioBase = Omit<ScenarioResult, 'p50Us' | 'p99Us' | 'p999Us' | 'maxUs' | 'throughputPerSec' | 'samples' | 'p50VsFloor' | 'cpuUsPerTransaction'>;

interface CpuMeter {
  stop(): { bench: number; primary: number | null; backup: number | null };
}

/** CPU time of a process from /proc (Linux), in µs; null where it cannot be read. */
export function processCpuUs(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, fields 14 and 15 of stat, in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

function startCpuMeter(pids: { primary: number; backup: number } | undefined): CpuMeter {
  const bench = process.cpuUsage();
  const primary = pids === undefined ? null : processCpuUs(pids.primary);
  const backup = pids === undefined ? null : processCpuUs(pids.backup);
  const since = (start: number | null, pid: number | undefined): number | null => {
    if (start === null || pid === undefined) return null;
    const now = processCpuUs(pid);
    return now === null ? null : now - start;
  };
  return {
    stop: () => {
      const used = process.cpuUsage(bench);
      return { bench: used.user + used.system, primary: since(primary, pids?.primary), backup: since(backup, pids?.backup) };
    },
  };
}

function txlogBase(mode: BenchMode, fsync: FsyncPolicy, concurrency: number): ScenarioBase {
  const floor: FloorName = mode === 'embedded' ? (fsync === 'always' ? 'write+fdatasync' : 'write') : fsync === 'always' ? 'tcp-rtt+fdatasync' : 'tcp-rtt';
  return { name: `txlog ${mode} ${fsync} c=${concurrency}`, system: 'txlog', mode, fsync, concurrency, floor };
}

/** Opens a peer, runs `body`, closes it; a peer that cannot be loaded is skipped with a note. */
async function runPeer(notes: string[], name: string, open: () => Promise<PeerSubject>, body: (peer: PeerSubject) => Promise<void>): Promise<void> {
  let peer: PeerSubject;
  try {
    peer = await open();
  } catch (error) {
    const note = `${name} skipped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
    if (!notes.includes(note)) notes.push(note);
    return;
  }
  try {
    await body(peer);
  } finally {
    await peer.close();
  }
}

function addPostgresSteps(
  steps: Step[],
  options: BenchOptions,
  root: string,
  event: BenchEvent,
  notes: string[],
  measure: (base: ScenarioBase, transaction: Transaction) => Promise<void>,
): void {
  if (!options.withPostgres) {
    notes.push('postgres skipped: run with --with-postgres to include PostgreSQL with a synchronous standby');
    return;
  }
  const bin = findPostgresBin();
  if (bin === undefined) {
    notes.push('postgres skipped: no server binaries under /usr/lib/postgresql/*/bin (the bench does not install them)');
    return;
  }
  let pair: Awaited<ReturnType<typeof startPostgresPair>> | undefined;
  let failed = false;
  options.concurrencies.forEach((concurrency, index) => {
    steps.push({
      label: `PostgreSQL with a synchronous standby, ${concurrency} connections`,
      run: async () => {
        if (failed) return;
        try {
          if (pair === undefined) {
            pair = await startPostgresPair(root, bin, Math.max(...options.concurrencies));
            notes.push(`postgres: ${pair.version}, primary and synchronous standby on loopback (${bin}), one connection per transaction in flight`);
          }
          await runPeer(notes, 'postgres', () => pair!.open(concurrency, event), async (peer) => {
            await measure({ name: `postgres sync-standby c=${concurrency}`, system: 'postgres', mode: 'replicated', fsync: 'always', concurrency, floor: 'tcp-rtt+fdatasync' }, peer.transaction);
          });
        } catch (error) {
          failed = true;
          notes.push(`postgres skipped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
        } finally {
          if (pair !== undefined && (failed || index === options.concurrencies.length - 1)) {
            await pair.close();
            pair = undefined;
          }
        }
      },
    });
  });
}

function peerNotes(): string[] {
  return [
    "lmdb: default options; on Linux lmdb-js opens with overlappingSync, so an awaited put resolves when the transaction is committed (visible), and the fdatasync that makes it durable follows, overlapped with later transactions (db.flushed). Its latency has no fdatasync in it; fsync is shown as 'overlapped'.",
    'sqlite: better-sqlite3, journal_mode=WAL, synchronous=FULL (WAL fsynced at every commit), one INSERT per transaction; its API is synchronous, so only concurrency 1 is meaningful.',
    "txlog replicated: a commit is released when it is in the primary's WAL (fdatasync'd under always) and acknowledged by the backup's mirror; interval: written, fdatasync within 10 ms.",
  ];
}

function placementOf(options: BenchOptions): string {
  const pinned = (cpus: string | undefined): string => (cpus === undefined ? 'unpinned' : `taskset -c ${cpus}`);
  return `bench process and its clients: unpinned (pid ${process.pid}); replicated primary: ${pinned(options.primaryCpus)}; backup and the echo child of the network floors: ${pinned(options.backupCpus)}; ${clientConnectionsMax} client connections to the primary, transactions in flight spread over them`;
}

function verdicts(scenarios: readonly ScenarioResult[], floors: readonly FloorSummary[]): TargetVerdict[] {
  const find = (mode: BenchMode, fsync: string, concurrency: number): ScenarioResult | undefined =>
    scenarios.find((scenario) => scenario.system === 'txlog' && scenario.mode === mode && scenario.fsync === fsync && scenario.concurrency === concurrency);
  const floor = (name: FloorName): FloorSummary | undefined => floors.find((candidate) => candidate.name === name);
  const result: TargetVerdict[] = [];
  const ratioTarget = (fsync: string, floorName: FloorName, limit: number): void => {
    const scenario = find('replicated', fsync, 1);
    const base = floor(floorName);
    if (scenario === undefined || base === undefined || base.samples === 0) return;
    const value = scenario.p50Us / base.p50Us;
    result.push({
      target: `replicated ${fsync} c=1 p50 <= ${limit}x ${floorName} p50`,
      value,
      limit,
      met: value <= limit,
      detail: `${scenario.p50Us.toFixed(1)} µs vs ${base.p50Us.toFixed(1)} µs`,
    });
  };
  ratioTarget('always', 'tcp-rtt+fdatasync', 1.3);
  ratioTarget('interval', 'tcp-rtt', 1.5);
  const sqlite = scenarios.find((scenario) => scenario.system === 'sqlite');
  for (const fsync of fsyncPolicies) {
    const scenario = find('replicated', fsync, 256);
    if (scenario === undefined) continue;
    result.push({
      target: `replicated ${fsync} c=256 >= 50000 tx/s`,
      value: scenario.throughputPerSec,
      limit: 50_000,
      met: scenario.throughputPerSec >= 50_000,
      detail: `${Math.round(scenario.throughputPerSec)} tx/s`,
    });
    if (sqlite !== undefined) {
      result.push({
        target: `replicated ${fsync} c=256 > SQLite FULL tx/s`,
        value: scenario.throughputPerSec / sqlite.throughputPerSec,
        limit: 1,
        met: scenario.throughputPerSec > sqlite.throughputPerSec,
        detail: `${Math.round(scenario.throughputPerSec)} vs ${Math.round(sqlite.throughputPerSec)} tx/s`,
      });
    }
  }
  return result;
}

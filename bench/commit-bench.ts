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
import { encodePayload, frameHeaderBytes, type FsyncPolicy } from '../wal/index.js';
import {
  fsyncPolicies,
  type BenchMode,
  type BenchOptions,
  type BenchReport,
  type BenchSystem,
  type FloorName,
  type Measure,
  type PairTls,
  type ScenarioBase,
  type ScenarioResult,
  type Step,
} from './bench-types.js';
import { cpuMethod, startCpuMeter, type CpuMeter } from './cpu-meter.js';
import { spawnedGcArgs } from '../replication/spawn-node.js';
import { placementNote, startDiskInterruptCount } from './disk-interrupts.js';
import { FloorRun, floorScenario } from './floor-steps.js';
import { runLoad, type LoadPlan } from './load.js';
import { loadWarning } from './machine-load.js';
import { echoFrameBytes } from './network-floors.js';
import { addLocalPeerSteps, addPostgresSteps, peerNotes } from './peer-steps.js';
import { verdicts } from './targets.js';
import { commitRecordBytes, eventOf, openEmbedded, startReplicated, clientConnectionsMax, type BenchEvent, type ReplicatedSubject } from './txlog-subjects.js';

export async function runCommitBench(options: BenchOptions): Promise<BenchReport> {
  const loadAverageStart = os.loadavg();
  const loadWarningText = loadWarning(loadAverageStart, os.cpus().length);
  if (loadWarningText !== undefined) options.onWarning(loadWarningText);
  const root = fs.mkdtempSync(path.join(options.dir, 'txlog-bench-'));
  const diskInterruptCount = startDiskInterruptCount(root);
  const event = eventOf(options.eventBytes);
  const recordBytes = commitRecordBytes(event, frameHeaderBytes);
  const scenarios: ScenarioResult[] = [];
  const notes: string[] = [];
  const floorRun = new FloorRun({ root, recordBytes, floorMs: options.floorMs, echoCpus: options.backupCpus, forwarderCpus: options.primaryCpus });
  const wanted = (system: BenchSystem, mode: BenchMode): boolean =>
    options.only === undefined || options.only.some((filter) => `${system}-${mode}`.includes(filter));
  const plan = (concurrency: number): LoadPlan => ({ concurrency, durationMs: options.durationMs, count: options.count, warmupMs: options.warmupMs });
  const measure: Measure = async (base, transaction, pids) => {
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

  const steps: Step[] = [];
  steps.push(...floorRun.steps('first half'));
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
    for (const tls of options.pairTls) addReplicatedSteps(steps, options, { root, event, fsync, tls, measure });
  }
  const peerRun = { root, event, notes, measure, wanted };
  addLocalPeerSteps(steps, options.concurrencies, peerRun);
  if (wanted('postgres', 'replicated')) addPostgresSteps(steps, options, peerRun);
  steps.push(...floorRun.steps('second half'));

  try {
    for (const [index, step] of steps.entries()) {
      options.onStep(step.label, index, steps.length);
      await step.run();
    }
  } finally {
    await floorRun.close();
    fs.rmSync(root, { recursive: true, force: true });
  }

  const floors = floorRun.summaries();
  for (const scenario of scenarios) {
    const floor = floors.find((candidate) => candidate.name === scenario.floor);
    if (floor !== undefined) scenario.p50VsFloor = scenario.p50Us / floor.p50Us;
  }
  notes.unshift(...peerNotes());
  const diskInterrupts = diskInterruptCount.stop();
  const misplaced = diskInterrupts === undefined ? undefined : placementNote(diskInterrupts, 'The replicated primary (and the two-hop floor\'s forwarder)', options.primaryCpus);
  if (misplaced !== undefined) notes.push(misplaced);
  if (loadWarningText !== undefined) notes.unshift(loadWarningText);
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
      diskInterrupts: diskInterrupts ?? null,
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
      cpuMethod,
      pairGcNodeArgs: { primary: pairGcArgs(options, options.primaryCpus, options.primaryNodeArgs), backup: pairGcArgs(options, options.backupCpus, options.backupNodeArgs) },
    },
    scenarios: [...scenarios, ...floors.map(floorScenario)],
    floors,
    targets: verdicts(scenarios, floors),
    notes,
  };
}

/** One pair per fsync policy and TLS mode, started at its first concurrency and closed after its last. */
function addReplicatedSteps(steps: Step[], options: BenchOptions, run: { root: string; event: BenchEvent; fsync: FsyncPolicy; tls: PairTls; measure: Measure }): void {
  const dir = path.join(run.root, `pair-${run.fsync}-tls-${run.tls}`);
  let pair: ReplicatedSubject | undefined;
  options.concurrencies.forEach((concurrency, index) => {
    steps.push({
      label: `txlog replicated, fsync ${run.fsync}, TLS ${run.tls}, ${concurrency} in flight`,
      run: async () => {
        pair ??= await startReplicated(dir, run.fsync, run.event, { primaryCpus: options.primaryCpus, backupCpus: options.backupCpus }, { primaryNodeArgs: options.primaryNodeArgs, backupNodeArgs: options.backupNodeArgs, metrics: options.metrics, tls: run.tls, defaultGc: options.defaultGc });
        try {
          await run.measure({ ...txlogBase('replicated', run.fsync, concurrency, run.tls), tls: run.tls }, pair.transaction, { primary: pair.primary.pid, backup: pair.backup.pid });
        } finally {
          if (index === options.concurrencies.length - 1) {
            await pair.close();
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      },
    });
  });
}

/** A scenario's name says TLS only when it is on, so plaintext names stay what they were. */
function txlogBase(mode: BenchMode, fsync: FsyncPolicy, concurrency: number, tls: PairTls = 'off'): ScenarioBase {
  const floor: FloorName = mode === 'embedded' ? (fsync === 'always' ? 'write+fdatasync' : 'write') : fsync === 'always' ? 'two-hop+fdatasync' : 'tcp-rtt';
  const tlsName = tls === 'off' ? '' : ` tls-${tls}`;
  return { name: `txlog ${mode}${tlsName} ${fsync} c=${concurrency}`, system: 'txlog', mode, fsync, concurrency, floor };
}

function placementOf(options: BenchOptions): string {
  const pinned = (cpus: string | undefined): string => (cpus === undefined ? 'unpinned' : `taskset -c ${cpus}`);
  const node = (cpus: string | undefined, given: string[] | undefined): string => {
    const args = pairGcArgs(options, cpus, given);
    return args.length === 0 ? ' (node\'s default GC)' : ` (node ${args.join(' ')})`;
  };
  return `bench process and its clients: unpinned (pid ${process.pid}); replicated primary${node(options.primaryCpus, options.primaryNodeArgs)} and the forwarder child of the two-hop floor: ${pinned(options.primaryCpus)}; backup${node(options.backupCpus, options.backupNodeArgs)} and the echo child of the network floors: ${pinned(options.backupCpus)}; ${clientConnectionsMax} client connections to the primary, transactions in flight spread over them`;
}

/** The garbage-collector arguments spawnNode gives a pair node placed on `cpus`. */
function pairGcArgs(options: BenchOptions, cpus: string | undefined, given: string[] | undefined): string[] {
  return spawnedGcArgs({ defaultGc: options.defaultGc, ...(cpus === undefined ? {} : { cpus }), ...(given === undefined ? {} : { nodeArgs: given }) });
}

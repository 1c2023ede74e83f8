/**
 * The shapes of `txlog bench`: the options a run takes, the report it returns (scenarios beside
 * their floors, the floors, the targets met or not, notes), and the steps a run is made of. The
 * measuring is in `commit-bench.ts`, the showing in `report.ts`.
 */
import type { FsyncPolicy } from '../wal/index.js';
import type { CpuMethod } from './cpu-meter.js';
import type { DiskInterruptCounts } from './disk-interrupts.js';
import type { Transaction } from './load.js';

/** The fsync policies txlog is measured under. */
export const fsyncPolicies: readonly FsyncPolicy[] = ['always', 'interval'];

/** How the replicated pair's links are protected: plaintext on loopback, or TLS 1.3 with the secret's key. */
export type PairTls = 'off' | 'psk';
export const pairTlsModes: readonly PairTls[] = ['off', 'psk'];

export type BenchSystem = 'txlog' | 'lmdb' | 'sqlite' | 'postgres' | 'floor';
export type BenchMode = 'embedded' | 'replicated';
export type FloorName = 'write+fdatasync' | 'write' | 'tcp-rtt' | 'tcp-rtt+fdatasync' | 'two-hop+fdatasync';

/** Latency percentiles (µs) and throughput of one scenario or floor. */
export interface LatencyFigures {
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  throughputPerSec: number;
  samples: number;
}

export interface ScenarioResult extends LatencyFigures {
  name: string;
  system: BenchSystem;
  mode: BenchMode;
  /** txlog's policy; for a peer or floor, the nearest one to what it promises (see `notes`). */
  fsync: string;
  concurrency: number;
  /**
   * CPU time per transaction, in µs, of this bench process (clients, or the whole embedded
   * system) and, for txlog replicated, of the primary and backup processes, summed over their
   * threads and read as `settings.cpuMethod` says: where the time goes when the latency is far
   * above the floor.
   */
  cpuUsPerTransaction: { bench: number | null; primary: number | null; backup: number | null };
  /** The floor this scenario is read against, and its p50 over that floor's p50. */
  floor: FloorName | null;
  /** txlog replicated only: plaintext links, or TLS 1.3 with the secret's key on every link. */
  tls?: PairTls;
  p50VsFloor: number | null;
}

export interface FloorSummary extends LatencyFigures {
  name: FloorName;
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
    /** Interrupts of the disk under `dir` per CPU during the run (bench/disk-interrupts.ts); null when unknown. */
    diskInterrupts: DiskInterruptCounts | null;
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
    /** How `cpuUsPerTransaction` was read (bench/cpu-meter.ts): `schedstat` is exact. */
    cpuMethod: CpuMethod;
    /** The garbage-collector arguments the pair's nodes ran with (spawnNode's `gcNodeArgs`; none with `--default-gc`). */
    pairGcNodeArgs: { primary: string[]; backup: string[] };
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
  /**
   * `taskset -c` lists, or undefined: the pair's primary and backup (the echo child of the
   * floors goes with the backup, the forwarder of the two-hop floor with the primary).
   */
  primaryCpus: string | undefined;
  backupCpus: string | undefined;
  /**
   * The pair's nodes run with node's own garbage-collector settings (`--default-gc`), not the
   * ones txlog starts its nodes with (spawnNode's `gcNodeArgs`).
   */
  defaultGc: boolean;
  /** Node arguments for the replicated primary, e.g. `--cpu-prof --cpu-prof-dir=D`. */
  primaryNodeArgs: string[] | undefined;
  /** Node arguments for the replicated backup, likewise. */
  backupNodeArgs: string[] | undefined;
  /** txlog with Prometheus metrics on (a sink for the embedded store, `--metrics-listen` for the pair). */
  metrics: boolean;
  /** The replicated pair is measured once per mode listed, in this order (`--tls off,psk`). */
  pairTls: readonly PairTls[];
  /** Substrings of `system-mode` (e.g. `txlog-replicated`, `lmdb`): run only matching scenarios. */
  only: string[] | undefined;
  /** Called at the start with a warning about the machine (a load average that makes the run noisy). */
  onWarning: (warning: string) => void;
  /** Called before each step with a short description and the step's index and total. */
  onStep: (label: string, index: number, total: number) => void;
}

/** A scenario as planned, before it is measured. */
export type ScenarioBase = Omit<ScenarioResult, keyof LatencyFigures | 'p50VsFloor' | 'cpuUsPerTransaction'>;

/** Measures one scenario and adds its result to the report; `pids` are the pair's processes, for their CPU time. */
export type Measure = (base: ScenarioBase, transaction: Transaction, pids?: { primary: number; backup: number }) => Promise<void>;

/** One thing a run does, shown in its progress line. */
export interface Step {
  label: string;
  run(): Promise<void>;
}

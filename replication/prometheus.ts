/**
 * The Prometheus metrics sink: implements the store's hook points (`engine/metrics.ts`) with
 * prom-client, an optional dependency loaded here with a dynamic `import()` only when metrics are
 * asked for, so an embedded store without metrics never loads it.
 *
 * What is counted as it happens (hook points, only when this sink is given): commit latency by
 * phase, transactions and their errors, WAL batches, fdatasyncs, applies, errors answered,
 * failovers. What is a state of the node is read when Prometheus scrapes (`observeNode`): role,
 * epoch, sync, lag, links, sessions, determinism violations; so it costs nothing between scrapes.
 *
 * Commit phases (`txlog_commit_phase_seconds{phase}`), each observed once per batch:
 *   wal_write   one group-commit `writev`
 *   fdatasync   one fdatasync of the WAL (also `txlog_wal_fdatasync_seconds`)
 *   backup_ack  from a batch handed to replication to the backup's acknowledgement releasing it
 *   apply       one LMDB transaction applying released records
 * A slow disk shows in wal_write and fdatasync, a slow link or backup in backup_ack.
 */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { txlogError, type ErrorCode } from '../wal/errors.js';
import { nodePlatform, type Clock } from '../wal/platform.js';
import type { StoreMetrics } from '../engine/metrics.js';
import { recordTypes, type CommitPayload } from '../engine/records.js';
import type { ApplicableRecord } from '../engine/state.js';
import type { ResourceUse } from '../engine/resources.js';
import type { NodeStatus } from './node.js';

export interface PrometheusMetricsOptions {
  /** Also collect prom-client's process and Node.js metrics (CPU, memory, event loop lag). @default true */
  processMetrics?: boolean;
  /** The registry to register in. @default a new one */
  registry?: Registry;
  /** @default nodePlatform.clock */
  clock?: Clock;
}

export interface PrometheusMetrics extends StoreMetrics {
  /** The prom-client registry: expose `await registry.metrics()` from your own HTTP server. */
  readonly registry: Registry;
  /** Reads a node's status at each scrape for the node's gauges. */
  observeNode(status: () => NodeStatus): void;
}

/** Batches sent to the backup and not yet acknowledged that we keep times for, at most. */
const unacknowledgedBatchesMax = 65_536;
const latencyBucketsSeconds = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const batchRecordBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const roles = ['primary', 'backup', 'waiting'] as const;

type PromClient = typeof import('prom-client');

/**
 * Loads prom-client and makes the sink. Fails with NOT_FOUND when prom-client is not installed
 * (it is an optional dependency: `npm install prom-client@15`).
 */
export async function createPrometheusMetrics(options: PrometheusMetricsOptions = {}): Promise<PrometheusMetrics> {
  let prom: PromClient;
  try {
    prom = await import('prom-client');
  } catch (error) {
    throw txlogError('NOT_FOUND', 'metrics need the optional dependency prom-client (npm install prom-client@15)', {}, error);
  }
  return new PrometheusSink(prom, options);
}

class PrometheusSink implements PrometheusMetrics {
  readonly enabled = true;
  readonly registry: Registry;
  private readonly clock: Clock;
  private readonly commitPhase: Histogram<'phase'>;
  private readonly fdatasync: Histogram;
  private readonly batchRecords: Histogram;
  private readonly transactionSeconds: Histogram;
  private readonly transactions: Counter<'outcome'>;
  private readonly transactionErrors: Counter<'code'>;
  private readonly errorsReturned: Counter<'code'>;
  private readonly walRecords: Counter;
  private readonly walBytes: Counter;
  private readonly commits: Counter;
  private readonly events: Counter;
  private readonly failovers: Counter;
  /** [last LSN, monotonic ms when sent] of batches waiting for the backup, oldest first. */
  private unacknowledged: Array<[number, number]> = [];
  private unacknowledgedStart = 0;
  private nodeStatus: (() => NodeStatus) | undefined;

  constructor(prom: PromClient, options: PrometheusMetricsOptions) {
    const registry = options.registry ?? new prom.Registry();
    this.registry = registry;
    this.clock = options.clock ?? nodePlatform.clock;
    if (options.processMetrics !== false) prom.collectDefaultMetrics({ register: registry });
    const registers = [registry];
    const histogram = <L extends string>(name: string, help: string, buckets: number[], labelNames: L[] = []): Histogram<L> =>
      new prom.Histogram({ name, help, buckets, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> =>
      new prom.Counter({ name, help, labelNames, registers });
    this.commitPhase = histogram('txlog_commit_phase_seconds', 'Commit latency by phase, per batch: wal_write, fdatasync, backup_ack, apply', latencyBucketsSeconds, ['phase']);
    this.fdatasync = histogram('txlog_wal_fdatasync_seconds', 'Duration of each WAL fdatasync', latencyBucketsSeconds);
    this.batchRecords = histogram('txlog_wal_batch_records', 'Records per group-commit batch (one writev)', batchRecordBuckets);
    this.transactionSeconds = histogram('txlog_transaction_seconds', 'From execute to the answer, for transactions that ran here', latencyBucketsSeconds);
    this.transactions = counter('txlog_transactions_total', 'Transactions run, by outcome (ok or error)', ['outcome']);
    this.transactionErrors = counter('txlog_transaction_errors_total', 'Transactions that failed, by error code', ['code']);
    this.errorsReturned = counter('txlog_errors_returned_total', 'Errors a node answered to client requests, by code', ['code']);
    this.walRecords = counter('txlog_wal_records_appended_total', 'Records written to the WAL');
    this.walBytes = counter('txlog_wal_appended_bytes_total', 'Bytes of frames written to the WAL');
    this.commits = counter('txlog_commits_total', 'Commit records applied');
    this.events = counter('txlog_events_appended_total', 'Events applied (in commit records)');
    this.failovers = counter('txlog_failovers_total', 'Times this node took over as primary from a lost primary');
    this.registerNodeGauges(prom, registers);
  }

  walBatchWritten(records: number, bytes: number, seconds: number): void {
    this.commitPhase.observe({ phase: 'wal_write' }, seconds);
    this.batchRecords.observe(records);
    this.walRecords.inc(records);
    this.walBytes.inc(bytes);
  }

  walSynced(seconds: number): void {
    this.commitPhase.observe({ phase: 'fdatasync' }, seconds);
    this.fdatasync.observe(seconds);
  }

  applied(records: readonly ApplicableRecord[], seconds: number): void {
    this.commitPhase.observe({ phase: 'apply' }, seconds);
    let commits = 0;
    let events = 0;
    for (const record of records) {
      if (record.type !== recordTypes.commit) continue;
      commits += 1;
      for (const write of (record.payload as CommitPayload).events) events += write.events.length;
    }
    if (commits > 0) this.commits.inc(commits);
    if (events > 0) this.events.inc(events);
    // Batches applied without a release (a backup node applies what it wrote) are forgotten.
    const appliedLsn = records[records.length - 1]?.lsn ?? 0;
    this.forgetUnacknowledged(appliedLsn, undefined);
  }

  transactionFinished(seconds: number, errorCode: ErrorCode | undefined): void {
    this.transactionSeconds.observe(seconds);
    this.transactions.inc({ outcome: errorCode === undefined ? 'ok' : 'error' });
    if (errorCode !== undefined) this.transactionErrors.inc({ code: errorCode });
  }

  batchSent(lastLsn: number): void {
    if (this.unacknowledged.length - this.unacknowledgedStart >= unacknowledgedBatchesMax) return;
    this.unacknowledged.push([lastLsn, this.clock.monotonicMs()]);
  }

  released(lsn: number): void {
    this.forgetUnacknowledged(lsn, this.clock.monotonicMs());
  }

  errorReturned(code: ErrorCode): void {
    this.errorsReturned.inc({ code });
  }

  failover(): void {
    this.failovers.inc();
  }

  observeNode(status: () => NodeStatus): void {
    this.nodeStatus = status;
  }

  /** Drops the batches at or below `lsn`, observing their acknowledgement time when `nowMs` is given. */
  private forgetUnacknowledged(lsn: number, nowMs: number | undefined): void {
    let start = this.unacknowledgedStart;
    while (start < this.unacknowledged.length && this.unacknowledged[start]![0] <= lsn) {
      if (nowMs !== undefined) this.commitPhase.observe({ phase: 'backup_ack' }, (nowMs - this.unacknowledged[start]![1]) / 1000);
      start += 1;
    }
    // Compact now and then instead of shifting on every release.
    if (start > 1024 && start * 2 > this.unacknowledged.length) {
      this.unacknowledged = this.unacknowledged.slice(start);
      start = 0;
    }
    this.unacknowledgedStart = start;
  }

  /** Age of the oldest batch the backup has not acknowledged: the replication lag in time. */
  private lagSeconds(): number {
    const oldest = this.unacknowledged[this.unacknowledgedStart];
    return oldest === undefined ? 0 : (this.clock.monotonicMs() - oldest[1]) / 1000;
  }

  private registerNodeGauges(prom: PromClient, registers: Registry[]): void {
    const read = (): NodeStatus | undefined => this.nodeStatus?.();
    const gauge = (name: string, help: string, value: (status: NodeStatus) => number): Gauge =>
      new prom.Gauge({
        name,
        help,
        registers,
        collect() {
          const status = read();
          if (status !== undefined) this.set(value(status));
        },
      });
    gauge('txlog_node_epoch', 'The epoch this node is in', (status) => status.epoch);
    gauge('txlog_node_in_sync', 'Primary: a backup is in sync; backup: caught up with its primary (1 or 0)', (status) => (status.inSync ? 1 : 0));
    gauge('txlog_node_last_lsn', 'Last LSN in this node\'s WAL', (status) => status.lastLsn);
    gauge('txlog_node_applied_lsn', 'Last LSN applied to this node\'s state', (status) => status.appliedLsn);
    gauge('txlog_replication_lag_records', 'Primary: records its backup has not acknowledged', (status) => status.backupLagRecords);
    gauge('txlog_replication_acknowledged_lsn', 'Primary: the highest LSN its backup acknowledged', (status) => status.replicaAckedLsn);
    gauge('txlog_replication_lag_seconds', 'Primary: how long the oldest batch not yet acknowledged by the backup has waited', () => this.lagSeconds());
    gauge('txlog_peer_links', 'Open replication links', (status) => status.peerLinks);
    gauge('txlog_client_connections', 'Open client connections', (status) => status.clients);
    gauge('txlog_client_sessions', 'Client sessions kept with their reply windows', (status) => status.clientSessions);
    new prom.Gauge({
      name: 'txlog_node_role',
      help: 'This node\'s role (1 for the current one)',
      labelNames: ['role'],
      registers,
      collect() {
        const status = read();
        if (status === undefined) return;
        for (const role of roles) this.set({ role }, status.role === role ? 1 : 0);
      },
    });
    // Every queue, map and buffer of `status().resources`: its size and, where it has one, its limit.
    const resourceGauge = (name: string, help: string, value: (use: ResourceUse) => number | null): Gauge =>
      new prom.Gauge({
        name,
        help,
        labelNames: ['structure'],
        registers,
        collect() {
          const status = read();
          if (status === undefined) return;
          for (const [structure, use] of Object.entries(status.resources)) {
            const measured = value(use);
            if (measured !== null) this.set({ structure }, measured);
          }
        },
      });
    resourceGauge('txlog_resource_size', 'Entries (or bytes, for buffers) a structure of this node holds now (see status().resources)', (use) => use.size);
    resourceGauge('txlog_resource_limit', 'The limit of a structure of this node (absent for one without a limit of its own)', (use) => use.limit);
    // The node counts violations; a counter cannot be set, so it is brought up to the node's count.
    let violationsReported = 0;
    new prom.Counter({
      name: 'txlog_determinism_violations_total',
      help: 'Commits whose re-execution on this backup gave a different outcome',
      registers,
      collect() {
        const status = read();
        if (status === undefined || status.determinismViolations <= violationsReported) return;
        this.inc(status.determinismViolations - violationsReported);
        violationsReported = status.determinismViolations;
      },
    });
  }
}

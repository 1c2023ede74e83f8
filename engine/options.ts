/**
 * Store options, each documented once with default, unit and trade-off, merged with the
 * defaults here and nowhere else.
 */
import { flushEntriesDefault } from './stream-index.js';
import { txlogError } from '../wal/errors.js';
import type { FsyncPolicy } from '../wal/options.js';
import { nodePlatform, type Platform } from '../wal/platform.js';
import type { AnyEvent, Service } from './service.js';
import { nullMetrics, type StoreMetrics } from './metrics.js';

export interface StoreLimits {
  /** Events one transaction may write, over all streams. @default 1000 */
  eventsPerTransactionMax: number;
  /** Bytes of one event (type, data and metadata, msgpack-encoded). @default 256 KiB */
  eventBytesMax: number;
  /**
   * Expected versions one transaction may require of streams without writing them
   * (`ctx.expectVersion`, the built-in append's `checks`). @default 1000
   */
  checksPerTransactionMax: number;
  /** External calls (`ctx.call`) one transaction may make. @default 64 */
  callsPerTransactionMax: number;
  /** Bytes of a command's args, and of a reply (msgpack). @default 256 KiB */
  argsBytesMax: number;
  replyBytesMax: number;
  /**
   * Length of a stream name, a client id, a command (and `ctx.call`) name, an event type.
   * Each must also be well-formed Unicode (no lone surrogate): they are keys, stored as UTF-8.
   * @default 256, 128, 128, 256 characters
   */
  streamNameLengthMax: number;
  clientIdLengthMax: number;
  commandNameLengthMax: number;
  eventTypeLengthMax: number;
  /** Events one read returns at most. @default 4096 */
  readEventsMax: number;
  /** Transactions running at once; past it `execute` fails with `BUSY`. @default 16384 */
  transactionsInFlightMax: number;
  /**
   * How long a handler may run (its external calls included). Past it the transaction fails
   * with HANDLER_FAILED (`details.timedOut`), recorded like any failure, so a stuck call cannot
   * hold a request id forever. Re-execution does not compare the outcome of such a commit.
   * A built-in command returns at once and has no timeout.
   * @default 30000 (ms)
   */
  handlerTimeoutMs: number;
}

export interface SessionLimits {
  /**
   * Replies kept per client: a resend of one of the last `requestWindow` request ids gets the
   * stored reply; an older one gets `REQUEST_EXPIRED`, never a second execution. @default 64
   */
  requestWindow: number;
  /**
   * Clients whose reply windows are kept. Past it, the client least recently active (by LSN,
   * so every node evicts the same one) keeps only its highest request id: any resend from it
   * at or below that id gets `REQUEST_EXPIRED`. @default 100000
   */
  clientsMax: number;
}

export interface StoreOptions<Events extends AnyEvent = AnyEvent> extends Partial<StoreLimits>, Partial<SessionLimits> {
  /** The store's directory: `wal/` (the truth) and `state/` (LMDB, derived, rebuildable). */
  dir: string;
  /**
   * Command handlers. Built-in commands (`append`) work without one. A service made with
   * `defineService<Events>()` types the store with its events.
   */
  service?: Service<Events>;
  /**
   * When a commit is acknowledged (see the WAL): `always` after fdatasync (durable), `interval`
   * after write with an fdatasync within `fsyncIntervalMs`, `never` after write.
   * @default 'always'
   */
  fsync?: FsyncPolicy;
  /** @default 10 (ms) */
  fsyncIntervalMs?: number;
  /** WAL segment size. @default 64 MiB */
  segmentBytes?: number;
  /** Preallocate WAL segments. @default true */
  preallocate?: boolean;
  /** Largest WAL record (one transaction's commit record). @default 1 MiB */
  recordBytesMax?: number;
  /** See the WAL option of the same name: where fdatasync runs. @default false */
  syncOnWorkerThread?: boolean;
  /** LMDB map size: the most state the store can hold. @default 64 GiB (sparse) */
  stateMapBytes?: number;
  /**
   * Stream index entries kept in memory before they are written to LMDB together (see
   * `stream-index.ts`): more saves page writes and costs memory and the time an open takes to
   * read them back. Keep it the same on both nodes of a pair. @default 4096
   */
  streamIndexFlushEntries?: number;
  platform?: Platform;
  /**
   * Where the store reports commit latencies by phase, batch sizes, counts and errors: a sink
   * from `createPrometheusMetrics` (or your own). @default none (off: no clock is read for it,
   * and prom-client is never loaded)
   */
  metrics?: StoreMetrics;
  /**
   * Where warnings go (a cut tail, a rebuilt state) and the progress of a long catch-up at
   * open (10,000 records or more: when it begins, every 5 s, when it ends). @default stderr
   */
  log?: (message: string) => void;
}

export const storeLimitDefaults: StoreLimits = {
  eventsPerTransactionMax: 1000,
  eventBytesMax: 256 * 1024,
  checksPerTransactionMax: 1000,
  callsPerTransactionMax: 64,
  argsBytesMax: 256 * 1024,
  replyBytesMax: 256 * 1024,
  streamNameLengthMax: 256,
  clientIdLengthMax: 128,
  commandNameLengthMax: 128,
  eventTypeLengthMax: 256,
  readEventsMax: 4096,
  transactionsInFlightMax: 16_384,
  handlerTimeoutMs: 30_000,
};

export const sessionLimitDefaults: SessionLimits = {
  requestWindow: 64,
  clientsMax: 100_000,
};

export interface ResolvedStoreOptions {
  dir: string;
  service: Service | undefined;
  limits: StoreLimits;
  sessions: SessionLimits;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number | undefined;
  segmentBytes: number | undefined;
  preallocate: boolean | undefined;
  recordBytesMax: number | undefined;
  syncOnWorkerThread: boolean | undefined;
  stateMapBytes: number;
  streamIndexFlushEntries: number;
  platform: Platform;
  metrics: StoreMetrics;
  log: (message: string) => void;
}

export function resolveStoreOptions(options: StoreOptions): ResolvedStoreOptions {
  if (typeof options !== 'object' || options === null || typeof options.dir !== 'string' || options.dir === '') {
    throw txlogError('BAD_REQUEST', 'openStore needs { dir }');
  }
  const limits = { ...storeLimitDefaults };
  for (const key of Object.keys(storeLimitDefaults) as Array<keyof StoreLimits>) {
    const value = options[key];
    if (value !== undefined) limits[key] = positiveInteger(key, value);
  }
  const sessions = { ...sessionLimitDefaults };
  for (const key of Object.keys(sessionLimitDefaults) as Array<keyof SessionLimits>) {
    const value = options[key];
    if (value !== undefined) sessions[key] = positiveInteger(key, value);
  }
  return {
    dir: options.dir,
    service: options.service,
    limits,
    sessions,
    fsync: options.fsync ?? 'always',
    fsyncIntervalMs: options.fsyncIntervalMs,
    segmentBytes: options.segmentBytes,
    preallocate: options.preallocate,
    recordBytesMax: options.recordBytesMax,
    syncOnWorkerThread: options.syncOnWorkerThread,
    stateMapBytes: options.stateMapBytes ?? 64 * 1024 ** 3,
    streamIndexFlushEntries: options.streamIndexFlushEntries === undefined ? flushEntriesDefault : positiveInteger('streamIndexFlushEntries', options.streamIndexFlushEntries),
    platform: options.platform ?? nodePlatform,
    metrics: options.metrics ?? nullMetrics,
    log: options.log ?? ((message) => process.stderr.write(`txlog: ${message}\n`)),
  };
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw txlogError('BAD_REQUEST', `option ${name} must be a positive integer`);
  }
  return value;
}

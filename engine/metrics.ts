/**
 * What the store (and the node on top of it) reports to a metrics sink: the WAL's hooks plus
 * the rest of a commit's life. The default is `nullMetrics` (`enabled` false): every hook point
 * checks `enabled` before it reads a clock or counts anything, so metrics that are off cost one
 * property read per batch or per transaction, and the sink module (prom-client) is never loaded.
 * A sink must not throw.
 */
import type { ErrorCode } from '../wal/errors.js';
import { nullWalMetrics, type WalMetrics } from '../wal/metrics.js';
import type { ApplicableRecord } from './records.js';

export interface StoreMetrics extends WalMetrics {
  /** A batch applied to LMDB (one transaction) and how long the apply took. */
  applied(records: readonly ApplicableRecord[], seconds: number): void;
  /** A transaction run by `execute` was answered: how long it took, and its error code if it failed. */
  transactionFinished(seconds: number, errorCode: ErrorCode | undefined): void;
  /** Replication took a written batch ending at `lastLsn` to send to the backup (primary). */
  batchSent(lastLsn: number): void;
  /** The release gate (the backup's acknowledgement) now allows records up to `lsn`. */
  released(lsn: number): void;
  /** A node answered a client request with this error. */
  errorReturned(code: ErrorCode): void;
  /** This node took over as primary from a primary it lost (a promotion). */
  failover(): void;
}

export const nullMetrics: StoreMetrics = {
  ...nullWalMetrics,
  applied: () => undefined,
  transactionFinished: () => undefined,
  batchSent: () => undefined,
  released: () => undefined,
  errorReturned: () => undefined,
  failover: () => undefined,
};

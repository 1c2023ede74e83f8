/**
 * What the WAL reports to a metrics sink. The default sink is `nullWalMetrics`: `enabled` is
 * false, and every hook point checks it first, so with metrics off the WAL reads no clock and
 * computes nothing for them (one property read per batch). The sink must not throw.
 */
export interface WalMetrics {
  /** False: the hook points skip the clock reads and the calls altogether. */
  readonly enabled: boolean;
  /** One `writev` of a group-commit batch: its records, its bytes, and how long it took. */
  walBatchWritten(records: number, bytes: number, seconds: number): void;
  /** One fdatasync of the active segment and how long it took. */
  walSynced(seconds: number): void;
}

export const nullWalMetrics: WalMetrics = {
  enabled: false,
  walBatchWritten: () => undefined,
  walSynced: () => undefined,
};

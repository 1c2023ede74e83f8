/** txlog's public entry. Everything a user imports comes from here. */
export { TxlogError, errorCodes, type ErrorCode } from './wal/errors.js';
export { Wal, type WalOptions, type FsyncPolicy, type WalRecord } from './wal/index.js';
export * from './engine/index.js';
export * from './replication/index.js';
// prom-client is loaded only inside createPrometheusMetrics (a dynamic import).
export * from './replication/metrics.js';

export { openStore, Store, type RequestIds, type AppendResult, type SubscribeOptions } from './store.js';
export {
  defineService,
  checkService,
  builtinCommands,
  type Service,
  type Context,
  type CommandHandler,
  type RecordedEvent,
  type StreamSlice,
  type ReadStreamOptions,
  type AppendOptions,
} from './service.js';
export { recordTypes, recordTypeName, type CommitPayload, type JournalPayload, type EpochPayload, type EventInput } from './records.js';
export { storeLimitDefaults, sessionLimitDefaults, type StoreOptions, type StoreLimits, type SessionLimits } from './options.js';
export { backupStoreDirectory, type BackupOptions, type BackupProgress, type BackupManifest } from './backup.js';
export { verifyBackup, readManifest } from './backup-manifest.js';
export { nullMetrics, type StoreMetrics } from './metrics.js';
export { replayLog, reexecute, type Divergence, type ReplayReport } from './replay.js';

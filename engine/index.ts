export { openStore, Store, type RequestIds, type AppendResult, type StoreAppendOptions } from './store.js';
export { ReadResult, type ReadStreamOptions, type ReadAllOptions, type SubscribeOptions, type EventFilter, type Direction, type ReadPage, type ReadPageOptions } from './reads.js';
export { type ExpectedVersion } from './expected-version.js';
export {
  defineService,
  checkService,
  builtinCommands,
  type Service,
  type Context,
  type CommandHandler,
  type RecordedEvent,
  type RecordedFields,
  type AnyEvent,
  type EventToAppend,
  type StreamSlice,
  type ContextReadOptions,
  type AppendOptions,
  type AppendCheck,
  type AppendArgs,
  type AppendManyArgs,
} from './service.js';
export { recordTypes, recordTypeName, type CommitPayload, type JournalPayload, type EpochPayload, type EventInput } from './records.js';
export { storeLimitDefaults, sessionLimitDefaults, type StoreOptions, type StoreLimits, type SessionLimits } from './options.js';
export { backupStoreDirectory, type BackupOptions, type BackupProgress, type BackupManifest } from './backup.js';
export { verifyBackup, readManifest } from './backup-manifest.js';
export { nullMetrics, type StoreMetrics } from './metrics.js';
export { type ResourceUsage, type ResourceUse } from './resources.js';
export { replayLog, reexecute, type Divergence, type ReplayReport } from './replay.js';
export { Consumer, ConsumerRegistry, checkpointStreamOf, consumerStreamPrefix, type ConsumerOptions, type ConsumerContext, type ConsumerHost } from './consumer.js';
export { listConsumers, consumersListedMax, type ConsumerList, type ConsumerStatus } from './consumer-list.js';

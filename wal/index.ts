export { Wal, recordPayload, type WalRecord, type TailState, type BatchListener } from './wal.js';
export { resolveWalOptions, walDefaults, fsyncPolicies, type WalOptions, type FsyncPolicy } from './options.js';
export { TxlogError, txlogError, errorFromSerialized, errorCodes, type ErrorCode, type SerializedError } from './errors.js';
export { nodePlatform, type Platform, type FileSystem, type DirectoryLock, type Clock, type Random, type TimerHandle } from './platform.js';
export {
  formatVersion,
  segmentHeaderBytes,
  frameHeaderBytes,
  encodePayload,
  decodePayload,
  segmentFileName,
  parseSegmentFileName,
} from './format.js';

/**
 * Operating errors: every failure a caller can meet carries a stable `code` and says whether
 * repeating the same request may succeed. Programmer errors are assertions (see `assert.ts`).
 *
 * This file lives in `wal/` because the WAL imports nothing else of ours; the other layers
 * import the same class so that one `instanceof TxlogError` covers the whole package.
 */

/** Stable error codes. Scripts and clients branch on these, never on messages. */
export const errorCodes = [
  'WRONG_EXPECTED_VERSION',
  'UNKNOWN_COMMAND',
  'HANDLER_FAILED',
  'NOT_PRIMARY',
  'REPLICA_UNAVAILABLE',
  'STALE_EPOCH',
  'CORRUPT_LOG',
  'PROTOCOL_ERROR',
  'UNAUTHORIZED',
  'TOO_LARGE',
  'BAD_REQUEST',
  'BUSY',
  'TIMEOUT',
  'REQUEST_EXPIRED',
  'CLOSED',
  'IO_ERROR',
  'UNSUPPORTED_FORMAT',
  'NOT_A_LOG',
  'NOT_FOUND',
  'USAGE',
  'NOT_SERIALIZABLE',
  'DETERMINISM_VIOLATION',
  'CALL_FAILED',
  'STORE_FAILED',
  'OUTCOME_UNKNOWN',
  'REQUEST_ID_REUSED',
  'TARGET_NOT_EMPTY',
  'INTERNAL_ERROR',
  /** A durable consumer of that name is already running (or another one moved its checkpoint). */
  'CONSUMER_ACTIVE',
  /** The store's WAL is open for writing elsewhere: in another process, or already in this one. */
  'STORE_IN_USE',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

/**
 * Codes after which the same request (same request id) may be sent again. `REPLICA_UNAVAILABLE`,
 * `TIMEOUT` and `OUTCOME_UNKNOWN` also mean *outcome unknown*: the request may have taken effect,
 * so it must be resent with the same id, never with a new one. `IO_ERROR` is a definite failure:
 * nothing of the request reached the log.
 */
const retryableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NOT_PRIMARY',
  'REPLICA_UNAVAILABLE',
  'BUSY',
  'TIMEOUT',
  'OUTCOME_UNKNOWN',
]);

/**
 * Codes that mean "the request may or may not have committed": the caller must resend the same
 * request id (after a restart, or to the new primary) to learn its outcome, and must not treat it
 * as failed. Every other code is definite: either the recorded outcome of the transaction, or a
 * refusal before anything was written.
 */
export const outcomeUnknownCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['OUTCOME_UNKNOWN', 'REPLICA_UNAVAILABLE', 'TIMEOUT']);

/**
 * Codes that describe a transaction's own outcome: service code may throw them and have them
 * recorded as they are.
 */
const transactionOutcomeCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'WRONG_EXPECTED_VERSION',
  'UNKNOWN_COMMAND',
  'HANDLER_FAILED',
  'CALL_FAILED',
  'TOO_LARGE',
  'BAD_REQUEST',
  'NOT_FOUND',
  'NOT_SERIALIZABLE',
  'DETERMINISM_VIOLATION',
]);

/**
 * Every other code: only the runtime raises it about itself (the node, the disk, the wire).
 * Service code that throws one has its error recorded as `HANDLER_FAILED` instead, with the
 * original code in `details`: a recorded outcome must never look like "resend me" or "outcome
 * unknown". A new code lands here unless it is listed above, which is the safe side.
 */
export const infrastructureCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>(errorCodes.filter((code) => !transactionOutcomeCodes.has(code)));

export interface TxlogErrorOptions {
  /** Extra machine-readable facts (segment, offset, actual version...). Must be msgpack-safe. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class TxlogError extends Error {
  override readonly name = 'TxlogError';
  readonly code: ErrorCode;
  /** True when sending the same request again (same request id) may succeed. */
  readonly retryable: boolean;
  /** True when the request may have committed: resend the same request id to learn its outcome. */
  readonly outcomeUnknown: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: TxlogErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = retryableCodes.has(code);
    this.outcomeUnknown = outcomeUnknownCodes.has(code);
    this.details = options.details ?? {};
  }

  /** A plain object that survives msgpack and JSON, for the WAL and the wire. */
  toJSON(): SerializedError {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export interface SerializedError {
  code: ErrorCode;
  message: string;
  details: Record<string, unknown>;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (errorCodes as readonly string[]).includes(value);
}

/** Rebuilds an error that crossed the WAL or the wire; unknown codes become PROTOCOL_ERROR. */
export function errorFromSerialized(value: unknown): TxlogError {
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const message = typeof record['message'] === 'string' ? record['message'] : 'error';
    const details =
      typeof record['details'] === 'object' && record['details'] !== null
        ? (record['details'] as Record<string, unknown>)
        : {};
    if (isErrorCode(record['code'])) return new TxlogError(record['code'], message, { details });
  }
  return new TxlogError('PROTOCOL_ERROR', 'malformed error object', { details: { value: String(value) } });
}

export function txlogError(code: ErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown): TxlogError {
  const options: TxlogErrorOptions = {};
  if (details !== undefined) options.details = details;
  if (cause !== undefined) options.cause = cause;
  return new TxlogError(code, message, options);
}

/**
 * The log failed after a record's bytes were (or may have been) written: it may be in the log,
 * durable even, and a reopened log may hold it. The caller resends the same request id (once
 * the log is back) and gets the recorded outcome, instead of treating it as failed.
 */
export function outcomeUnknown(failure: TxlogError): TxlogError {
  return txlogError(
    'OUTCOME_UNKNOWN',
    `outcome unknown, resend the same request id: the record may be in the log (${failure.message})`,
    { ...failure.details, failureCode: failure.code },
    failure,
  );
}

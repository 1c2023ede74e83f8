/**
 * One call of the network client as it waits for its answer, and the errors its caller gets when
 * the answer never comes or comes after an earlier attempt may have committed.
 */
import { txlogError, type TxlogError } from '../wal/errors.js';
import type { Connection } from './connection.js';
import type { Operation } from './protocol.js';

export interface Call {
  callId: number;
  op: Operation;
  body: Record<string, unknown>;
  requestId: number | undefined;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** Its deadline's length (`CallDeadlines` holds when it expires). */
  deadlineMs: number;
  lastError: TxlogError | undefined;
  /** The connection this call was last sent on. */
  sentOn?: Connection;
  /** Times it was sent: past the first, an earlier attempt may have committed. */
  attempts: number;
}

/**
 * Refusals that say only that this attempt did nothing (the node's store failed or closed).
 * After an earlier attempt of the same request, they cannot say the request failed: it may have
 * committed, so the caller hears OUTCOME_UNKNOWN.
 */
const attemptRefusals: ReadonlySet<string> = new Set(['STORE_FAILED', 'CLOSED', 'IO_ERROR', 'CORRUPT_LOG', 'STALE_EPOCH', 'PROTOCOL_ERROR']);

/** What the caller hears for a final (not retryable) answer to `call`. */
export function finalError(call: Call, error: TxlogError): TxlogError {
  if (call.requestId === undefined || call.attempts <= 1 || !attemptRefusals.has(error.code)) return error;
  return txlogError(
    'OUTCOME_UNKNOWN',
    `request ${call.requestId} was sent ${call.attempts} times and the last answer was ${error.code} (${error.message}); an earlier attempt may have committed: resend the same request id later`,
    { requestId: call.requestId, lastError: error.code },
    error,
  );
}

/** The deadline passed with no answer: the outcome is unknown. */
export function timeoutError(call: Call): TxlogError {
  const details: Record<string, unknown> = { outcome: 'unknown' };
  if (call.requestId !== undefined) details['requestId'] = call.requestId;
  if (call.lastError !== undefined) details['lastError'] = call.lastError.code;
  const last = call.lastError === undefined ? '' : ` (last answer: ${call.lastError.code})`;
  return txlogError(
    'TIMEOUT',
    `no answer in time${call.requestId === undefined ? '' : ` for request ${call.requestId}`}; the outcome is unknown, resending the same request id is safe${last}`,
    details,
  );
}

/**
 * The `resolve` and `reject` of a call that `signal` may abandon: `abandon` runs when it aborts,
 * and settling stops listening, so a signal shared by many calls holds none of them.
 */
export function listenForAbort(
  signal: AbortSignal | undefined,
  abandon: () => void,
  resolve: (value: unknown) => void,
  reject: (error: Error) => void,
): Pick<Call, 'resolve' | 'reject'> {
  if (signal === undefined) return { resolve, reject };
  signal.addEventListener('abort', abandon, { once: true });
  return {
    resolve: (value) => {
      signal.removeEventListener('abort', abandon);
      resolve(value);
    },
    reject: (error) => {
      signal.removeEventListener('abort', abandon);
      reject(error);
    },
  };
}

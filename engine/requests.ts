/**
 * A request as the store takes it: its names checked, its ids paired, its args snapshotted.
 */
import { txlogError } from '../wal/errors.js';
import type { StoreLimits } from './options.js';
import type { JournalEntry } from './state.js';
import { isWellFormedName, packChecked, requestDigestOf, snapshotChecked } from './values.js';

export interface RequestIds {
  /** Who sends: with `requestId`, makes the request exactly-once. Omit both for a one-off. */
  clientId?: string;
  /** Grows by one per client; a resend reuses it. */
  requestId?: number;
}

/** A request as checked on arrival: its args recorded as they were then. */
export interface CheckedRequest {
  command: string;
  /** '' with `requestId` 0 for a one-off request. */
  clientId: string;
  requestId: number;
  /** The args as recorded in the commit (a private copy, decoded from `packedArgs`). */
  args: unknown;
  packedArgs: Buffer;
  /** The request's digest (`requestDigest`), once asked for. */
  digestValue?: string;
}

/** The request's digest (command and packed args), computed once when first asked. */
export function requestDigest(request: CheckedRequest): string {
  return (request.digestValue ??= requestDigestOf(request.command, request.packedArgs));
}

/**
 * Checks a request as it arrives. `argsOwned`: nothing but the store holds `args` (a node's
 * request decoded from a client's frame), so they are checked and packed but not copied.
 */
export function checkRequest(command: unknown, args: unknown, ids: RequestIds, limits: StoreLimits, argsOwned = false): CheckedRequest {
  if (!isWellFormedName(command, limits.commandNameLengthMax)) {
    throw txlogError('BAD_REQUEST', `command must be a string of 1..${limits.commandNameLengthMax} characters of well-formed Unicode`);
  }
  if (typeof ids !== 'object' || ids === null) throw txlogError('BAD_REQUEST', 'request ids must be an object');
  const clientId = ids.clientId ?? '';
  const requestId = ids.requestId ?? 0;
  if (typeof clientId !== 'string' || clientId.length > limits.clientIdLengthMax || !clientId.isWellFormed()) {
    throw txlogError('BAD_REQUEST', `clientId must be a string of at most ${limits.clientIdLengthMax} characters of well-formed Unicode`);
  }
  if (!Number.isSafeInteger(requestId) || requestId < 0) {
    throw txlogError('BAD_REQUEST', 'requestId must be a non-negative integer');
  }
  if ((clientId === '') !== (requestId === 0)) {
    throw txlogError('BAD_REQUEST', 'clientId and requestId (>= 1) go together: give both or neither');
  }
  // Args are recorded as they were when the request arrived: the handler gets its own copy,
  // so mutating it changes neither the commit record nor what replay and the backup see. Args
  // nobody else holds are already that copy (decoded from bytes: packing them again and
  // decoding gives the same value).
  const snapshot = argsOwned
    ? { value: args ?? null, packed: packChecked(args ?? null, limits.argsBytesMax, 'the command args') }
    : snapshotChecked(args ?? null, limits.argsBytesMax, 'the command args');
  return {
    command,
    clientId,
    requestId,
    args: snapshot.value,
    packedArgs: snapshot.packed,
  };
}

/** Refuses a journaled call to a request other than the one that made it (see `JournalPayload.request`). */
export function checkCallBinding(entry: JournalEntry, request: CheckedRequest): void {
  if (entry.request === undefined || entry.request === requestDigest(request)) return;
  throw txlogError(
    'REQUEST_ID_REUSED',
    `request ${request.requestId} of client ${request.clientId} was already used by another request (other command or args) that made external calls; use a new request id`,
    { clientId: request.clientId, requestId: request.requestId },
  );
}

/**
 * How the session table keeps commits' replies (layout 6; layouts 3 to 5 kept one LMDB entry per
 * reply). The recent ones go in runs, a put per apply, not per commit; a sweep reads the runs
 * and moves the survivors to `kept-replies`, one entry each, keyed by client and request id.
 *
 * Key of a run of recent replies (in a generation of `reply-table.ts`): the LSN of its first
 * reply (u64 BE: appends land on the B-tree's right edge; the run holding an LSN is found by one
 * seek back from it).
 * Value of a run:
 *     0  4  n, the replies it holds, in LSN order (u32 LE)
 *   then n entries:
 *     0  8  LSN of the commit (f64 LE)
 *     8  8  LSN of the same client's previous kept reply, 0 when there is none (f64 LE)
 *    16  8  request id (f64 LE)
 *    24  1  0: a reply, 1: an error
 *    25  2  c, the client id's bytes (u16 LE)
 *    27  4  o, the reply's or error's bytes (u32 LE)
 *    31  c  client id (UTF-8), then o bytes of the reply or error (msgpack)
 * Key of a kept reply:
 *     0  2  client id bytes (u16 BE)
 *     2  n  client id (UTF-8)
 *   2+n  8  request id (u64 BE)
 *   The length prefix keeps one client's keys contiguous whatever its id holds: ordered-binary
 *   arrays would interleave `[id, n]` with the keys of an id that extends `id` by U+0000 (past 63
 *   characters it writes such strings raw), and a range delete would then reach another client.
 * Value of a kept reply:
 *     0  8  LSN of the commit (f64 LE)
 *     8  8  LSN of the same client's previous kept reply, 0 when there is none (f64 LE)
 *    16  1  0: a reply follows, 1: an error follows
 *    17     the reply or the error (msgpack)
 */
import { assertionFailed } from '../wal/assert.js';
import type { SerializedError } from '../wal/errors.js';
import { decodePayload } from '../wal/format.js';

/** Whose reply an entry is: what its key says. */
export interface ReplyIdentity {
  lsn: number;
  requestId: number;
  clientId: string;
}

export interface StoredReply extends ReplyIdentity {
  /** The chain link: the client's reply kept before this one (see `reply-table.ts`). */
  previousLsn: number;
  reply?: unknown;
  error?: SerializedError;
}

const lsnBytes = 8;
const valueHeaderBytes = 17;
const outcomeKind = { reply: 0, error: 1 } as const;

function writeU64(target: Buffer, value: number, offset: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) assertionFailed(`${value} is not a key number`);
  target.writeUInt32BE(Math.floor(value / 2 ** 32), offset);
  target.writeUInt32BE(value >>> 0, offset + 4);
}

function readU64(source: Buffer, offset: number): number {
  return source.readUInt32BE(offset) * 2 ** 32 + source.readUInt32BE(offset + 4);
}

/** The key of the run of recent replies whose first reply has this LSN (also where a seek back for an LSN starts). */
export function runKeyOf(lsn: number): Buffer {
  const prefix = Buffer.allocUnsafe(lsnBytes);
  writeU64(prefix, lsn, 0);
  return prefix;
}

export function keptKeyOf(clientId: string, requestId: number): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  if (id.length > 0xffff) assertionFailed(`a client id of ${id.length} bytes does not fit a kept reply's key`);
  const key = Buffer.allocUnsafe(2 + id.length + 8);
  key.writeUInt16BE(id.length, 0);
  id.copy(key, 2);
  writeU64(key, requestId, 2 + id.length);
  return key;
}

/** Keys of the client's kept replies below `belowRequestId`, or all of them. */
export function keptRangeOf(clientId: string, belowRequestId: number | 'all'): { start: Buffer; end: Buffer } {
  const end = keptKeyOf(clientId, belowRequestId === 'all' ? 0 : belowRequestId);
  // A request id of all ones sorts after every key of the client (ids are safe integers).
  if (belowRequestId === 'all') end.fill(0xff, end.length - 8);
  return { start: keptKeyOf(clientId, 0), end };
}

export function readKeptKey(key: Buffer): { clientId: string; requestId: number } {
  const idBytes = key.readUInt16BE(0);
  if (key.length !== 2 + idBytes + 8) assertionFailed(`a kept reply key of ${key.length} bytes names a client id of ${idBytes}`);
  return { clientId: key.toString('utf8', 2, 2 + idBytes), requestId: readU64(key, 2 + idBytes) };
}

/** A kept reply's value: the chain link, and the reply (nil when there is none) or the error as msgpack. */
export function encodeReplyValue(link: { lsn: number; previousLsn: number }, failed: boolean, outcome: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(valueHeaderBytes + outcome.length);
  bytes.writeDoubleLE(link.lsn, 0);
  bytes.writeDoubleLE(link.previousLsn, 8);
  bytes[16] = failed ? outcomeKind.error : outcomeKind.reply;
  bytes.set(outcome, valueHeaderBytes);
  return bytes;
}

/** A kept reply, whose key named its client and request id. */
export function decodeStoredReply(identity: { clientId: string; requestId: number }, value: Buffer): StoredReply {
  if (value.length <= valueHeaderBytes) assertionFailed(`a stored reply of ${value.length} bytes is shorter than its header`);
  const stored: StoredReply = { lsn: value.readDoubleLE(0), requestId: identity.requestId, previousLsn: value.readDoubleLE(8), clientId: identity.clientId };
  const kind = value[16];
  if (!(kind === outcomeKind.reply || kind === outcomeKind.error)) assertionFailed(`a stored reply of unknown kind ${String(kind)}`);
  const outcome = decodePayload(value.subarray(valueHeaderBytes));
  if (kind === outcomeKind.error) stored.error = outcome as SerializedError;
  else stored.reply = outcome;
  return stored;
}

/** One reply of a run: whose, its chain link, and its reply or error as msgpack. */
export interface RunReply extends ReplyIdentity {
  previousLsn: number;
  failed: boolean;
  outcome: Uint8Array;
}

const runEntryHeaderBytes = 31;

/** The run of these replies (in LSN order). */
export function encodeReplyRun(replies: readonly RunReply[]): Buffer {
  let bytes = 4;
  const idBytes = replies.map((reply) => Buffer.byteLength(reply.clientId, 'utf8'));
  for (let index = 0; index < replies.length; index++) bytes += runEntryHeaderBytes + idBytes[index]! + replies[index]!.outcome.length;
  const run = Buffer.allocUnsafe(bytes);
  run.writeUInt32LE(replies.length, 0);
  let at = 4;
  for (let index = 0; index < replies.length; index++) {
    const reply = replies[index]!;
    if (idBytes[index]! > 0xffff) assertionFailed(`a client id of ${idBytes[index]} bytes does not fit a reply run`);
    run.writeDoubleLE(reply.lsn, at);
    run.writeDoubleLE(reply.previousLsn, at + 8);
    run.writeDoubleLE(reply.requestId, at + 16);
    run[at + 24] = reply.failed ? outcomeKind.error : outcomeKind.reply;
    run.writeUInt16LE(idBytes[index]!, at + 25);
    run.writeUInt32LE(reply.outcome.length, at + 27);
    at += runEntryHeaderBytes;
    at += run.write(reply.clientId, at, 'utf8');
    run.set(reply.outcome, at);
    at += reply.outcome.length;
  }
  return run;
}

/** The replies of a run, in LSN order (their outcomes views of `run`). */
export function decodeReplyRun(run: Buffer): RunReply[] {
  const replies: RunReply[] = [];
  walkReplyRun(run, (_lsn, at) => {
    replies.push(replyAt(run, at));
    return false;
  });
  return replies;
}

/** The reply of a run with this LSN, or undefined; the others are stepped over, not decoded. */
export function replyInRun(run: Buffer, lsn: number): RunReply | undefined {
  let found: RunReply | undefined;
  walkReplyRun(run, (entryLsn, at) => {
    if (entryLsn !== lsn) return entryLsn > lsn;
    found = replyAt(run, at);
    return true;
  });
  return found;
}

/** Calls `visit` with each entry's LSN and offset, in LSN order, until it returns true; checks every entry's bounds on the way. */
function walkReplyRun(run: Buffer, visit: (lsn: number, at: number) => boolean): void {
  if (run.length < 4) assertionFailed(`a reply run of ${run.length} bytes`);
  const count = run.readUInt32LE(0);
  let at = 4;
  for (let index = 0; index < count; index++) {
    if (at + runEntryHeaderBytes > run.length) assertionFailed(`a reply run ends inside its entry ${index}`);
    const end = at + runEntryHeaderBytes + run.readUInt16LE(at + 25) + run.readUInt32LE(at + 27);
    if (end > run.length) assertionFailed(`a reply run ends inside its entry ${index}`);
    if (visit(run.readDoubleLE(at), at)) return;
    at = end;
  }
  if (at !== run.length) assertionFailed(`a reply run has ${run.length - at} bytes after its entries`);
}

/** The entry of a run at offset `at`, its bounds already checked. */
function replyAt(run: Buffer, at: number): RunReply {
  const kind = run[at + 24];
  if (!(kind === outcomeKind.reply || kind === outcomeKind.error)) assertionFailed(`a stored reply of unknown kind ${String(kind)}`);
  const idAt = at + runEntryHeaderBytes;
  const outcomeAt = idAt + run.readUInt16LE(at + 25);
  return {
    lsn: run.readDoubleLE(at),
    previousLsn: run.readDoubleLE(at + 8),
    requestId: run.readDoubleLE(at + 16),
    clientId: run.toString('utf8', idAt, outcomeAt),
    failed: kind === outcomeKind.error,
    outcome: run.subarray(outcomeAt, outcomeAt + run.readUInt32LE(at + 27)),
  };
}

/** A reply of a run as the table answers it. */
export function storedReplyOf(reply: RunReply): StoredReply {
  const stored: StoredReply = { lsn: reply.lsn, requestId: reply.requestId, previousLsn: reply.previousLsn, clientId: reply.clientId };
  const outcome = decodePayload(reply.outcome);
  if (reply.failed) stored.error = outcome as SerializedError;
  else stored.reply = outcome;
  return stored;
}

/** The first LSN a run's key names. */
export function runLsnOf(key: Buffer): number {
  if (key.length !== lsnBytes) assertionFailed(`a reply run key of ${key.length} bytes`);
  return readU64(key, 0);
}

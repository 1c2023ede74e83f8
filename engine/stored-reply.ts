/**
 * How the session table keeps one commit's reply (layout 3). A key says whose reply it is, so a
 * sweep decides what survives from keys alone (a third of the cost of reading entries); the
 * value holds the rest, the reply or error in our own plain msgpack.
 *
 * Key of a recent reply (in a generation of `reply-table.ts`):
 *     0  8  LSN of the commit (u64 BE: appends land on the B-tree's right edge; a chain link,
 *           an LSN, is found by a seek to it)
 *     8  8  request id (u64 BE)
 *    16  n  client id (UTF-8)
 * Key of a kept reply:
 *     0  2  client id bytes (u16 BE)
 *     2  n  client id (UTF-8)
 *   2+n  8  request id (u64 BE)
 *   The length prefix keeps one client's keys contiguous whatever its id holds: ordered-binary
 *   arrays would interleave `[id, n]` with the keys of an id that extends `id` by U+0000 (past 63
 *   characters it writes such strings raw), and a range delete would then reach another client.
 * Value:
 *     0  8  LSN of the commit (f64 LE)
 *     8  8  LSN of the same client's previous kept reply, 0 when there is none (f64 LE)
 *    16  1  0: a reply follows, 1: an error follows
 *    17     the reply or the error (msgpack)
 */
import { assert } from '../wal/assert.js';
import type { SerializedError } from '../wal/errors.js';
import { decodePayload, encodePayload } from '../wal/format.js';

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
  assert(Number.isSafeInteger(value) && value >= 0, `${value} is not a key number`);
  target.writeUInt32BE(Math.floor(value / 2 ** 32), offset);
  target.writeUInt32BE(value >>> 0, offset + 4);
}

function readU64(source: Buffer, offset: number): number {
  return source.readUInt32BE(offset) * 2 ** 32 + source.readUInt32BE(offset + 4);
}

/** The first bytes of every recent key of this LSN (there is one). */
export function lsnPrefixOf(lsn: number): Buffer {
  const prefix = Buffer.allocUnsafe(lsnBytes);
  writeU64(prefix, lsn, 0);
  return prefix;
}

export function recentKeyOf(identity: ReplyIdentity): Buffer {
  // The client id written in place: no Buffer of its own first (a put per commit makes one).
  const key = Buffer.allocUnsafe(2 * lsnBytes + Buffer.byteLength(identity.clientId, 'utf8'));
  writeU64(key, identity.lsn, 0);
  writeU64(key, identity.requestId, lsnBytes);
  key.write(identity.clientId, 2 * lsnBytes, 'utf8');
  return key;
}

export function readRecentKey(key: Buffer): ReplyIdentity {
  assert(key.length >= 2 * lsnBytes, `a recent reply key of ${key.length} bytes`);
  return { lsn: readU64(key, 0), requestId: readU64(key, lsnBytes), clientId: key.toString('utf8', 2 * lsnBytes) };
}

export function keptKeyOf(clientId: string, requestId: number): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  assert(id.length <= 0xffff, `a client id of ${id.length} bytes does not fit a kept reply's key`);
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
  assert(key.length === 2 + idBytes + 8, `a kept reply key of ${key.length} bytes names a client id of ${idBytes}`);
  return { clientId: key.toString('utf8', 2, 2 + idBytes), requestId: readU64(key, 2 + idBytes) };
}

/**
 * A reply's value: the chain link, and the reply (nil when there is none) or the error, as
 * msgpack bytes, or undefined to pack `value` (`commit-for-apply.ts`).
 */
export function encodeReplyValue(link: { lsn: number; previousLsn: number }, failed: boolean, packed: Uint8Array | undefined, value?: unknown): Buffer {
  const outcome = packed ?? encodePayload(value);
  const bytes = Buffer.allocUnsafe(valueHeaderBytes + outcome.length);
  bytes.writeDoubleLE(link.lsn, 0);
  bytes.writeDoubleLE(link.previousLsn, 8);
  bytes[16] = failed ? outcomeKind.error : outcomeKind.reply;
  bytes.set(outcome, valueHeaderBytes);
  return bytes;
}

/** The chain link alone, without decoding the reply. */
export function previousLsnOf(value: Buffer): number {
  return value.readDoubleLE(8);
}

export function decodeStoredReply(identity: ReplyIdentity | { clientId: string; requestId: number }, value: Buffer): StoredReply {
  assert(value.length > valueHeaderBytes, `a stored reply of ${value.length} bytes is shorter than its header`);
  const lsn = value.readDoubleLE(0);
  assert(!('lsn' in identity) || identity.lsn === lsn, `the reply keyed at LSN ${'lsn' in identity ? identity.lsn : ''} says LSN ${lsn}`);
  const stored: StoredReply = { lsn, requestId: identity.requestId, previousLsn: previousLsnOf(value), clientId: identity.clientId };
  const kind = value[16];
  assert(kind === outcomeKind.reply || kind === outcomeKind.error, `a stored reply of unknown kind ${String(kind)}`);
  const outcome = decodePayload(value.subarray(valueHeaderBytes));
  if (kind === outcomeKind.error) stored.error = outcome as SerializedError;
  else stored.reply = outcome;
  return stored;
}

/**
 * How the session table keeps one commit's reply (layout 3): a fixed header that the chain walk
 * and the sweeps read without decoding the reply (which may be 256 KiB), then the reply or the
 * error in our own plain msgpack.
 *
 *     0  8  LSN of the commit (f64 LE)
 *     8  8  request id (f64 LE)
 *    16  8  LSN of the same client's previous kept reply, 0 when there is none (f64 LE)
 *    24  2  client id bytes (u16 LE)
 *    26  n  client id (UTF-8)
 *  26+n  1  0: a reply follows, 1: an error follows
 *  27+n     the reply or the error (msgpack)
 */
import { assert } from '../wal/assert.js';
import type { SerializedError } from '../wal/errors.js';
import { decodePayload, encodePayload } from '../wal/format.js';

export interface ReplyHeader {
  lsn: number;
  requestId: number;
  /** The chain link: the client's reply kept before this one (see `reply-table.ts`). */
  previousLsn: number;
  clientId: string;
}

export interface StoredReply extends ReplyHeader {
  reply?: unknown;
  error?: SerializedError;
}

const fixedBytes = 26;
const outcomeKind = { reply: 0, error: 1 } as const;

export function encodeStoredReply(stored: StoredReply): Buffer {
  const clientId = Buffer.from(stored.clientId, 'utf8');
  assert(clientId.length <= 0xffff, `a client id of ${clientId.length} bytes does not fit a stored reply`);
  const value = encodePayload(stored.error !== undefined ? stored.error : (stored.reply ?? null));
  const bytes = Buffer.allocUnsafe(fixedBytes + clientId.length + 1 + value.length);
  bytes.writeDoubleLE(stored.lsn, 0);
  bytes.writeDoubleLE(stored.requestId, 8);
  bytes.writeDoubleLE(stored.previousLsn, 16);
  bytes.writeUInt16LE(clientId.length, 24);
  clientId.copy(bytes, fixedBytes);
  bytes[fixedBytes + clientId.length] = stored.error !== undefined ? outcomeKind.error : outcomeKind.reply;
  value.copy(bytes, fixedBytes + clientId.length + 1);
  return bytes;
}

/**
 * A view of exactly the stored bytes. lmdb-js's `getBinaryFast` hands out its reused 16 MiB
 * buffer with `length` set to the value's size and `byteLength` left whole: `length` is the truth.
 */
function viewOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** The header alone (the bytes may be lmdb-js's reused buffer: nothing here keeps them). */
export function readReplyHeader(bytes: Uint8Array): ReplyHeader {
  const view = viewOf(bytes);
  assert(view.length > fixedBytes, `a stored reply of ${view.length} bytes is shorter than its header`);
  const clientIdBytes = view.readUInt16LE(24);
  assert(view.length > fixedBytes + clientIdBytes, `a stored reply of ${view.length} bytes cuts its client id of ${clientIdBytes}`);
  return {
    lsn: view.readDoubleLE(0),
    requestId: view.readDoubleLE(8),
    previousLsn: view.readDoubleLE(16),
    clientId: view.toString('utf8', fixedBytes, fixedBytes + clientIdBytes),
  };
}

export function decodeStoredReply(bytes: Uint8Array): StoredReply {
  const stored: StoredReply = readReplyHeader(bytes);
  const view = viewOf(bytes);
  const kindAt = fixedBytes + view.readUInt16LE(24);
  const kind = view[kindAt];
  assert(kind === outcomeKind.reply || kind === outcomeKind.error, `a stored reply of unknown kind ${String(kind)}`);
  // A copy: the value must not share memory with a buffer lmdb-js reuses for the next read.
  const value = decodePayload(Uint8Array.prototype.slice.call(view, kindAt + 1));
  if (kind === outcomeKind.error) stored.error = value as SerializedError;
  else stored.reply = value;
  return stored;
}

/**
 * Every fixed limit of the replication layer, in one place, with its unit in its name. The
 * relations between them are checked when this module loads: a change that breaks one fails at
 * the first import, not under load in production.
 *
 * Limits an operator may change are node or client options (`options.ts`, `client.ts`); these
 * are the ones the code relies on staying put.
 */
import { assert } from '../wal/assert.js';

const mebibyte = 1024 * 1024;

// ---------------------------------------------------------------- wire

/** Largest frame accepted or sent, unless `frameBytesMax` says otherwise. @default 16 MiB */
export const frameBytesMaxDefault = 16 * mebibyte;
/**
 * Frame bytes one `records` message carries at most. Well under `frameBytesMaxDefault`, so the
 * msgpack framing around them always fits.
 */
export const recordsMessageBytesMax = 4 * mebibyte;
/** Characters in any string field of a message (ids, addresses, error messages). */
export const messageStringLengthMax = 4096;
/** Bytes in a nonce or proof field of the handshake. */
export const handshakeFieldBytesMax = 1024;
/** Client-facing addresses one node may announce in its peer state. */
export const peerAddressesMax = 16;

// ---------------------------------------------------------------- connections

/** Bytes queued for a slow reader before the connection is dropped (`BUSY`). */
export const sendBufferBytesMax = 64 * mebibyte;
/**
 * Bytes queued on a peer link before the catch-up pump waits for it to drain. Below
 * `sendBufferBytesMax` by more than one `records` message, or the pump itself would get its
 * link dropped as a slow reader.
 */
export const catchUpQueueBytesMax = 8 * mebibyte;
/** First wait before a peer is dialed again after a failed attempt. */
export const dialBackoffMsMin = 50;
/** Longest wait between two dial attempts to a peer (the wait doubles up to it). */
export const dialBackoffMsMax = 1000;
/**
 * Peer links a node accepts (its own dials add one per peer address). A live peer holds one per
 * listen address, and a dead one's links go within `heartbeatTimeoutMs`; past it an incoming
 * peer link is refused (`BUSY`), so a peer that dials in a loop cannot pile links up.
 */
export const acceptedPeerLinksMax = 64;

// ---------------------------------------------------------------- backup

/** Replication messages a backup holds while it cuts its log; past it the link is dropped. */
export const deferredMessagesMax = 4096;
/** Commits waiting for re-execution on a backup; past it checks are skipped (and counted). */
export const verifyQueueMax = 10_000;
/** Divergences kept for `status` (the violation count covers all of them). */
export const violationsKeptMax = 100;

// ---------------------------------------------------------------- clients

/** How long a `readAll` may wait for new events (subscriptions long-poll). */
export const readWaitMsMax = 30_000;
/**
 * Events one page of a network read (iterated) or subscription asks for: what a client holds
 * of a read at once, whatever its length.
 */
export const readPageEventsMax = 512;
/**
 * Events the promise form of a filtered network `readAll` returns at most (the embedded store's
 * `readEventsMax` default): the client gathers them page by page, as the store would.
 */
export const filteredReadEventsMax = 4096;
/** How long a caught-up network subscription long-polls for each page. */
export const subscribeWaitMs = 1000;
/** First wait before a client dials the servers again after a round of failures. */
export const clientRetryDelayMsMin = 20;
/** Longest wait between two rounds of client dials. */
export const clientRetryDelayMsMax = 500;
/** Wait before a client resends a request refused for now (`BUSY`, `REPLICA_UNAVAILABLE`). */
export const clientBusyRetryDelayMs = 50;

// ---------------------------------------------------------------- relations

assert(recordsMessageBytesMax + mebibyte <= frameBytesMaxDefault, 'a records message must fit in a frame, with room for its framing');
assert(catchUpQueueBytesMax >= recordsMessageBytesMax, 'the catch-up queue must hold at least one records message');
assert(
  catchUpQueueBytesMax + frameBytesMaxDefault <= sendBufferBytesMax,
  'the catch-up pump must stop before a peer link counts as a slow reader',
);
assert(0 < dialBackoffMsMin && dialBackoffMsMin <= dialBackoffMsMax, 'dial backoff bounds must be ordered');
assert(0 < clientRetryDelayMsMin && clientRetryDelayMsMin <= clientRetryDelayMsMax, 'client retry bounds must be ordered');
assert(subscribeWaitMs <= readWaitMsMax, 'a subscription may not ask to wait longer than a read may');
assert(0 < readPageEventsMax && readPageEventsMax <= filteredReadEventsMax, 'a page of a read is within what its promise form returns');
assert(violationsKeptMax >= 1 && violationsKeptMax <= verifyQueueMax, 'status keeps at least the last violation');
assert(peerAddressesMax >= 1, 'a peer announces at least one address');
assert(acceptedPeerLinksMax >= peerAddressesMax, 'a node accepts a link on every address a peer may announce');

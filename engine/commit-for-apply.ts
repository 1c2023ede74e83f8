/**
 * What the state's apply takes from a commit record: who committed it, where its events go,
 * each event's bytes and the outcome's bytes, as they will be stored (`stored-event.ts`,
 * `stored-reply.ts`). Two ways in:
 * - `commitForApply`, from a record in memory (decoded already): each event and the outcome
 *   packed once. (A primary's own records carry views of the bytes it packed instead:
 *   `encodeCommitForApply`.)
 * - `readCommitForApply`, from a record's bytes (recovery, and a backup's apply, which runs
 *   before anything decodes the record): the few fields read and the rest sliced out of the
 *   bytes with `wal/msgpack-cursor.ts`, so nothing is decoded into objects and nothing is
 *   packed again.
 * All give the same stored bytes for a record this version wrote (the commit record's events
 * and outcome are packed by the same writer as `encodePayload`; test/engine/commit-for-apply.test.ts);
 * for one an older version wrote, recovery and a backup store the bytes it holds, which decode
 * to the same values.
 */
import { assert, assertionFailed } from '../wal/assert.js';
import { MsgpackCursor } from '../wal/msgpack-cursor.js';
import type { ApplicableRecord, CommitForApply, CommitPayload, WriteForApply } from './records.js';

const nilBytes = Uint8Array.of(0xc0);

export function commitForApply(commit: CommitPayload): CommitForApply {
  const failed = commit.error !== undefined;
  return {
    clientId: commit.clientId,
    requestId: commit.requestId,
    calls: commit.calls,
    firstPosition: commit.firstPosition,
    createdAtMs: commit.createdAtMs,
    // The events are packed when stored, each inside its stored form (`stored-event.ts`).
    writes: commit.events,
    failed,
    outcome: undefined,
    outcomeValue: failed ? commit.error : (commit.reply ?? null),
  };
}

const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');
const commitKeys = ['clientId', 'requestId', 'calls', 'firstPosition', 'createdAtMs', 'events', 'reply', 'error'].map(utf8);
const [clientIdKey, requestIdKey, callsKey, firstPositionKey, createdAtMsKey, eventsKey, replyKey, errorKey] = commitKeys.map((_, index) => index);
const writeKeys = ['stream', 'firstVersion', 'events'].map(utf8);
const [streamKey, firstVersionKey, writeEventsKey] = writeKeys.map((_, index) => index);

/** The commit record whose payload is `bytes`, as the apply takes it. */
export function readCommitForApply(bytes: Uint8Array): CommitForApply {
  const cursor = new MsgpackCursor(bytes);
  const commit: CommitForApply = { clientId: '', requestId: 0, calls: 0, firstPosition: 0, createdAtMs: undefined, writes: [], failed: false, outcome: nilBytes };
  let reply: Uint8Array | undefined;
  let error: Uint8Array | undefined;
  const fields = cursor.mapHeader();
  assert(fields !== undefined, 'a commit record is not a map');
  for (let field = 0; field < fields; field++) {
    const key = cursor.key(commitKeys);
    assert(key !== undefined, 'a commit record has a key that is not a string');
    if (key === clientIdKey) commit.clientId = checked(cursor.string(), 'clientId');
    else if (key === requestIdKey) commit.requestId = checked(cursor.number(), 'requestId');
    else if (key === callsKey) commit.calls = checked(cursor.number(), 'calls');
    else if (key === firstPositionKey) commit.firstPosition = checked(cursor.number(), 'firstPosition');
    else if (key === createdAtMsKey) commit.createdAtMs = cursor.nil() ? undefined : checked(cursor.number(), 'createdAtMs');
    else if (key === eventsKey) commit.writes = readWrites(cursor);
    else if (key === replyKey) reply = cursor.slice();
    else if (key === errorKey) error = cursor.slice();
    else cursor.skip();
  }
  assert(cursor.atEnd, 'a commit record has bytes after its map');
  // As `commitForApply` reads the decoded record: an error but undefined is the outcome, and
  // a reply undefined or absent is nil.
  if (error !== undefined && !isUndefined(error)) {
    commit.failed = true;
    commit.outcome = error;
  } else if (reply !== undefined && !isUndefined(reply)) {
    commit.outcome = reply;
  }
  return commit;
}

/** msgpackr's undefined (fixext 1 of type 0), which decodes as a missing field does. */
function isUndefined(bytes: Uint8Array): boolean {
  return bytes.length === 3 && bytes[0] === 0xd4 && bytes[1] === 0 && bytes[2] === 0;
}

function readWrites(cursor: MsgpackCursor): WriteForApply[] {
  const count = cursor.arrayHeader();
  assert(count !== undefined, "a commit record's events are not an array");
  const writes: WriteForApply[] = [];
  for (let index = 0; index < count; index++) {
    const fields = cursor.mapHeader();
    assert(fields !== undefined, "a commit record's stream write is not a map");
    const write: WriteForApply = { stream: '', firstVersion: 0, events: [] };
    for (let field = 0; field < fields; field++) {
      const key = cursor.key(writeKeys);
      assert(key !== undefined, "a commit record's stream write has a key that is not a string");
      if (key === streamKey) write.stream = checked(cursor.string(), 'stream');
      else if (key === firstVersionKey) write.firstVersion = checked(cursor.number(), 'firstVersion');
      else if (key === writeEventsKey) write.events = readEvents(cursor);
      else cursor.skip();
    }
    writes.push(write);
  }
  return writes;
}

function readEvents(cursor: MsgpackCursor): Uint8Array[] {
  const count = cursor.arrayHeader();
  assert(count !== undefined, "a commit record's events of a stream are not an array");
  const events: Uint8Array[] = [];
  for (let index = 0; index < count; index++) events.push(cursor.slice());
  return events;
}

function checked<T>(value: T | undefined, field: string): T {
  if (value === undefined) assertionFailed(`a commit record's ${field} has an unexpected type`);
  return value;
}

/** A record this store packed, with the apply's view of it (`encodeCommitForApply`). */
export class PackedRecord implements ApplicableRecord {
  constructor(
    readonly lsn: number,
    readonly type: number,
    readonly payload: unknown,
    private readonly forApply: CommitForApply,
  ) {}

  commitForApply(): CommitForApply {
    return this.forApply;
  }
}

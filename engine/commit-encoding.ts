/**
 * Packs a commit record as `encodePayload` would (the WAL's plain msgpack), with call sites that
 * each see one kind of object: the record, a stream write, an event, the number lists and the
 * [name, number] pairs (`wal/plain-msgpack.ts` says why that matters in a running node). The args
 * are not packed again: they were packed when the request was checked (`CheckedRequest.packedArgs`),
 * and those bytes, which decode to the recorded args (they are what the args were decoded from,
 * or their packing), go in as they are. A field of an unexpected type, or one this code does not
 * know, is written as `encodePayload` writes it, so with the args' own packing the bytes are
 * `encodePayload`'s whatever the record holds (test/engine/commit-encoding.test.ts).
 */
import { encodePayloadWith } from '../wal/format.js';
import { isPlainArray, isPlainObject, packedSoFar, writeArrayHeader, writeBytes, writeNumber, writeObject, writeString, writeValue } from '../wal/plain-msgpack.js';
import type { CommitForApply, CommitPayload, EventInput, StreamWrite, WriteForApply } from './records.js';

/** Packs `payload`; `packedArgs` are the bytes of `payload.args`, or undefined to pack them here. */
export function encodeCommit(payload: CommitPayload, packedArgs: Uint8Array | undefined): Buffer {
  argsBytes = packedArgs;
  try {
    return encodePayloadWith(payload, writeCommit);
  } finally {
    argsBytes = undefined;
  }
}

/**
 * `encodeCommit`, and the commit as the state's apply takes it, its events and outcome as views
 * of the packed record: what `commitForApply(payload)` gives by packing them again.
 */
export function encodeCommitForApply(payload: CommitPayload, packedArgs: Uint8Array | undefined): { packed: Buffer; forApply: CommitForApply | undefined } {
  eventRanges = rangesScratch;
  eventRanges.length = 0;
  outcomeFrom = -1;
  outcomeTo = -1;
  outcomeKey = payload.error !== undefined ? 'error' : 'reply';
  try {
    const packed = encodeCommit(payload, packedArgs);
    return { packed, forApply: forApplyOf(payload, packed, eventRanges) };
  } finally {
    eventRanges = undefined;
  }
}

/** The args' bytes of the record being packed (undefined: pack them). */
let argsBytes: Uint8Array | undefined;
/** Where each event written lies in the record, as [from, to) pairs, when asked for (`encodeCommitForApply`). */
let eventRanges: number[] | undefined;
/** The array `eventRanges` is, reused from record to record. */
const rangesScratch: number[] = [];
/** The field that holds the outcome (the error when there is one), and where it lies, when asked for (-1: not written). */
let outcomeKey: 'reply' | 'error' = 'reply';
let outcomeFrom = -1;
let outcomeTo = -1;

/**
 * The apply's view of a record just packed, or undefined when the record's events were not all
 * written as events (a record of an unexpected shape: the apply then packs them itself).
 */
function forApplyOf(payload: CommitPayload, packed: Buffer, ranges: number[]): CommitForApply | undefined {
  if (!Array.isArray(payload.events)) return undefined;
  let next = 0;
  const writes: WriteForApply[] = [];
  for (const write of payload.events) {
    if (!Array.isArray(write.events) || next + 2 * write.events.length > ranges.length) return undefined;
    const events: Uint8Array[] = [];
    for (let index = 0; index < write.events.length; index++, next += 2) events.push(viewOf(packed, ranges[next]!, ranges[next + 1]!));
    writes.push({ stream: write.stream, firstVersion: write.firstVersion, events });
  }
  if (next !== ranges.length) return undefined;
  const failed = payload.error !== undefined;
  // As `commitForApply`: a reply undefined is nil.
  const bytes = !failed && payload.reply === undefined ? nilBytes : outcomeFrom < 0 ? undefined : viewOf(packed, outcomeFrom, outcomeTo);
  if (bytes === undefined) return undefined;
  return { clientId: payload.clientId, requestId: payload.requestId, calls: payload.calls, firstPosition: payload.firstPosition, createdAtMs: payload.createdAtMs, writes, failed, outcome: bytes };
}

const nilBytes = Uint8Array.of(0xc0);

/** `bytes[from..to)` as a plain Uint8Array: lighter than a Buffer's `subarray`, and held until the record is applied. */
function viewOf(bytes: Buffer, from: number, to: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + from, to - from);
}

function writeCommit(payload: unknown): void {
  writeFields(payload, writeCommitField);
}

/** A plain object as a map, each value written by `writeField`; anything else as `writeValue` writes it. */
function writeFields(object: unknown, writeField: (key: string, value: unknown) => void): void {
  if (isPlainObject(object)) writeObject(object, 0, writeField);
  else writeValue(object);
}

function writeCommitField(key: string, value: unknown): void {
  switch (key as keyof CommitPayload) {
    case 'clientId':
    case 'command':
    case 'digest':
    case 'requestId':
    case 'firstPosition':
    case 'calls':
    case 'createdAtMs':
      return writeScalar(value);
    case 'args':
      return argsBytes === undefined ? writeValue(value) : writeBytes(argsBytes);
    case 'reply':
    case 'error': {
      const from = packedSoFar();
      writeValue(value);
      if (eventRanges === undefined || key !== outcomeKey) return;
      outcomeFrom = from;
      outcomeTo = packedSoFar();
      return;
    }
    case 'events':
      return writeList(value, writeStreamWrite);
    case 'now':
    case 'random':
    case 'callLsns':
      return writeList(value, writeScalar);
    case 'readSet':
    case 'checks':
      return writeList(value, writePair);
    default:
      return writeValue(value);
  }
}

function writeList(value: unknown, writeItem: (item: unknown) => void): void {
  if (!isPlainArray(value)) return writeValue(value);
  writeArrayHeader(value.length);
  for (const item of value as unknown[]) writeItem(item);
}

function writeStreamWrite(write: unknown): void {
  writeFields(write, writeStreamWriteField);
}

function writeStreamWriteField(key: string, value: unknown): void {
  if ((key as keyof StreamWrite) === 'events') writeList(value, writeEvent);
  else writeScalar(value);
}

function writeEvent(event: unknown): void {
  const from = packedSoFar();
  writeFields(event, writeEventField);
  eventRanges?.push(from, packedSoFar());
}

function writeEventField(key: string, value: unknown): void {
  const field = key as keyof EventInput;
  if (field === 'id' || field === 'type') writeScalar(value);
  else writeValue(value);
}

/** A `[name, number]` pair: the read set's and the checks'. */
function writePair(pair: unknown): void {
  if (!isPlainArray(pair) || pair.length !== 2) return writeValue(pair);
  writeArrayHeader(2);
  writeScalar(pair[0]);
  writeScalar(pair[1]);
}

/** A string or a number written here; a value of another type as `writeValue` writes it. */
function writeScalar(value: unknown): void {
  if (typeof value === 'string') writeString(value);
  else if (typeof value === 'number') writeNumber(value);
  else writeValue(value);
}

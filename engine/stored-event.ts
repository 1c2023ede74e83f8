/**
 * How the state keeps an event (layout 2): the bytes of `[stream, version, createdAtMs | null,
 * event]` in our own plain msgpack, where `event` is the map the commit record holds (`id`,
 * `type`, `data`, `metadata`): copied as bytes where the apply has them (views of the record a
 * primary packed, or of one recovery read: `commit-for-apply.ts`), else packed here from the
 * decoded event; never as an object through lmdb-js's encoder.
 */
import { decodePayload, encodePayload, encodePayloadWith } from '../wal/format.js';
import { writeArrayHeader, writeBytes, writeNumber, writeString, writeValue } from '../wal/plain-msgpack.js';
import { derivedEventId } from './event-ids.js';
import type { EventInput } from './records.js';
import type { RecordedEvent } from './service.js';

/**
 * The stored bytes of an event, given as its map's msgpack bytes or as the event: what
 * `encodePayload` gives for `[stream, version, createdAtMs | null, event]` either way.
 */
export function encodeStoredEvent(stream: string, version: number, createdAtMs: number | undefined, event: Uint8Array | EventInput): Buffer {
  if (!(event instanceof Uint8Array)) return encodePayload([stream, version, createdAtMs ?? null, event]);
  storedStream = stream;
  storedVersion = version;
  storedCreatedAtMs = createdAtMs;
  storedEventBytes = event;
  try {
    // Packed from the module's state (no closure per event), so what a reentrant pack would
    // fall back to is nothing: an apply never runs inside a pack.
    return encodePayloadWith(undefined, writeStoredEvent);
  } finally {
    storedEventBytes = undefined;
  }
}

// The event being encoded, for the hoisted writer.
let storedStream = '';
let storedVersion = 0;
let storedCreatedAtMs: number | undefined;
let storedEventBytes: Uint8Array | undefined;

function writeStoredEvent(): void {
  writeArrayHeader(4);
  writeString(storedStream);
  writeNumber(storedVersion);
  writeValue(storedCreatedAtMs ?? null);
  writeBytes(storedEventBytes!);
}

export function decodeStoredEvent(position: number, bytes: Uint8Array): RecordedEvent {
  const [stream, version, createdAtMs, event] = decodePayload(bytes) as [string, number, number | null, EventInput];
  const recorded: RecordedEvent = {
    stream,
    version,
    position,
    // Events committed before event ids have none in the log: derived, the same on every node.
    id: event.id ?? derivedEventId(stream, version),
    type: event.type,
    data: event.data ?? null,
  };
  if (event.metadata !== undefined) recorded.metadata = event.metadata;
  if (createdAtMs !== null) recorded.createdAt = new Date(createdAtMs);
  return recorded;
}

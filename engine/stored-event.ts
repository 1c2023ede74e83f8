/**
 * How the state keeps an event (layout 2): the bytes of `[stream, version, createdAtMs | null,
 * event]` in our own plain msgpack, where `event` is the map the commit record holds (`id`,
 * `type`, `data`, `metadata`), packed once here (not as an object through lmdb-js's encoder).
 */
import { decodePayload, encodePayload } from '../wal/format.js';
import { derivedEventId } from './event-ids.js';
import type { EventInput } from './records.js';
import type { RecordedEvent } from './service.js';

export function encodeStoredEvent(stream: string, version: number, createdAtMs: number | undefined, event: EventInput): Buffer {
  return encodePayload([stream, version, createdAtMs ?? null, event]);
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

/**
 * Event identity: every event has a UUID. The caller may give one; otherwise the primary draws
 * one when it assembles the commit and writes it into the commit record, outside the outcome's
 * digest, so the backup's re-execution and `txlog replay` compare the same digest whether or not
 * ids were drawn, and every node applies the ids the record carries (nothing is drawn twice).
 *
 * Events written before ids existed have none in the log: reads give them an id derived from
 * their stream and version, the same on every node and every rebuild.
 */
import { createHash } from 'node:crypto';
import { txlogError } from '../wal/errors.js';
import type { Random } from '../wal/platform.js';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A caller's event id, checked and in canonical (lower-case) form. */
export function checkedEventId(value: unknown, stream: string): string {
  const id = typeof value === 'string' ? value.toLowerCase() : undefined;
  if (id === undefined || !uuidPattern.test(id)) {
    throw txlogError('BAD_REQUEST', `append to ${stream}: an event id must be a UUID (8-4-4-4-12 hexadecimal digits)`);
  }
  return id;
}

/** Random bytes drawn per block of ids: one draw from the platform per 64 events, not per event. */
const idsPerDraw = 64;

/**
 * Draws random (version 4) UUIDs from the platform's randomness, 64 ids' worth at a time (a
 * draw costs a system call; an id is 16 bytes of it). The same seed gives the same ids.
 */
export class EventIdSource {
  private pool = Buffer.alloc(0);
  private offset = 0;

  constructor(private readonly random: Random) {}

  next(): string {
    if (this.offset === this.pool.length) {
      this.pool = Buffer.from(this.random.bytes(16 * idsPerDraw));
      this.offset = 0;
    }
    const bytes = this.pool.subarray(this.offset, this.offset + 16);
    this.offset += 16;
    bytes[6] = (bytes[6]! & 0x0f) | 0x40;
    bytes[8] = (bytes[8]! & 0x3f) | 0x80;
    return uuidOf(bytes);
  }
}

/**
 * The id of an event committed before event ids existed: a version 8 (custom) UUID from a
 * SHA-256 of its stream and version, which never change once written.
 */
export function derivedEventId(stream: string, version: number): string {
  const bytes = createHash('sha256').update(`txlog-event\u0000${stream}\u0000${version}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return uuidOf(bytes);
}

function uuidOf(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

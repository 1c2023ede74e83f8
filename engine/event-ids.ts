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
    const at = this.offset;
    this.offset += 16;
    this.pool[at + 6] = (this.pool[at + 6]! & 0x0f) | 0x40;
    this.pool[at + 8] = (this.pool[at + 8]! & 0x3f) | 0x80;
    return uuidAt(this.pool, at);
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
  return uuidAt(bytes, 0);
}

const hexDigits = Buffer.from('0123456789abcdef', 'latin1');
/** Where a UUID's 36 characters are written before they become a string (one string, no parts). */
const uuidScratch = Buffer.alloc(36);

/** The canonical (lower-case, 8-4-4-4-12) form of the 16 bytes at `offset`. */
function uuidAt(bytes: Buffer, offset: number): string {
  let at = 0;
  for (let index = 0; index < 16; index++) {
    if (index === 4 || index === 6 || index === 8 || index === 10) uuidScratch[at++] = 0x2d;
    const byte = bytes[offset + index]!;
    uuidScratch[at++] = hexDigits[byte >> 4]!;
    uuidScratch[at++] = hexDigits[byte & 0x0f]!;
  }
  return uuidScratch.toString('latin1', 0, 36);
}

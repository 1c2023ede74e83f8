/**
 * Values that cross the WAL and the wire (args, replies, event data, call results) must survive
 * msgpack unchanged, or a re-execution would see something else than the primary did. msgpackr
 * silently drops functions and turns Maps into objects, so we check shapes ourselves first.
 */
import { createHash } from 'node:crypto';
import { txlogError, type TxlogError } from '../wal/errors.js';
import { encodePayload } from '../wal/format.js';

const depthMax = 64;

/** Returns a description of the first value msgpack cannot carry faithfully, or undefined. */
export function unserializablePart(value: unknown, depth = 0, path = '$'): string | undefined {
  if (depth > depthMax) return `${path}: nested deeper than ${depthMax}`;
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'number':
    case 'string':
    case 'bigint':
      return undefined;
    case 'function':
    case 'symbol':
      return `${path}: a ${typeof value}`;
    case 'object':
      break;
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array) return undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const problem = unserializablePart(value[index], depth + 1, `${path}[${index}]`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) {
    return `${path}: an instance of ${(value as object).constructor?.name ?? 'a class'} (only plain objects)`;
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const problem = unserializablePart(item, depth + 1, `${path}.${key}`);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * Packs a value after checking it; fails with `NOT_SERIALIZABLE` or `TOO_LARGE` (past
 * `bytesMax`), naming `what`.
 */
export function packChecked(value: unknown, bytesMax: number, what: string): Buffer {
  const problem = unserializablePart(value);
  if (problem !== undefined) throw txlogError('NOT_SERIALIZABLE', `${what} cannot be stored: ${problem}`);
  let packed: Buffer;
  try {
    packed = encodePayload(value);
  } catch (error) {
    throw txlogError('NOT_SERIALIZABLE', `${what} cannot be encoded as msgpack`, {}, error);
  }
  if (packed.length > bytesMax) {
    throw txlogError('TOO_LARGE', `${what} is ${packed.length} bytes, more than ${bytesMax}`, {
      sizeBytes: packed.length,
      limitBytes: bytesMax,
    });
  }
  return packed;
}

export function checkedError(error: unknown): TxlogError | undefined {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'TxlogError'
    ? (error as TxlogError)
    : undefined;
}

/** A short hex digest of a value's msgpack encoding: equal outcomes give equal digests. */
export function digestOf(value: unknown): string {
  return createHash('sha256').update(encodePayload(value)).digest('hex').slice(0, 32);
}

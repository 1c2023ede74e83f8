/**
 * Values that cross the WAL and the wire (args, replies, event data, call results) must survive
 * msgpack unchanged, or a re-execution would see something else than the primary did. msgpackr
 * silently drops functions and turns Maps into objects, so we check shapes ourselves first.
 */
import { createHash, hash } from 'node:crypto';
import { txlogError, type TxlogError } from '../wal/errors.js';
import { decodePayload, encodePayload } from '../wal/format.js';

const depthMax = 64;

/** Returns a description of the first value msgpack cannot carry faithfully, or undefined. */
export function unserializablePart(value: unknown): string | undefined {
  const problem = problemIn(value, 0);
  return problem === undefined ? undefined : `$${problem.path}: ${problem.what}`;
}

/**
 * The first problem under `value`, its path relative to `value`. The path is built on the way
 * back from a problem, not on the way down: this walks every value of every commit, and a path
 * string per value was garbage nobody read.
 */
function problemIn(value: unknown, depth: number): { path: string; what: string } | undefined {
  if (depth > depthMax) return { path: '', what: `nested deeper than ${depthMax}` };
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'number':
    case 'bigint':
      return undefined;
    case 'string':
      // msgpack writes UTF-8: a lone surrogate would come back as U+FFFD, another string.
      return (value as string).isWellFormed() ? undefined : { path: '', what: 'a string that is not well-formed Unicode (a lone surrogate)' };
    case 'function':
    case 'symbol':
      return { path: '', what: `a ${typeof value}` };
    case 'object':
      break;
  }
  if (value === null || value instanceof Date || value instanceof Uint8Array) return undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const problem = problemIn(value[index], depth + 1);
      if (problem !== undefined) {
        problem.path = `[${index}]${problem.path}`;
        return problem;
      }
    }
    return undefined;
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) {
    return { path: '', what: `an instance of ${(value as object).constructor?.name ?? 'a class'} (only plain objects)` };
  }
  // `for...in` with an own-key check visits what `Object.entries` would, in the same order,
  // without an array of pairs per object.
  const record = value as Record<string, unknown>;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    // msgpackr renames an own `__proto__` key when it decodes (a guard against prototype
    // pollution), so the value would not come back as it was written.
    if (key === '__proto__') return { path: '', what: 'an own __proto__ key' };
    if (!key.isWellFormed()) return { path: '', what: 'a key that is not well-formed Unicode (a lone surrogate)' };
    const problem = problemIn(record[key], depth + 1);
    if (problem !== undefined) {
      problem.path = `.${key}${problem.path}`;
      return problem;
    }
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

/**
 * A value as it will be recorded: checked, packed once, and decoded back into a private copy.
 * Whatever the caller or a handler does to the original afterwards (mutating args, growing an
 * event after `ctx.append`) changes neither the recorded bytes nor what this node applies, and
 * the size limit holds for the bytes that are written.
 */
export function snapshotChecked<T>(value: T, bytesMax: number, what: string): { value: T; packed: Buffer } {
  const packed = packChecked(value, bytesMax, what);
  return { value: decodePayload(packed) as T, packed };
}

/** A name that becomes a key (stream, client id, command, event type, call name) must survive UTF-8. */
export function isWellFormedName(value: unknown, lengthMax: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= lengthMax && value.isWellFormed();
}

export function checkedError(error: unknown): TxlogError | undefined {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'TxlogError'
    ? (error as TxlogError)
    : undefined;
}

/** A short hex digest of a value's msgpack encoding: equal outcomes give equal digests. */
export function digestOf(value: unknown): string {
  // The one-shot hash: the same digest as a Hash object's, at half its cost per commit.
  return hash('sha256', encodePayload(value), 'hex').slice(0, 32);
}

/**
 * What identifies a request's content, binding its journaled calls to it: the command and the
 * bytes its args were recorded as. Computed only for requests that make calls.
 */
export function requestDigestOf(command: string, packedArgs: Uint8Array): string {
  return createHash('sha256').update(command).update('\u0000').update(packedArgs).digest('hex').slice(0, 32);
}

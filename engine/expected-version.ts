/**
 * Expected versions: what a write (or a check) requires of a stream's head when the transaction
 * commits. Callers say it by name or by number; the commit record keeps a number, so a log reads
 * the same whichever form the caller used.
 */
import { txlogError } from '../wal/errors.js';

/**
 * - a version `n` (>= 0): the stream's last version must be `n`;
 * - `'no_stream'` or `-1`: the stream must not exist;
 * - `'stream_exists'` (alias `'exists'`): the stream must have at least one event;
 * - `'any'` (or omitted): no requirement.
 */
export type ExpectedVersion = number | 'no_stream' | 'stream_exists' | 'exists' | 'any';

/** How a commit record stores `'stream_exists'` (numbers below -1 are otherwise never valid). */
export const streamExistsVersion = -2;

/** The recorded form: a number, or undefined for "any". Throws BAD_REQUEST for anything else. */
export function recordedExpectedVersion(value: unknown, stream: string): number | undefined {
  switch (value) {
    case undefined:
    case 'any':
      return undefined;
    case 'no_stream':
      return -1;
    case 'stream_exists':
    case 'exists':
      return streamExistsVersion;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= -1) return value;
  throw txlogError('BAD_REQUEST', `${stream}: expectedVersion must be a version (an integer >= -1), 'no_stream', 'stream_exists', 'exists' or 'any'`);
}

/** Whether a stream whose last version is `head` (-1: missing) meets a recorded expectation. */
export function expectationMet(expected: number, head: number): boolean {
  return expected === streamExistsVersion ? head >= 0 : expected === head;
}

/**
 * A recorded expectation for messages and error details: `'stream_exists'` by name, versions
 * (and -1, as details always carried it) as numbers.
 */
export function expectedVersionName(expected: number): ExpectedVersion {
  return expected === streamExistsVersion ? 'stream_exists' : expected;
}

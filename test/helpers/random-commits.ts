/**
 * Random and edge-case commit records for the tests of what packs and reads them
 * (test/engine/commit-encoding.test.ts, test/engine/commit-for-apply.test.ts): strings of every
 * msgpack header size and of any Unicode (lone surrogates included), numbers at every encoding's
 * edges, values msgpackr alone writes, failures, checks and calls.
 */
import type { CommitPayload, EventInput, StreamWrite } from '../../engine/records.js';
import type { SeededRandom } from './random.js';

export function base(overrides: Partial<CommitPayload> = {}): CommitPayload {
  return {
    clientId: 'client-1',
    requestId: 7,
    command: 'append',
    args: { stream: 'orders-1', events: [{ type: 'Placed', data: { total: 12.5 } }] },
    events: [],
    firstPosition: 0,
    now: [],
    random: [],
    readSet: [],
    calls: 0,
    digest: '5e52e460e966ab39306e5ec96a3941fd',
    ...overrides,
  };
}

/** Edge values of every number encoding msgpackr chooses between. */
export const edgeNumbers = [
  0, -0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER,
  -1, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -0x8000_0000, -0x8000_0001, Number.MIN_SAFE_INTEGER,
  0.5, -2.25, 1e300, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1796301072182,
];

/** Strings around every header size, in one, two, three and four UTF-8 bytes per character, and broken UTF-16. */
export function edgeStrings(): string[] {
  const strings = ['', 'a', '\u00e9', '\u20ac', '\u{1f600}', '\ud800', 'x\udc00y', '\ud83d'];
  for (const length of [31, 32, 63, 64, 65, 255, 256, 65535, 65536]) {
    strings.push('x'.repeat(length), '\u00e9'.repeat(length), `${'x'.repeat(length - 1)}\u20ac`);
  }
  // 11 characters but 33 bytes: the header guessed from the length is too small.
  strings.push('\u20ac'.repeat(11), '\u20ac'.repeat(86), '\u20ac'.repeat(21846));
  return strings;
}

export function randomString(random: SeededRandom): string {
  const alphabet = ['a', 'Z', '0', '-', '\u00e9', '\u4e2d', '\u{1f600}', '\ud800', '\u0000', ' '];
  const length = random.pick([0, 1, 5, 31, 32, 40, 63, 64, 70, 255, 256, 300]);
  let text = '';
  for (let index = 0; index < length; index++) text += random.pick(alphabet);
  return text;
}

export function randomValue(random: SeededRandom, depth: number): unknown {
  switch (random.integer(0, depth > 2 ? 3 : 6)) {
    case 0:
      return random.pick(edgeNumbers);
    case 1:
      return randomString(random);
    case 2:
      return random.pick([null, true, false]);
    case 3:
      return random.integer(-1000, 1000);
    case 4:
      return Array.from({ length: random.integer(0, 4) }, () => randomValue(random, depth + 1));
    case 5:
      return Buffer.from([1, 2, 3]);
    default: {
      const value: Record<string, unknown> = {};
      for (let index = random.integer(0, 5); index > 0; index--) value[randomString(random)] = randomValue(random, depth + 1);
      return value;
    }
  }
}

export function randomEvent(random: SeededRandom): EventInput {
  const event: Record<string, unknown> = {};
  if (random.float() < 0.7) event['id'] = '6a48e987-17cb-4235-b5d2-7f7834eac20b';
  event['type'] = randomString(random) || 'T';
  if (random.float() < 0.8) event['data'] = randomValue(random, 0);
  if (random.float() < 0.3) event['metadata'] = { correlationId: randomString(random) };
  if (random.float() < 0.1) event['extra'] = randomValue(random, 0);
  return event as unknown as EventInput;
}

export function randomWrite(random: SeededRandom): StreamWrite {
  const write: StreamWrite = { stream: randomString(random) || 's', firstVersion: random.integer(0, 70000), events: [] };
  for (let index = random.integer(1, 18); index > 0; index--) write.events.push(randomEvent(random));
  if (random.float() < 0.3) write.expectedVersion = random.pick([-2, -1, 0, 5, 200, 70000]);
  return write;
}

export function randomCommit(random: SeededRandom): CommitPayload {
  const payload = base({
    clientId: randomString(random),
    requestId: random.pick(edgeNumbers.filter((number) => Number.isSafeInteger(number) && number >= 0)),
    command: randomString(random) || 'c',
    args: randomValue(random, 0),
    firstPosition: random.integer(0, 2 ** 40),
    now: Array.from({ length: random.integer(0, 3) }, () => random.pick(edgeNumbers)),
    random: Array.from({ length: random.integer(0, 20) }, () => random.float()),
    readSet: Array.from({ length: random.integer(0, 3) }, () => [randomString(random), random.integer(-1, 70000)] as [string, number]),
    calls: random.integer(0, 3),
  });
  if (random.float() < 0.3) payload.callLsns = Array.from({ length: payload.calls }, () => random.integer(1, 2 ** 33));
  if (random.float() < 0.2) payload.checks = [[randomString(random), random.pick([-2, -1, 3])]];
  if (random.float() < 0.2) {
    payload.error = { code: 'HANDLER_FAILED', message: randomString(random), retryable: false, details: {} } as unknown as NonNullable<CommitPayload['error']>;
    return payload;
  }
  payload.events = Array.from({ length: random.integer(0, 3) }, () => randomWrite(random));
  if (payload.events.length > 0) payload.createdAtMs = 1_796_301_072_182 + random.integer(0, 1000);
  payload.reply = randomValue(random, 0);
  return payload;
}

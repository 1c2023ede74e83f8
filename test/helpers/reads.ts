/**
 * What the embedded store's read tests and the network client's share: the history both read
 * (1,300 events on `long`, alternately `Even` and `Odd`, with `other-1` at position 600 and
 * `other-2` at 1301), collecting an iteration, ranges of versions or positions, and the abort
 * behaviour both must have (a rejection or an iteration stopped with the signal's reason).
 */
import { expect } from 'vitest';
import type { ReadAllOptions, ReadStreamOptions, RecordedEvent } from '../../engine/index.js';

interface Appender {
  append(stream: string, events: Array<{ type: string; data?: unknown }>): Promise<unknown>;
}

interface Reader {
  readStream(stream: string, options: ReadStreamOptions): PromiseLike<unknown> & AsyncIterable<RecordedEvent>;
  readAll(options: ReadAllOptions): PromiseLike<unknown> & AsyncIterable<RecordedEvent>;
}

export async function writeHistory(target: Appender): Promise<void> {
  const events = (from: number, count: number): Array<{ type: string; data: { index: number } }> =>
    Array.from({ length: count }, (_, index) => ({ type: (from + index) % 2 === 0 ? 'Even' : 'Odd', data: { index: from + index } }));
  await target.append('long', events(0, 600));
  await target.append('other-1', [{ type: 'Other' }]);
  await target.append('long', events(600, 700));
  await target.append('other-2', [{ type: 'Other' }]);
}

export async function collect(events: AsyncIterable<RecordedEvent>): Promise<RecordedEvent[]> {
  const collected: RecordedEvent[] = [];
  for await (const event of events) collected.push(event);
  return collected;
}

export const range = (from: number, to: number, step = 1): number[] => {
  const values: number[] = [];
  for (let value = from; step > 0 ? value <= to : value >= to; value += step) values.push(value);
  return values;
};

/** An aborted signal rejects both promise forms, and aborting mid-iteration stops it at once. */
export async function expectAbortsWithReason(reader: Reader): Promise<void> {
  const aborted = AbortSignal.abort();
  await expect(Promise.resolve(reader.readStream('long', { signal: aborted }))).rejects.toMatchObject({ name: 'AbortError' });
  await expect(Promise.resolve(reader.readAll({ signal: aborted }))).rejects.toMatchObject({ name: 'AbortError' });
  const controller = new AbortController();
  let seen = 0;
  const stopped = (async () => {
    for await (const _event of reader.readAll({ signal: controller.signal })) {
      seen += 1;
      if (seen === 10) controller.abort();
    }
  })();
  await expect(stopped).rejects.toMatchObject({ name: 'AbortError' });
  expect(seen).toBe(10);
}

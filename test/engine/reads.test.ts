/**
 * Proves the store's reads (engine/reads.ts): `readStream` and `readAll` iterate everything page
 * by page past `readEventsMax` (the promise form stays capped), forwards and backwards, from a
 * version or position or from `'end'`, with `maxCount`; `readAll` and `subscribe` filter by
 * stream prefix and event type; `subscribe` from `'end'` delivers only new events; an aborted
 * signal rejects a promise form and makes an iteration throw its reason; `readAllPage` (what a
 * network client pages and long-polls with) moves past what its filter passes over, forwards
 * and backwards (to -1 at the start of the log); bad options are BAD_REQUEST.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../engine/index.js';
import { openQuietStore } from '../helpers/store.js';
import { collect, expectAbortsWithReason, range, writeHistory } from '../helpers/reads.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-reads-');

/** 1,300 events on `long` (more than two 512-event pages) and one on `other-1`, `other-2` between. */
async function withHistory(run: (store: Store) => Promise<void>): Promise<void> {
  const { store } = await openQuietStore(newDir(), { readEventsMax: 100 });
  try {
    await writeHistory(store);
    await run(store);
  } finally {
    await store.close();
  }
}

describe('readStream', () => {
  it('iterates every event forwards and backwards, from a version or the end, with maxCount', () =>
    withHistory(async (store) => {
      expect((await collect(store.readStream('long'))).map((event) => event.version)).toEqual(range(0, 1299));
      expect((await collect(store.readStream('long', { direction: 'backwards' }))).map((event) => event.version)).toEqual(range(1299, 0, -1));
      expect((await collect(store.readStream('long', { fromVersion: 1000, maxCount: 5 }))).map((event) => event.version)).toEqual(range(1000, 1004));
      expect((await collect(store.readStream('long', { fromVersion: 700, direction: 'backwards', maxCount: 600 }))).map((event) => event.version)).toEqual(
        range(700, 101, -1),
      );
      expect((await collect(store.readStream('long', { fromVersion: 'end' }))).map((event) => event.version)).toEqual([1299]);
      expect(await collect(store.readStream('missing'))).toEqual([]);
      expect(await collect(store.readStream('missing', { direction: 'backwards' }))).toEqual([]);
      expect(await collect(store.readStream('long', { maxCount: 0 }))).toEqual([]);
    }));

  it('keeps the promise form: one page of at most readEventsMax, now also backwards', () =>
    withHistory(async (store) => {
      const page = await store.readStream('long', { fromVersion: 50 });
      expect(page.version).toBe(1299);
      expect(page.events.map((event) => event.version)).toEqual(range(50, 149));
      const last = await store.readStream('long', { direction: 'backwards', maxCount: 3 });
      expect(last.events.map((event) => event.version)).toEqual([1299, 1298, 1297]);
      expect(await store.readStream('missing')).toEqual({ version: -1, events: [] });
    }));
});

describe('readAll', () => {
  it('iterates the whole log both ways and from the end', () =>
    withHistory(async (store) => {
      const forwards = await collect(store.readAll());
      expect(forwards.map((event) => event.position)).toEqual(range(0, 1301));
      expect(forwards[600]?.stream).toBe('other-1');
      expect((await collect(store.readAll({ direction: 'backwards' }))).map((event) => event.position)).toEqual(range(1301, 0, -1));
      expect((await collect(store.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 2 }))).map((event) => event.stream)).toEqual(['other-2', 'long']);
      expect((await collect(store.readAll({ fromPosition: 'end' }))).map((event) => event.position)).toEqual([1301]);
      expect((await store.readAll({ fromPosition: 1290 })).map((event) => event.position)).toEqual(range(1290, 1301));
      expect((await store.readAll()).length).toBe(100);
    }));

  it('filters by stream prefix and event type, in the promise form too', () =>
    withHistory(async (store) => {
      expect((await collect(store.readAll({ filter: { streamPrefix: 'other-' } }))).map((event) => event.position)).toEqual([600, 1301]);
      expect((await store.readAll({ filter: { streamPrefix: ['other-2', 'nothing'] } })).map((event) => event.stream)).toEqual(['other-2']);
      const odd = await collect(store.readAll({ filter: { streamPrefix: 'long', eventTypes: ['Odd'] }, direction: 'backwards' }));
      expect(odd.length).toBe(650);
      expect(odd.every((event) => event.type === 'Odd' && event.stream === 'long')).toBe(true);
      expect((await store.readAll({ filter: { eventTypes: ['Even'] }, maxCount: 5 })).length).toBe(5);
      expect((await store.readAll({ filter: { eventTypes: ['Even'] } })).length).toBe(100);
    }));
});

describe('readAllPage', () => {
  it('returns the matches among the next readEventsMax events and where the next page starts', () =>
    withHistory(async (store) => {
      const first = await store.readAllPage({ filter: { streamPrefix: 'other-' } });
      expect(first).toEqual({ events: [], nextPosition: 100 });
      let next = 0;
      const found: number[] = [];
      for (let pages = 0; pages < 20; pages++) {
        const page = await store.readAllPage({ fromPosition: next, filter: { streamPrefix: 'other-' } });
        found.push(...page.events.map((event) => event.position));
        if (page.nextPosition === next) break;
        next = page.nextPosition;
      }
      expect(found).toEqual([600, 1301]);
      expect(next).toBe(1302);
      expect(await store.readAllPage({ fromPosition: 5, maxCount: 2 })).toMatchObject({ nextPosition: 7 });
      await expect(store.readAllPage({ fromPosition: -1 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    }));

  it('pages backwards from the end or a position, to -1 once position 0 was looked at', () =>
    withHistory(async (store) => {
      const last = await store.readAllPage({ fromPosition: 'end', direction: 'backwards', maxCount: 1 });
      expect(last).toMatchObject({ events: [{ position: 1301 }], nextPosition: 1300 });
      let next: number | 'end' = 'end';
      const found: number[] = [];
      for (let pages = 0; pages < 20 && next !== -1; pages++) {
        const page = await store.readAllPage({ fromPosition: next, direction: 'backwards', filter: { streamPrefix: 'other-' } });
        found.push(...page.events.map((event) => event.position));
        next = page.nextPosition;
      }
      expect(found).toEqual([1301, 600]);
      expect(next).toBe(-1);
      expect(await store.readAllPage({ fromPosition: 5000, direction: 'backwards', maxCount: 2 })).toMatchObject({ events: [{ position: 1301 }, { position: 1300 }], nextPosition: 1299 });
      const { store: empty } = await openQuietStore(newDir());
      try {
        expect(await empty.readAllPage({ fromPosition: 7, direction: 'backwards' })).toEqual({ events: [], nextPosition: -1 });
        expect(await empty.readAllPage({ fromPosition: 'end' })).toEqual({ events: [], nextPosition: 0 });
      } finally {
        await empty.close();
      }
    }));
});

describe('signals and bad options', () => {
  it('an aborted signal rejects the promise form and stops an iteration with its reason', () =>
    withHistory(async (store) => {
      await expectAbortsWithReason(store);
    }));

  it('refuses a bad direction, position, count or filter', () =>
    withHistory(async (store) => {
      for (const options of [{ direction: 'up' }, { fromPosition: -1 }, { fromPosition: 'middle' }, { maxCount: 1.5 }, { filter: { eventTypes: 'Odd' } }, { filter: { streamPrefix: 3 } }]) {
        await expect(collect(store.readAll(options as never)), JSON.stringify(options)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      }
      await expect(store.readStream('long', { fromVersion: -2 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    }));
});

describe('subscribe', () => {
  it('delivers only what passes its filter, and from the end only new events', () =>
    withHistory(async (store) => {
      const seen: string[] = [];
      let caughtUp!: () => void;
      const caughtUpSignal = new Promise<void>((resolve) => (caughtUp = resolve));
      const filtered = (async () => {
        for await (const event of store.subscribe({ filter: { streamPrefix: 'other-', eventTypes: ['Other', 'New'] }, onCaughtUp: () => caughtUp() })) {
          seen.push(`${event.stream}@${event.position}`);
          if (seen.length === 3) return;
        }
      })();
      const fromEnd: number[] = [];
      const live = (async () => {
        for await (const event of store.subscribe({ fromPosition: 'end' })) {
          fromEnd.push(event.position);
          if (fromEnd.length === 2) return;
        }
      })();
      await caughtUpSignal;
      await store.append('long', [{ type: 'Even' }]);
      await store.append('other-3', [{ type: 'New' }]);
      await Promise.all([filtered, live]);
      expect(seen).toEqual(['other-1@600', 'other-2@1301', 'other-3@1303']);
      expect(fromEnd).toEqual([1302, 1303]);
    }));
});

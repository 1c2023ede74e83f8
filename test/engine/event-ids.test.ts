/**
 * Proves event identity and the two store fixtures of WAL format 1:
 * - store-v1 (written before event ids, never regenerated) still opens and reads; its events get
 *   ids derived from stream and version (the same after a rebuild) and no `createdAt`; both
 *   fixtures replay (read-only) to the digests they were recorded with;
 * - store-v1-event-ids (the commit record shape with ids and `createdAtMs`) reads back exactly the
 *   ids given by the caller (in canonical lower case) and drawn by the primary, and its time;
 * - a live store draws a distinct UUID for every event without one, keeps a given one, refuses a
 *   malformed one, and `replayLog` of such a log finds no divergence (ids are outside the digest).
 */
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { replayLog } from '../../engine/index.js';
import { openQuietStore } from '../helpers/store.js';
import { useTempDir } from '../helpers/temp.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const newDir = useTempDir('txlog-event-ids-');
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** sha256 of each fixture file as committed: a change means someone regenerated or edited it. */
const fixtureHashes: Record<string, string> = {
  'store-v1/wal/00000000000000000001.wal': 'bdf35d5dd1dd1c6ccee3eace412c89a7a62e268bc07691229b86d99e689c8bd4',
  'store-v1-event-ids/wal/00000000000000000001.wal': '784f3f3a6bc972a429f5ff45235765bdbcc044e9bd8acf4cf302eac93f52acf3',
};

function fixtureHashesNow(): Record<string, string> {
  return Object.fromEntries(Object.keys(fixtureHashes).map((file) => [file, createHash('sha256').update(readFileSync(path.join(fixtures, file))).digest('hex')]));
}

/** A copy of a fixture store: opening a store writes its state/ directory. */
function copyOf(name: string): string {
  const dir = newDir();
  cpSync(path.join(fixtures, name), dir, { recursive: true });
  return dir;
}

function summary(events: Array<{ stream: string; version: number; id: string; type: string; createdAt?: Date }>): unknown[] {
  return events.map((event) => [event.stream, event.version, event.id, event.type, event.createdAt?.toISOString()]);
}

describe('fixtures', () => {
  it('are the files as committed', () => {
    expect(fixtureHashesNow()).toEqual(fixtureHashes);
    expect(readdirSync(path.join(fixtures, 'store-v1', 'wal'))).toEqual(['00000000000000000001.wal']);
  });

  it('both replay to their recorded digests (ids and checks changed no old digest)', async () => {
    for (const name of ['store-v1', 'store-v1-event-ids']) {
      const report = await replayLog({ dir: path.join(fixtures, name), service: undefined });
      expect(report.commits, name).toBeGreaterThan(0);
      expect(report.divergences, name).toEqual([]);
    }
    expect(fixtureHashesNow()).toEqual(fixtureHashes);
  });

  it('store-v1: events from before ids read with derived ids and no createdAt, the same after a rebuild', async () => {
    const dir = copyOf('store-v1');
    const expected = [
      ['orders-1', 0, '68d1e7aa-4dcf-857d-ac0a-b8a2cf1a608b', 'Placed', undefined],
      ['orders-1', 1, '7d605f30-fea2-8105-8b20-2ce417e72374', 'Paid', undefined],
      ['orders-2', 0, '9d2bc524-04a3-86cb-84b8-828512737844', 'Placed', undefined],
      ['orders-1', 2, '6c800607-d6a0-8a8c-a8e2-b0d291c4d331', 'Shipped', undefined],
      ['orders-2', 1, '5f13ff50-39a1-8232-8a7e-229320c9bdd9', 'Cancelled', undefined],
    ];
    for (let open = 0; open < 2; open++) {
      const { store } = await openQuietStore(dir);
      try {
        const all = await store.readAll();
        expect(summary(all)).toEqual(expected);
        expect(all[1]?.metadata).toEqual({ correlationId: 'c-1' });
        expect(summary((await store.readStream('orders-1')).events)).toEqual(expected.filter((row) => row[0] === 'orders-1'));
        // New commits on an old log get drawn ids and a time.
        await store.append('orders-3', [{ type: 'Placed' }]);
        const [added] = (await store.readStream('orders-3')).events;
        expect(added?.id).toMatch(uuid);
        expect(added?.createdAt).toBeInstanceOf(Date);
      } finally {
        await store.close();
      }
      // The second round reads from a state rebuilt from the WAL.
      cpSync(path.join(fixtures, 'store-v1'), dir, { recursive: true });
    }
  });

  it('store-v1-event-ids: the given id in lower case, the drawn ids and createdAt as recorded', async () => {
    const { store } = await openQuietStore(copyOf('store-v1-event-ids'));
    try {
      const at = '2026-12-02T03:00:00.000Z';
      expect(summary(await store.readAll())).toEqual([
        ['orders-1', 0, '6f9619ff-8b86-d011-b42d-00c04fc964ff', 'Placed', at],
        ['orders-1', 1, '01010101-0101-4101-8101-010101010101', 'Paid', at],
        ['orders-1', 2, '02020202-0202-4202-8202-020202020202', 'Shipped', at],
        ['orders-2', 0, '03030303-0303-4303-8303-030303030303', 'Placed', at],
      ]);
    } finally {
      await store.close();
    }
  });
});

describe('live ids', () => {
  it('draws a distinct UUID per event, keeps a given one, refuses a malformed one, and replays clean', async () => {
    const dir = newDir();
    const { store } = await openQuietStore(dir);
    try {
      const given = '0f0e0d0c-0b0a-4908-8706-050403020100';
      await store.append('s', [{ type: 'A' }, { id: given, type: 'B' }, { type: 'C' }]);
      await store.append('t', [{ type: 'D' }]);
      const events = await store.readAll();
      expect(events.map((event) => event.id)).toContain(given);
      expect(new Set(events.map((event) => event.id)).size).toBe(4);
      for (const event of events) expect(event.id).toMatch(uuid);
      const refused = await store.append('s', [{ id: 'not-a-uuid', type: 'E' }]).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'BAD_REQUEST' });
    } finally {
      await store.close();
    }
    const report = await replayLog({ dir, service: undefined });
    expect(report.divergences).toEqual([]);
  });
});

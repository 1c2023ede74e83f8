/**
 * Proves `LsnSlots` and `RequestSlots` (the commit path's bookkeeping by LSN and by request) hold
 * what a `Map` would, and `LiveSessions` keeps its sessions in activity order: random operations applied to both and to a `Map` model, compared after
 * each one (get, has, size, values in LSN order, a client's highest request id), including LSNs
 * far apart that make the ring grow, LSNs past 2^32, and clients that come and go. Randomised:
 * prints its seed, `TXLOG_SEED` replays it.
 */
import { describe, expect, it } from 'vitest';
import { LiveSessions, type LiveSession } from '../../engine/live-sessions.js';
import { LsnSlots } from '../../engine/lsn-slots.js';
import { RequestSlots } from '../../engine/request-slots.js';
import { seededRandom, testSeed } from '../helpers/random.js';

describe('LsnSlots', () => {
  it('holds what a Map holds, through random sets and deletes over a moving window', () => {
    const seed = testSeed('lsn-slots');
    const random = seededRandom(seed);
    for (const base of [1, 2 ** 32 - 40, 2 ** 52]) {
      const slots = new LsnSlots<string>(4);
      const model = new Map<number, string>();
      let next = base;
      for (let step = 0; step < 5000; step++) {
        const roll = random.float();
        if (roll < 0.45) {
          // Mostly the next LSN, sometimes one held already, sometimes one far ahead.
          const lsn = roll < 0.35 ? next++ : roll < 0.4 && model.size > 0 ? random.pick([...model.keys()]) : next + random.integer(0, 300);
          slots.set(lsn, `v${step}`);
          model.set(lsn, `v${step}`);
        } else if (roll < 0.9) {
          // Mostly the oldest, as an apply drops them; sometimes any, or one not held.
          const keys = [...model.keys()].sort((a, b) => a - b);
          const lsn = keys.length === 0 || roll > 0.85 ? next + 7 : roll < 0.75 ? keys[0]! : random.pick(keys);
          expect(slots.delete(lsn)).toBe(model.delete(lsn));
        } else if (roll < 0.905) {
          slots.clear();
          model.clear();
        }
        const probe = next - random.integer(0, 400);
        if (slots.get(probe) !== model.get(probe) || slots.has(probe) !== model.has(probe) || slots.size !== model.size) {
          throw new Error(`seed ${seed}, base ${base}, step ${step}: LSN ${probe} or the size differs from the model`);
        }
        if (step % 97 === 0) {
          const expected = [...model.entries()].sort((a, b) => a[0] - b[0]).map(([, value]) => value);
          expect([...slots.values()]).toEqual(expected);
        }
      }
      for (const [lsn, value] of model) expect(slots.get(lsn)).toBe(value);
    }
  });

  it('keeps a value held long among thousands that come and go without growing its ring (a straggler)', () => {
    const seed = testSeed('lsn-slots-stragglers');
    const random = seededRandom(seed);
    const slots = new LsnSlots<number>();
    const model = new Map<number, number>();
    // A few values stay for long (a slow call; a waiter for an old LSN), others come and go.
    for (let lsn = 1; lsn <= 60000; lsn++) {
      slots.set(lsn, lsn);
      model.set(lsn, lsn);
      if (lsn % 7000 === 0) {
        slots.set(lsn - 5000, -lsn);
        model.set(lsn - 5000, -lsn);
      }
      // Each is done 20 LSNs later but one in 9,973, which stays; some go earlier.
      const early = lsn - random.integer(0, 19);
      for (const done of [lsn - 20, early]) {
        if (done > 0 && done % 9973 !== 0 && model.get(done) === done) expect(slots.delete(done)).toBe(model.delete(done));
      }
      const probe = lsn - random.integer(0, 20000);
      if (slots.get(probe) !== model.get(probe) || slots.size !== model.size) throw new Error(`seed ${seed}, LSN ${lsn}: ${probe} or the size differs`);
    }
    expect([...slots.values()]).toEqual([...model.entries()].sort((a, b) => a[0] - b[0]).map(([, value]) => value));
    expect(slots.ringSlots).toBeLessThanOrEqual(2048);
    for (const lsn of [...model.keys()]) expect(slots.delete(lsn)).toBe(true);
    expect(slots.size).toBe(0);
    expect([...slots.values()]).toEqual([]);
  });

  it('refuses an LSN that is not a non-negative safe integer', () => {
    const slots = new LsnSlots<number>();
    for (const lsn of [-1, 1.5, Number.NaN, 2 ** 53]) expect(() => slots.set(lsn, 1)).toThrow();
    expect(slots.size).toBe(0);
  });
});

describe('RequestSlots', () => {
  it('holds what a Map keyed by request holds, and each client highest request id', () => {
    const seed = testSeed('request-slots');
    const random = seededRandom(seed);
    const slots = new RequestSlots<number>();
    const model = new Map<string, number>();
    const clients = Array.from({ length: 40 }, (_, index) => `client-${index}`);
    const keyOf = (clientId: string, requestId: number): string => `${clientId}\u0000${requestId}`;
    let maxClientSlots = 0;
    for (let step = 0; step < 20000; step++) {
      // Clients come and go: a new name now and then, so empty slots pile up and are dropped.
      if (random.float() < 0.3) {
        // The client leaves once its requests are done (deleted here), leaving an empty slot.
        const leaving = random.integer(0, clients.length - 1);
        for (let requestId = 1; requestId <= 6; requestId++) {
          expect(slots.delete(clients[leaving]!, requestId)).toBe(model.delete(keyOf(clients[leaving]!, requestId)));
        }
        clients[leaving] = `client-${step}`;
      }
      const clientId = random.pick(clients);
      const requestId = random.integer(1, 6);
      if (random.float() < 0.55) {
        slots.set(clientId, requestId, step);
        model.set(keyOf(clientId, requestId), step);
      } else {
        expect(slots.delete(clientId, requestId)).toBe(model.delete(keyOf(clientId, requestId)));
      }
      const probeClient = random.pick(clients);
      const probeId = random.integer(1, 6);
      const highest = Math.max(0, ...[...model.keys()].filter((key) => key.startsWith(`${probeClient}\u0000`)).map((key) => Number(key.split('\u0000')[1])));
      if (slots.get(probeClient, probeId) !== model.get(keyOf(probeClient, probeId)) || slots.size !== model.size || slots.highestRequestId(probeClient) !== highest) {
        throw new Error(`seed ${seed}, step ${step}: ${probeClient} ${probeId} differs from the model`);
      }
      maxClientSlots = Math.max(maxClientSlots, slots.clientSlots);
    }
    // About 6,000 clients came and went (kept, their slots would be 6,000): the empty slots of
    // those gone were dropped on the way.
    expect(maxClientSlots).toBeLessThanOrEqual(1024 + 2 * clients.length);
    // Ids that extend another client's id are other clients.
    slots.clear();
    slots.set('a', 1, 1);
    slots.set('a\u00001', 2, 2);
    expect(slots.highestRequestId('a')).toBe(1);
    expect(slots.get('a', 2)).toBeUndefined();
    expect(slots.size).toBe(2);
  });
});

describe('LiveSessions', () => {
  it('gives the least recently active session first, through random commits, evictions and returns', () => {
    const seed = testSeed('live-sessions');
    const random = seededRandom(seed);
    const sessions = new LiveSessions();
    /** The model: client → LSN of its last activity. */
    const model = new Map<string, number>();
    for (let lsn = 1; lsn <= 20000; lsn++) {
      const clientId = `client-${random.integer(0, 60)}`;
      const held = sessions.get(clientId);
      if (random.float() < 0.1) {
        // Evict the least recently active, as the session table does past clientsMax.
        const oldest = sessions.oldest;
        const expected = [...model.entries()].sort((a, b) => a[1] - b[1])[0]?.[0];
        expect(oldest?.clientId).toBe(expected);
        if (oldest !== undefined) {
          sessions.remove(oldest);
          model.delete(oldest.clientId);
        }
        continue;
      }
      if (held === undefined) sessions.add(clientId, { latest: lsn, lastLsn: lsn, floor: 0, evicted: false });
      else {
        held.lastLsn = lsn;
        sessions.touched(held);
      }
      model.set(clientId, lsn);
      if (sessions.size !== model.size) throw new Error(`seed ${seed}, LSN ${lsn}: ${sessions.size} sessions, the model has ${model.size}`);
    }
    // Walking the whole list from the oldest gives the model's order.
    const walked: string[] = [];
    for (let session: LiveSession | undefined = sessions.oldest; session !== undefined; session = session.newer) walked.push(session.clientId);
    expect(walked).toEqual([...model.entries()].sort((a, b) => a[1] - b[1]).map(([clientId]) => clientId));
  });
});

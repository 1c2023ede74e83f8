/**
 * Proves a client's call deadlines on one timer (replication/call-deadlines.ts), on a clock driven
 * by hand: each call expires once its own duration has passed, never before and no later than
 * the timer's next run, whatever durations are mixed and in whatever order they were added; a
 * removed call never expires; one timer is armed at a time and none once nothing waits; what an
 * expiry does to the deadlines (finishing another call, adding one) is honoured; and a client
 * refuses a deadline that is not a number of milliseconds from 1 to Node's longest timer
 * (BAD_REQUEST), where a timer per call used to turn it into 1 ms, or never.
 */
import { describe, expect, it } from 'vitest';
import { CallDeadlines, deadlineMsMax } from '../../replication/call-deadlines.js';
import { Client } from '../../replication/client.js';
import { manualClock } from '../helpers/manual-clock.js';

/** Call ids by name, growing as names first appear (a client's ids grow from call to call). */
function idsByName(): (name: string) => number {
  const ids = new Map<string, number>();
  return (name) => {
    if (!ids.has(name)) ids.set(name, ids.size + 1);
    return ids.get(name)!;
  };
}

describe('call deadlines', () => {
  it('expires each call once its own duration has passed, never before, across durations', () => {
    const clock = manualClock();
    const expired: Array<[string, number]> = [];
    const addedAt = new Map<string, number>();
    const idOf = idsByName();
    const deadlines = new CallDeadlines<string>(clock, (call) => expired.push([call, clock.monotonicMs() - addedAt.get(call)!]));
    const add = (call: string, durationMs: number): void => {
      addedAt.set(call, clock.monotonicMs());
      deadlines.add(idOf(call), call, durationMs);
    };
    add('long-a', 1000);
    clock.advance(10);
    add('short-a', 100);
    add('long-b', 1000);
    clock.advance(50);
    add('short-b', 100);
    expect(clock.armed()).toBe(1);
    clock.advance(49); // t = 109: short-a has waited 99 ms
    expect(expired).toEqual([]);
    clock.advance(1);
    expect(expired).toEqual([['short-a', 100]]);
    clock.advance(50);
    expect(expired).toEqual([['short-a', 100], ['short-b', 100]]);
    deadlines.remove(idOf('long-b'), 1000);
    clock.advance(839); // t = 999
    expect(expired.map(([call]) => call)).toEqual(['short-a', 'short-b']);
    clock.advance(1);
    expect(expired).toEqual([['short-a', 100], ['short-b', 100], ['long-a', 1000]]);
    expect(clock.armed()).toBe(0);
  });

  it('never expires a removed call, and disarms once nothing waits', () => {
    const clock = manualClock();
    const expired: string[] = [];
    const idOf = idsByName();
    const deadlines = new CallDeadlines<string>(clock, (call) => expired.push(call));
    deadlines.add(idOf('a'), 'a', 100);
    deadlines.add(idOf('b'), 'b', 100);
    deadlines.remove(idOf('a'), 100);
    deadlines.remove(idOf('a'), 100); // twice: nothing happens
    deadlines.remove(idOf('c'), 50); // never added: nothing happens
    expect(clock.armed()).toBe(1);
    deadlines.remove(idOf('b'), 100);
    expect(clock.armed()).toBe(0);
    clock.advance(1000);
    expect(expired).toEqual([]);
  });

  it('honours what an expiry does to the deadlines', () => {
    const clock = manualClock();
    const expired: string[] = [];
    const idOf = idsByName();
    let deadlines!: CallDeadlines<string>;
    deadlines = new CallDeadlines<string>(clock, (call) => {
      expired.push(call);
      if (call === 'first') {
        deadlines.remove(idOf('second'), 100);
        deadlines.add(idOf('retry'), 'retry', 30);
      }
    });
    deadlines.add(idOf('first'), 'first', 100);
    deadlines.add(idOf('second'), 'second', 100);
    deadlines.add(idOf('later'), 'later', 200);
    clock.advance(100);
    expect(expired).toEqual(['first']);
    clock.advance(29);
    expect(expired).toEqual(['first']);
    clock.advance(1);
    expect(clock.armed()).toBe(1);
    clock.advance(70);
    expect(expired).toEqual(['first', 'retry', 'later']);
    expect(clock.armed()).toBe(0);
  });

  it('sets its timer again when the clock fires it before the first deadline', () => {
    const clock = manualClock();
    const expired: string[] = [];
    const idOf = idsByName();
    const deadlines = new CallDeadlines<string>(clock, (call) => expired.push(call));
    deadlines.add(idOf('a'), 'a', 100);
    deadlines.remove(idOf('a'), 100);
    deadlines.add(idOf('b'), 'b', 100);
    clock.advance(60);
    deadlines.add(idOf('c'), 'c', 100);
    clock.advance(40); // b due
    expect(expired).toEqual(['b']);
    clock.advance(59);
    expect(expired).toEqual(['b']);
    clock.advance(1);
    expect(expired).toEqual(['b', 'c']);
  });

  it('a client refuses a deadline that is not 1 ms to the longest timer', async () => {
    for (const deadlineMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, deadlineMsMax + 1, '100' as unknown as number]) {
      expect(() => new Client({ servers: ['127.0.0.1:1'], deadlineMs })).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
    // Nothing is dialled before a call: a client whose only server is closed still says so first.
    const client = new Client({ servers: ['127.0.0.1:1'], deadlineMs: deadlineMsMax, firstRequestId: 1 });
    await expect(client.execute('append', {}, { deadlineMs: 0 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(client.execute('append', {}, { deadlineMs: Number.NaN })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(client.backup('/tmp/x', -1)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await client.close();
  });
});

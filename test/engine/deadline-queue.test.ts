/**
 * Proves the handlers' shared deadline timer (engine/deadline-queue.ts) on a clock driven by
 * hand: each deadline expires once its duration has passed, never before and at most a quarter
 * of it later, in the order added; a removed one never expires; one timer is armed at a time,
 * none once nothing waits, and the queue never reads the clock.
 */
import { describe, expect, it } from 'vitest';
import { DeadlineQueue } from '../../engine/deadline-queue.js';
import type { Clock } from '../../wal/platform.js';
import { manualClock } from '../helpers/manual-clock.js';

describe('the deadline queue', () => {
  it('expires each deadline once its duration has passed (never before, at most a quarter later), in order; removed ones never', () => {
    const clock = manualClock();
    const queue = new DeadlineQueue(clock, 100);
    const expired: Array<[string, number]> = [];
    const add = (name: string): ReturnType<DeadlineQueue['add']> => {
      const addedAtMs = clock.nowMs();
      return queue.add(() => expired.push([name, clock.nowMs() - addedAtMs]));
    };
    add('a');
    clock.advance(30);
    const b = add('b');
    clock.advance(30);
    add('c');
    expect(clock.armed()).toBe(1);
    clock.advance(39); // t = 99: nothing has waited 100 ms yet
    expect(expired).toEqual([]);
    queue.remove(b);
    clock.advance(200);
    expect(expired.map(([name]) => name)).toEqual(['a', 'c']);
    for (const [, waitedMs] of expired) {
      expect(waitedMs).toBeGreaterThanOrEqual(100);
      expect(waitedMs).toBeLessThanOrEqual(125);
    }
    expect(clock.armed()).toBe(0);
  });

  it('reads no clock, and cancels its timer when the last deadline is removed', () => {
    const clock = manualClock();
    let reads = 0;
    const counting: Clock = { ...clock, nowMs: () => (reads += 1), monotonicMs: () => (reads += 1) };
    const queue = new DeadlineQueue(counting, 30_000);
    const expired: string[] = [];
    const only = queue.add(() => expired.push('x'));
    expect(clock.armed()).toBe(1);
    queue.remove(only);
    expect(clock.armed()).toBe(0);
    clock.advance(60_000);
    expect(expired).toEqual([]);
    expect(reads).toBe(0);
  });
});

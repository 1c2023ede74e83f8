/**
 * Proves the handlers' shared deadline timer (engine/deadline-queue.ts) on a clock driven by
 * hand: each deadline expires once its duration has passed and not before, in the order added;
 * a removed one never expires; one timer is armed at a time, and none once nothing waits.
 */
import { describe, expect, it } from 'vitest';
import { DeadlineQueue } from '../../engine/deadline-queue.js';
import type { Clock, TimerHandle } from '../../wal/platform.js';

/** Time moves only by `advance`, which runs the timers that came due, in time order. */
function manualClock(): Clock & { advance(ms: number): void; armed(): number } {
  let nowMs = 0;
  let timers: Array<{ atMs: number; callback: () => void; live: boolean }> = [];
  return {
    nowMs: () => nowMs,
    monotonicMs: () => nowMs,
    setImmediate: (callback) => void callback(),
    setTimeout(callback, delayMs): TimerHandle {
      const timer = { atMs: nowMs + delayMs, callback, live: true };
      timers.push(timer);
      return { cancel: () => void (timer.live = false) };
    },
    advance(ms) {
      const until = nowMs + ms;
      for (;;) {
        const due = timers.filter((timer) => timer.live && timer.atMs <= until).sort((a, b) => a.atMs - b.atMs)[0];
        if (due === undefined) break;
        due.live = false;
        nowMs = due.atMs;
        due.callback();
      }
      nowMs = until;
      timers = timers.filter((timer) => timer.live);
    },
    armed: () => timers.filter((timer) => timer.live).length,
  } as Clock & { advance(ms: number): void; armed(): number };
}

describe('the deadline queue', () => {
  it('expires each deadline after its duration, in order; removed ones never; one timer at a time', () => {
    const clock = manualClock();
    const queue = new DeadlineQueue(clock, 100);
    const expired: string[] = [];
    queue.add(() => expired.push('a'));
    clock.advance(30);
    const b = queue.add(() => expired.push('b'));
    clock.advance(30);
    queue.add(() => expired.push('c'));
    expect(clock.armed()).toBe(1);
    clock.advance(39);
    expect(expired).toEqual([]);
    clock.advance(1); // t = 100: a's deadline
    expect(expired).toEqual(['a']);
    queue.remove(b);
    clock.advance(59); // t = 159: c is due at 160
    expect(expired).toEqual(['a']);
    clock.advance(1);
    expect(expired).toEqual(['a', 'c']);
    expect(clock.armed()).toBe(0);
  });

  it('cancels its timer when the last deadline is removed', () => {
    const clock = manualClock();
    const queue = new DeadlineQueue(clock, 30_000);
    const expired: string[] = [];
    const only = queue.add(() => expired.push('x'));
    expect(clock.armed()).toBe(1);
    queue.remove(only);
    expect(clock.armed()).toBe(0);
    clock.advance(60_000);
    expect(expired).toEqual([]);
  });
});

/**
 * A Clock for unit tests whose time moves only when the test says: `advance` runs the timers that
 * came due, in time order; `armed` counts the timers set and not yet run or cancelled.
 */
import type { Clock, TimerHandle } from '../../wal/platform.js';

export type ManualClock = Clock & { advance(ms: number): void; armed(): number };

/** Time moves only by `advance`, which runs the timers that came due, in time order. */
export function manualClock(): ManualClock {
  let nowMs = 0;
  let timers: Array<{ atMs: number; callback: () => void; live: boolean }> = [];
  return {
    nowMs: () => nowMs,
    monotonicMs: () => nowMs,
    setImmediate(callback): TimerHandle {
      callback();
      return { cancel: () => undefined };
    },
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
  } as ManualClock;
}


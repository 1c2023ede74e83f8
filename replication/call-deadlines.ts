/**
 * The deadlines of a client's calls, on one timer instead of a timer, its handle and its closure
 * per request (garbage a busy client made for every call; README, "Measured", says what it saved).
 *
 * Calls of one duration expire in the order they were added, so each duration keeps its calls in
 * insertion order (a Map: removing one costs a delete) and only its first can be the next to
 * expire. The timer is set for the earliest first call; a call finished meanwhile is simply gone
 * when it fires, and the timer is set again for whatever is then first. A deadline is never met
 * early (each is checked against the monotonic clock) and at most a timer's slack late. Durations
 * are as many as the distinct `deadlineMs` values of calls in flight; an emptied one is dropped.
 */
import { txlogError } from '../wal/errors.js';
import type { Clock, TimerHandle } from '../wal/platform.js';

/** The longest deadline: Node's longest timer (about 24.8 days). */
export const deadlineMsMax = 2 ** 31 - 1;

/** `deadlineMs` when it is a deadline (a number of ms in 1..`deadlineMsMax`); else BAD_REQUEST naming `what`. */
export function checkedDeadlineMs(deadlineMs: unknown, what: string): number {
  if (typeof deadlineMs === 'number' && deadlineMs >= 1 && deadlineMs <= deadlineMsMax) return deadlineMs;
  throw txlogError('BAD_REQUEST', `${what} must be a number of milliseconds from 1 to ${deadlineMsMax}`);
}

export class CallDeadlines<Call> {
  /** Duration in ms → its calls, in the order added (= the order they expire), with their expiry. */
  private readonly byDuration = new Map<number, Map<Call, number>>();
  private timer: TimerHandle | undefined;
  /** When the timer fires (monotonic ms); Infinity without a timer. */
  private timerAtMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly expire: (call: Call) => void,
  ) {}

  /** `expire(call)` runs once `durationMs` from now has passed, unless `remove` comes first. */
  add(call: Call, durationMs: number): void {
    const expiresAtMs = this.clock.monotonicMs() + durationMs;
    let calls = this.byDuration.get(durationMs);
    if (calls === undefined) {
      calls = new Map();
      this.byDuration.set(durationMs, calls);
    }
    calls.set(call, expiresAtMs);
    if (expiresAtMs < this.timerAtMs) this.arm(expiresAtMs);
  }

  remove(call: Call, durationMs: number): void {
    const calls = this.byDuration.get(durationMs);
    if (calls === undefined || !calls.delete(call)) return;
    if (calls.size > 0) return;
    this.byDuration.delete(durationMs);
    if (this.byDuration.size === 0) this.disarm();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAtMs = Number.POSITIVE_INFINITY;
    const nowMs = this.clock.monotonicMs();
    const due: Array<[Map<Call, number>, Call, number]> = [];
    for (const calls of this.byDuration.values()) {
      for (const [call, expiresAtMs] of calls) {
        if (expiresAtMs > nowMs) break;
        due.push([calls, call, expiresAtMs]);
      }
    }
    for (const [calls, call, expiresAtMs] of due) {
      // An earlier expiry may have removed this call (finished it), or removed and added it again.
      if (calls.get(call) !== expiresAtMs) continue;
      calls.delete(call);
      this.expire(call);
    }
    let nextMs = Number.POSITIVE_INFINITY;
    for (const [durationMs, calls] of this.byDuration) {
      if (calls.size === 0) this.byDuration.delete(durationMs);
      for (const [, expiresAtMs] of calls) {
        nextMs = Math.min(nextMs, expiresAtMs);
        break;
      }
    }
    if (nextMs < this.timerAtMs) this.arm(nextMs);
    else if (this.byDuration.size === 0) this.disarm();
  }

  private arm(atMs: number): void {
    this.timer?.cancel();
    this.timerAtMs = atMs;
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, atMs - this.clock.monotonicMs()));
  }

  private disarm(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAtMs = Number.POSITIVE_INFINITY;
  }
}

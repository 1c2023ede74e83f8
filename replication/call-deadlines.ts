/**
 * The deadlines of a client's calls, on one timer instead of a timer, its handle and its closure
 * per request (garbage a busy client made for every call; README, "Measured", says what it saved).
 *
 * Calls of one duration expire in the order they were added, which is the order of their ids,
 * so each duration keeps its calls by id (`LsnSlots`: removing one clears its slot, and no Map
 * takes a key and drops one per call, which keeps garbage alive: see there) and only its first
 * can be the next to expire. The timer is set for the earliest first call; a call finished
 * meanwhile is simply gone when it fires, and the timer is set again for whatever is then first.
 * A deadline is never met early (each is checked against the monotonic clock) and at most a
 * timer's slack late. Durations are as many as the distinct `deadlineMs` values of calls in
 * flight, and a duration left empty is kept for the next call of its length, up to
 * `emptyDurationsMax` of them.
 */
import { txlogError } from '../wal/errors.js';
import type { Clock, TimerHandle } from '../wal/platform.js';
import { LsnSlots } from '../engine/lsn-slots.js';

/** The longest deadline: Node's longest timer (about 24.8 days). */
export const deadlineMsMax = 2 ** 31 - 1;

/** `deadlineMs` when it is a deadline (a number of ms in 1..`deadlineMsMax`); else BAD_REQUEST naming `what`. */
export function checkedDeadlineMs(deadlineMs: unknown, what: string): number {
  if (typeof deadlineMs === 'number' && deadlineMs >= 1 && deadlineMs <= deadlineMsMax) return deadlineMs;
  throw txlogError('BAD_REQUEST', `${what} must be a number of milliseconds from 1 to ${deadlineMsMax}`);
}

/** Durations kept while empty, at most (more are dropped together). */
const emptyDurationsMax = 64;

interface Deadline<Call> {
  id: number;
  call: Call;
  expiresAtMs: number;
}

export class CallDeadlines<Call> {
  /** Duration in ms → its calls by id (ids grow as calls are added: the order they expire). */
  private readonly byDuration = new Map<number, LsnSlots<Deadline<Call>>>();
  /** Calls waiting, over every duration. */
  private waiting = 0;
  private timer: TimerHandle | undefined;
  /** When the timer fires (monotonic ms); Infinity without a timer. */
  private timerAtMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly expire: (call: Call) => void,
  ) {}

  /**
   * `expire(call)` runs once `durationMs` from now has passed, unless `remove` comes first. `id`
   * names the call, and grows from call to call.
   */
  add(id: number, call: Call, durationMs: number): void {
    const expiresAtMs = this.clock.monotonicMs() + durationMs;
    let calls = this.byDuration.get(durationMs);
    if (calls === undefined) {
      this.dropEmptyDurationsIfMany();
      calls = new LsnSlots();
      this.byDuration.set(durationMs, calls);
    }
    if (calls.get(id) === undefined) this.waiting += 1;
    calls.set(id, { id, call, expiresAtMs });
    if (expiresAtMs < this.timerAtMs) this.arm(expiresAtMs);
  }

  remove(id: number, durationMs: number): void {
    if (this.byDuration.get(durationMs)?.delete(id) !== true) return;
    this.waiting -= 1;
    if (this.waiting === 0) this.disarm();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAtMs = Number.POSITIVE_INFINITY;
    const nowMs = this.clock.monotonicMs();
    const due: Array<[LsnSlots<Deadline<Call>>, Deadline<Call>]> = [];
    for (const calls of this.byDuration.values()) {
      if ((calls.first()?.[1].expiresAtMs ?? Number.POSITIVE_INFINITY) > nowMs) continue;
      for (const deadline of calls.values()) {
        if (deadline.expiresAtMs > nowMs) break;
        due.push([calls, deadline]);
      }
    }
    for (const [calls, deadline] of due) {
      // An earlier expiry may have removed this call (finished it), or removed and added it again.
      if (calls.get(deadline.id) !== deadline) continue;
      calls.delete(deadline.id);
      this.waiting -= 1;
      this.expire(deadline.call);
    }
    let nextMs = Number.POSITIVE_INFINITY;
    for (const calls of this.byDuration.values()) {
      const first = calls.first();
      if (first !== undefined) nextMs = Math.min(nextMs, first[1].expiresAtMs);
    }
    if (nextMs < this.timerAtMs) this.arm(nextMs);
    else if (this.waiting === 0) this.disarm();
  }

  private dropEmptyDurationsIfMany(): void {
    let empty = 0;
    for (const calls of this.byDuration.values()) if (calls.size === 0) empty += 1;
    if (empty < emptyDurationsMax) return;
    for (const [durationMs, calls] of this.byDuration) if (calls.size === 0) this.byDuration.delete(durationMs);
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

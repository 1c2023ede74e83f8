/**
 * Deadlines that all run the same length (every handler gets `handlerTimeoutMs`), on one timer
 * instead of one per transaction. Added in time order, so they expire in insertion order: the
 * timer is armed for the oldest, and a deadline removed before it expires costs a set delete (a
 * timer that fires for a deadline already gone re-arms for the next; with none left it is
 * cancelled).
 */
import type { Clock, TimerHandle } from '../wal/platform.js';

export interface Deadline {
  readonly atMs: number;
  readonly onExpire: () => void;
}

export class DeadlineQueue {
  private readonly waiting = new Set<Deadline>();
  private timer: TimerHandle | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly durationMs: number,
  ) {}

  /** Calls `onExpire` once `durationMs` from now has passed, unless removed before. */
  add(onExpire: () => void): Deadline {
    const deadline: Deadline = { atMs: this.clock.monotonicMs() + this.durationMs, onExpire };
    this.waiting.add(deadline);
    if (this.timer === undefined) this.arm(this.durationMs);
    return deadline;
  }

  remove(deadline: Deadline): void {
    this.waiting.delete(deadline);
    // Nothing left to time: no timer may keep the process alive (or fire into a closed store).
    if (this.waiting.size === 0 && this.timer !== undefined) {
      this.timer.cancel();
      this.timer = undefined;
    }
  }

  private arm(delayMs: number): void {
    this.timer = this.clock.setTimeout(() => this.expire(), Math.max(0, delayMs));
  }

  private expire(): void {
    this.timer = undefined;
    const nowMs = this.clock.monotonicMs();
    for (const deadline of this.waiting) {
      if (deadline.atMs > nowMs) return this.arm(deadline.atMs - nowMs);
      this.waiting.delete(deadline);
      deadline.onExpire();
    }
  }
}

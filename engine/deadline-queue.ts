/**
 * Deadlines that all run the same length (every handler gets `handlerTimeoutMs`), on one timer
 * instead of one per transaction, and without reading the clock: the timer ticks every eighth of
 * the duration while any deadline waits, and a deadline added during tick t expires at the tick
 * that guarantees the whole duration has passed (never early; at most two ticks, a quarter of
 * the duration, late). Deadlines expire in the order added; removing one costs a set delete, and
 * with none left the timer is cancelled (nothing keeps the process alive).
 */
import type { Clock, TimerHandle } from '../wal/platform.js';

export interface Deadline {
  readonly expiresAtTick: number;
  readonly onExpire: () => void;
}

export class DeadlineQueue {
  private readonly waiting = new Set<Deadline>();
  private timer: TimerHandle | undefined;
  /** Ticks of the timer so far (it only ticks while a deadline waits). */
  private ticks = 0;
  private readonly tickMs: number;
  private readonly ticksToExpire: number;

  constructor(
    private readonly clock: Clock,
    durationMs: number,
  ) {
    this.tickMs = Math.max(1, Math.ceil(durationMs / 8));
    // Added at any moment of a tick, expired `ticksToExpire` ticks later: at least
    // (ticksToExpire - 1) × tickMs ≥ durationMs have passed.
    this.ticksToExpire = Math.ceil(durationMs / this.tickMs) + 1;
  }

  /** Deadlines waiting (one per running handler). */
  get size(): number {
    return this.waiting.size;
  }

  /** Calls `onExpire` once `durationMs` from now has passed (a little later), unless removed before. */
  add(onExpire: () => void): Deadline {
    const deadline: Deadline = { expiresAtTick: this.ticks + this.ticksToExpire, onExpire };
    this.waiting.add(deadline);
    this.timer ??= this.clock.setTimeout(() => this.tick(), this.tickMs);
    return deadline;
  }

  remove(deadline: Deadline): void {
    this.waiting.delete(deadline);
    if (this.waiting.size === 0 && this.timer !== undefined) {
      this.timer.cancel();
      this.timer = undefined;
    }
  }

  private tick(): void {
    this.timer = undefined;
    this.ticks += 1;
    for (const deadline of this.waiting) {
      if (deadline.expiresAtTick > this.ticks) break;
      this.waiting.delete(deadline);
      deadline.onExpire();
    }
    if (this.waiting.size > 0) this.timer ??= this.clock.setTimeout(() => this.tick(), this.tickMs);
  }
}

/**
 * Virtual time for the simulator: one queue of timed callbacks, ordered by (time, sequence), run
 * one at a time. Between two callbacks every microtask the library queued is drained, so a run
 * is a pure function of the seed: the same seed gives the same callbacks in the same order, at
 * the same virtual times (a trace hash checks it).
 *
 * Each simulated process gets its own `Clock` (`clockOf`): a crashed process's timers never fire,
 * and a paused one's fire only when it resumes, as SIGKILL and SIGSTOP would do.
 */
import { createHash } from 'node:crypto';
import type { Clock, TimerHandle } from '../../wal/platform.js';

interface Entry {
  atMs: number;
  sequence: number;
  owner: ProcessClock | undefined;
  callback: () => void;
  cancelled: boolean;
}

/** Wall-clock time at virtual time 0 (any fixed value: it only has to be the same every run). */
const epochWallMs = Date.UTC(2026, 0, 1);

export class Scheduler {
  private queue: Entry[] = [];
  private sequence = 0;
  private nowValue = 0;
  private readonly trace = createHash('sha256');
  private traceLines: string[] = [];
  private readonly traceLinesKept: number;
  steps = 0;

  constructor(traceLinesKept = 200) {
    this.traceLinesKept = traceLinesKept;
  }

  get nowMs(): number {
    return this.nowValue;
  }

  /** Schedules `callback` after `delayMs` of virtual time (0: after everything already due now). */
  schedule(delayMs: number, callback: () => void, owner?: ProcessClock): TimerHandle {
    const entry: Entry = { atMs: this.nowValue + Math.max(0, delayMs), sequence: this.sequence++, owner, callback, cancelled: false };
    this.push(entry);
    return { cancel: () => (entry.cancelled = true) };
  }

  /** A clock for one simulated process: its own timers, its own skew. */
  clockOf(name: string, skewMs = 0): ProcessClock {
    return new ProcessClock(this, name, skewMs);
  }

  /** Adds a line to the event trace (hashed; the last lines are kept for a failure report). */
  note(line: string): void {
    const stamped = `${this.nowValue.toFixed(3)} ${line}`;
    this.trace.update(stamped).update('\n');
    this.traceLines.push(stamped);
    if (this.traceLines.length > this.traceLinesKept * 2) this.traceLines = this.traceLines.slice(-this.traceLinesKept);
  }

  lastTraceLines(): string[] {
    return this.traceLines.slice(-this.traceLinesKept);
  }

  traceHash(): string {
    return this.trace.copy().digest('hex').slice(0, 16);
  }

  /**
   * Runs callbacks in order until `until()` holds, the queue is empty, or virtual time passes
   * `endMs`. Resolves with false when the queue ran dry (nothing left that could ever happen).
   */
  async runUntil(until: () => boolean, endMs: number): Promise<boolean> {
    while (!until()) {
      const entry = this.pop();
      if (entry === undefined) return false;
      if (entry.atMs > endMs) {
        this.push(entry);
        this.nowValue = endMs;
        return true;
      }
      this.nowValue = Math.max(this.nowValue, entry.atMs);
      if (entry.owner !== undefined && entry.owner.paused) {
        entry.owner.deferred.push(entry);
        continue;
      }
      this.steps += 1;
      entry.callback();
      await drainMicrotasks();
    }
    return true;
  }

  /** Puts back entries that were held while their process was paused. */
  requeue(entries: Entry[]): void {
    for (const entry of entries) {
      if (entry.cancelled) continue;
      entry.atMs = Math.max(entry.atMs, this.nowValue);
      this.push(entry);
    }
  }

  private push(entry: Entry): void {
    // A binary heap on (atMs, sequence).
    const queue = this.queue;
    queue.push(entry);
    let index = queue.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(queue[index]!, queue[parent]!)) break;
      [queue[index], queue[parent]] = [queue[parent]!, queue[index]!];
      index = parent;
    }
  }

  private pop(): Entry | undefined {
    const queue = this.queue;
    for (;;) {
      if (queue.length === 0) return undefined;
      const top = queue[0]!;
      const last = queue.pop()!;
      if (queue.length > 0) {
        queue[0] = last;
        let index = 0;
        for (;;) {
          const left = index * 2 + 1;
          const right = left + 1;
          let smallest = index;
          if (left < queue.length && before(queue[left]!, queue[smallest]!)) smallest = left;
          if (right < queue.length && before(queue[right]!, queue[smallest]!)) smallest = right;
          if (smallest === index) break;
          [queue[index], queue[smallest]] = [queue[smallest]!, queue[index]!];
          index = smallest;
        }
      }
      if (top.cancelled || top.owner?.dead === true) continue;
      return top;
    }
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.sequence < b.sequence);
}

/**
 * Lets every queued microtask (and the microtasks they queue) run: a real `setImmediate` fires
 * only once the microtask queue is empty. The library does no real I/O under the simulator, so
 * nothing else can run in between.
 */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The clock of one simulated process. */
export class ProcessClock implements Clock {
  dead = false;
  paused = false;
  deferred: Entry[] = [];
  /**
   * Timers (`setTimeout`) the process set that have neither fired nor been cancelled. An immediate
   * is not one: it runs on the process's next turn and holds nothing past it (a process resumed
   * after a pause may run a burst of them, one per connection that closed meanwhile).
   */
  private pendingTimers = 0;

  constructor(
    private readonly scheduler: Scheduler,
    readonly name: string,
    private readonly skewMs: number,
  ) {}

  nowMs(): number {
    return epochWallMs + this.scheduler.nowMs + this.skewMs;
  }

  monotonicMs(): number {
    return this.scheduler.nowMs;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    return this.counted(delayMs, callback);
  }

  setImmediate(callback: () => void): TimerHandle {
    return this.scheduler.schedule(0, callback, this);
  }

  /** Timers set and still to fire (what a leak of them would pile up). */
  get timersPending(): number {
    return this.pendingTimers;
  }

  /** Schedules as it would uncounted (same time, same order), counting the timer until it fires or is cancelled. */
  private counted(delayMs: number, callback: () => void): TimerHandle {
    const timer = { pending: true };
    this.pendingTimers += 1;
    const handle = this.scheduler.schedule(delayMs, () => (this.settle(timer), callback()), this);
    return { cancel: () => (this.settle(timer), handle.cancel()) };
  }

  private settle(timer: { pending: boolean }): void {
    if (timer.pending) this.pendingTimers -= 1;
    timer.pending = false;
  }

  /** SIGKILL: none of its timers will ever fire. */
  kill(): void {
    this.dead = true;
  }

  /** SIGSTOP: its timers wait. */
  pause(): void {
    this.paused = true;
  }

  /** SIGCONT: its held timers run, late. */
  resume(): void {
    this.paused = false;
    const held = this.deferred;
    this.deferred = [];
    this.scheduler.requeue(held);
  }
}

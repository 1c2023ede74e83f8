/**
 * A closed-loop load: `concurrency` workers, each with one transaction in flight, awaiting it
 * and starting the next. A warm-up of the same load runs first and is not recorded; then either
 * a fixed duration or a fixed count of transactions is measured, one latency sample per
 * transaction (nanoseconds, `process.hrtime.bigint()`).
 */
import { LatencySamples, elapsedNs } from './stats.js';

export interface LoadPlan {
  /** Transactions in flight at once (one per worker). */
  concurrency: number;
  /** Measured for this long, unless `count` is given. */
  durationMs: number;
  /** Measure exactly this many transactions instead of a duration. */
  count: number | undefined;
  /** Same load before the measurement, not recorded. 0 for none. */
  warmupMs: number;
}

export interface LoadResult {
  samples: LatencySamples;
  completed: number;
  seconds: number;
}

/** One transaction of worker `worker` (0 ≤ worker < concurrency). */
export type Transaction = (worker: number) => Promise<void>;

/** `onMeasureStart` runs after the warm-up, just before the measured phase. */
export async function runLoad(plan: LoadPlan, transaction: Transaction, onMeasureStart?: () => void): Promise<LoadResult> {
  if (plan.warmupMs > 0) await runPhase(plan.concurrency, deadlineStop(plan.warmupMs), transaction, undefined);
  onMeasureStart?.();
  const samples = new LatencySamples();
  const startNs = process.hrtime.bigint();
  const stop = plan.count === undefined ? deadlineStop(plan.durationMs) : countStop(plan.count);
  const completed = await runPhase(plan.concurrency, stop, transaction, samples);
  return { samples, completed, seconds: elapsedNs(startNs) / 1e9 };
}

/** Returns true when the worker should not start another transaction. */
type Stop = () => boolean;

function deadlineStop(durationMs: number): Stop {
  const endNs = process.hrtime.bigint() + BigInt(Math.round(durationMs * 1e6));
  return () => process.hrtime.bigint() >= endNs;
}

/** Hands out `count` tickets across the workers. */
function countStop(count: number): Stop {
  let left = count;
  return () => {
    if (left <= 0) return true;
    left -= 1;
    return false;
  };
}

async function runPhase(concurrency: number, stop: Stop, transaction: Transaction, samples: LatencySamples | undefined): Promise<number> {
  const worker = async (index: number): Promise<number> => {
    let completed = 0;
    while (!stop()) {
      const startNs = process.hrtime.bigint();
      await transaction(index);
      samples?.add(elapsedNs(startNs));
      completed += 1;
    }
    return completed;
  };
  const counts = await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)));
  return counts.reduce((sum, count) => sum + count, 0);
}

/**
 * Latency samples and their summary. Samples are nanoseconds from `process.hrtime.bigint()`;
 * summaries are in microseconds, the unit commit latency is discussed in.
 */

export class LatencySamples {
  private values = new Float64Array(1024);
  private count = 0;

  /** Records one duration, in nanoseconds. */
  add(durationNs: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count] = durationNs;
    this.count += 1;
  }

  get size(): number {
    return this.count;
  }

  summarize(): LatencySummary {
    const sorted = this.values.slice(0, this.count).sort();
    let totalNs = 0;
    for (const value of sorted) totalNs += value;
    return {
      samples: this.count,
      meanUs: this.count === 0 ? Number.NaN : totalNs / this.count / 1000,
      p50Us: percentile(sorted, 0.5) / 1000,
      p99Us: percentile(sorted, 0.99) / 1000,
      p999Us: percentile(sorted, 0.999) / 1000,
      maxUs: (sorted[sorted.length - 1] ?? Number.NaN) / 1000,
    };
  }
}

export interface LatencySummary {
  samples: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

/** Nearest-rank percentile of ascending values; NaN when there are none. */
export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}

/** The median of some values (the mean of the middle two for an even count); NaN when there are none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = values.toSorted((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Nanoseconds since `startNs` (a `process.hrtime.bigint()` reading). */
export function elapsedNs(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs);
}

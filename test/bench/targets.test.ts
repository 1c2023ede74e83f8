/**
 * `txlog bench` judges every target one run can: made-up results go in, and each verdict's
 * value, limit and met/missed come out as the targets define them (a ratio over the floor's p50,
 * a throughput, a process's CPU per transaction); a target whose figures are missing is left out.
 */
import { describe, expect, it } from 'vitest';
import type { BenchMode, FloorName, FloorSummary, ScenarioResult, TargetVerdict } from '../../bench/bench-types.js';
import { verdicts } from '../../bench/targets.js';

function figures(p50Us: number, throughputPerSec: number) {
  return { p50Us, p99Us: p50Us * 2, p999Us: p50Us * 3, maxUs: p50Us * 4, throughputPerSec, samples: 1000 };
}

function scenario(mode: BenchMode, fsync: string, concurrency: number, p50Us: number, throughputPerSec: number, cpu: Partial<ScenarioResult['cpuUsPerTransaction']> = {}): ScenarioResult {
  return {
    name: `txlog ${mode} ${fsync} c=${concurrency}`,
    system: 'txlog',
    mode,
    fsync,
    concurrency,
    floor: null,
    p50VsFloor: null,
    cpuUsPerTransaction: { bench: null, primary: null, backup: null, ...cpu },
    ...figures(p50Us, throughputPerSec),
  };
}

function floor(name: FloorName, p50Us: number): FloorSummary {
  return { name, what: name, ...figures(p50Us, 1_000_000 / p50Us) };
}

function byTarget(list: TargetVerdict[]): Map<string, TargetVerdict> {
  return new Map(list.map((verdict) => [verdict.target, verdict]));
}

const floors = [floor('write+fdatasync', 100), floor('two-hop+fdatasync', 200), floor('tcp-rtt', 40)];

describe('verdicts', () => {
  it('judges the embedded targets and the pair CPU per transaction beside the replicated ones', () => {
    const scenarios = [
      scenario('embedded', 'always', 1, 114, 8_000),
      scenario('embedded', 'always', 256, 4_000, 64_000, { bench: 15 }),
      scenario('replicated', 'always', 1, 300, 3_000),
      scenario('replicated', 'interval', 1, 50, 9_000),
      scenario('replicated', 'always', 256, 9_000, 52_000, { bench: 8, primary: 26, backup: 9.5 }),
      { ...scenario('replicated', 'always', 256, 9_000, 1_000), system: 'sqlite' as const, name: 'sqlite FULL c=1', concurrency: 1 },
    ];
    const judged = byTarget(verdicts(scenarios, floors));

    const embeddedC1 = judged.get('embedded always c=1 p50 <= 1.15x write+fdatasync p50')!;
    expect(embeddedC1.value).toBeCloseTo(1.14);
    expect(embeddedC1.met).toBe(true);
    const replicatedC1 = judged.get('replicated always c=1 p50 <= 1.3x two-hop+fdatasync p50')!;
    expect(replicatedC1.value).toBeCloseTo(1.5);
    expect(replicatedC1.met).toBe(false);
    expect(judged.get('replicated interval c=1 p50 <= 1.5x tcp-rtt p50')!.met).toBe(true);

    expect(judged.get('embedded always c=256 >= 100000 tx/s')).toMatchObject({ value: 64_000, limit: 100_000, met: false });
    expect(judged.get('embedded always c=256 >= 60000 tx/s (first milestone)')).toMatchObject({ value: 64_000, limit: 60_000, met: true });
    expect(judged.get('replicated always c=256 >= 50000 tx/s')).toMatchObject({ value: 52_000, met: true });
    expect(judged.get('replicated always c=256 > SQLite FULL tx/s')).toMatchObject({ value: 52, met: true });

    // At the limit is met; above it is missed. The embedded store's own CPU is not a pair target.
    expect(judged.get('replicated always c=256 client CPU <= 8 µs/tx')).toMatchObject({ value: 8, limit: 8, met: true });
    expect(judged.get('replicated always c=256 primary CPU <= 25 µs/tx')).toMatchObject({ value: 26, met: false });
    expect(judged.get('replicated always c=256 backup CPU <= 10 µs/tx')).toMatchObject({ value: 9.5, met: true });
    expect([...judged.keys()].filter((target) => target.includes('CPU'))).toHaveLength(3);
  });

  it('leaves out what the run did not measure', () => {
    const judged = byTarget(verdicts([scenario('replicated', 'always', 256, 9_000, 20_000, { bench: 10, primary: null, backup: 24 })], floors));
    expect([...judged.keys()].sort()).toEqual([
      'replicated always c=256 >= 50000 tx/s',
      'replicated always c=256 backup CPU <= 10 µs/tx',
      'replicated always c=256 client CPU <= 8 µs/tx',
    ]);
    expect(verdicts([scenario('embedded', 'always', 1, 150, 6_000)], [])).toEqual([]);
  });
});

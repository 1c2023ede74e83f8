/**
 * The performance targets of the design brief, judged on a finished run: the replicated p50 at
 * one in flight against its floor (under `always` the two-hop floor of the real topology: client
 * to primary to backup with the flush overlapped; under `interval` one round trip), and the throughput at 256 in flight against
 * 50,000 tx/s and against SQLite FULL.
 */
import { fsyncPolicies, type BenchMode, type FloorName, type FloorSummary, type ScenarioResult, type TargetVerdict } from './bench-types.js';

export function verdicts(scenarios: readonly ScenarioResult[], floors: readonly FloorSummary[]): TargetVerdict[] {
  // The targets are the plaintext pair's; a TLS run is read beside it, not judged.
  const find = (mode: BenchMode, fsync: string, concurrency: number): ScenarioResult | undefined =>
    scenarios.find((scenario) => scenario.system === 'txlog' && scenario.mode === mode && scenario.fsync === fsync && scenario.concurrency === concurrency && (scenario.tls ?? 'off') === 'off');
  const floor = (name: FloorName): FloorSummary | undefined => floors.find((candidate) => candidate.name === name);
  const result: TargetVerdict[] = [];
  const ratioTarget = (fsync: string, floorName: FloorName, limit: number): void => {
    const scenario = find('replicated', fsync, 1);
    const base = floor(floorName);
    if (scenario === undefined || base === undefined || base.samples === 0) return;
    const value = scenario.p50Us / base.p50Us;
    result.push({
      target: `replicated ${fsync} c=1 p50 <= ${limit}x ${floorName} p50`,
      value,
      limit,
      met: value <= limit,
      detail: `${scenario.p50Us.toFixed(1)} µs vs ${base.p50Us.toFixed(1)} µs`,
    });
  };
  ratioTarget('always', 'two-hop+fdatasync', 1.3);
  ratioTarget('interval', 'tcp-rtt', 1.5);
  const sqlite = scenarios.find((scenario) => scenario.system === 'sqlite');
  for (const fsync of fsyncPolicies) {
    const scenario = find('replicated', fsync, 256);
    if (scenario === undefined) continue;
    result.push({
      target: `replicated ${fsync} c=256 >= 50000 tx/s`,
      value: scenario.throughputPerSec,
      limit: 50_000,
      met: scenario.throughputPerSec >= 50_000,
      detail: `${Math.round(scenario.throughputPerSec)} tx/s`,
    });
    if (sqlite !== undefined) {
      result.push({
        target: `replicated ${fsync} c=256 > SQLite FULL tx/s`,
        value: scenario.throughputPerSec / sqlite.throughputPerSec,
        limit: 1,
        met: scenario.throughputPerSec > sqlite.throughputPerSec,
        detail: `${Math.round(scenario.throughputPerSec)} vs ${Math.round(sqlite.throughputPerSec)} tx/s`,
      });
    }
  }
  return result;
}

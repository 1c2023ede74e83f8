/**
 * From per-segment scans to one verdict on the whole log: totals, the checks that span segments
 * (LSN continuity, epochs never going down), the tail state, and the exit code. Shared by the
 * `inspect` summary and `inspect --verify`, which differ only in how they scan and print.
 */
import { txlogError } from '../wal/errors.js';
import { segmentHeaderBytes } from '../wal/format.js';
import { recordTypeName } from '../engine/records.js';
import { exitCodes, printError, printWarning } from './common.js';
import type { SegmentProblem, SegmentScan, TornTail } from './wal-files.js';

export interface LogProblem extends SegmentProblem {
  segment: string;
}

export type TailReport = { state: 'clean' } | ({ state: 'torn' } & TornTail);

export interface LogReport {
  walDir: string;
  /** Distinct on-disk format versions of the segments' headers. */
  formatVersions: number[];
  segments: SegmentScan[];
  records: number;
  /** Record count by type name (`recordTypeName`). */
  recordsByType: Record<string, number>;
  /** Null for a log with no records. */
  firstLsn: number | null;
  lastLsn: number | null;
  epochs: number[];
  tail: TailReport;
  /** Corruption, in log order. Empty for a sound log. */
  problems: LogProblem[];
}

/**
 * Builds the report from the scans of some or all of the directory's `segmentCount` segments.
 * Throws UNSUPPORTED_FORMAT when a segment is of a newer format, and NOT_A_LOG when every
 * segment of the directory lacks a txlog header (the operator pointed at something else); a bad
 * header among good segments is damage, reported as a problem.
 */
export function buildLogReport(walDir: string, scans: readonly SegmentScan[], segmentCount = scans.length): LogReport {
  const refusedScans = scans.filter((scan) => scan.refused !== undefined);
  const newer = refusedScans.find((scan) => scan.refused?.code === 'UNSUPPORTED_FORMAT');
  if (newer?.refused !== undefined) throw txlogError('UNSUPPORTED_FORMAT', newer.refused.message, { segment: newer.segment });
  const first = refusedScans[0];
  if (first?.refused !== undefined && refusedScans.length === segmentCount) {
    throw txlogError('NOT_A_LOG', first.refused.message, { segment: first.segment });
  }
  const recordsByType: Record<string, number> = {};
  const epochs = new Set<number>();
  let records = 0;
  for (const scan of scans) {
    records += scan.records;
    for (const epoch of scan.epochs) epochs.add(epoch);
    for (const [type, count] of Object.entries(scan.recordsByType)) {
      const name = recordTypeName(Number(type));
      recordsByType[name] = (recordsByType[name] ?? 0) + count;
    }
  }
  const withRecords = scans.filter((scan) => scan.records > 0);
  const lastScan = scans[scans.length - 1];
  return {
    walDir,
    formatVersions: [...new Set(scans.map((scan) => scan.formatVersion).filter((version) => version > 0))].sort(),
    segments: [...scans],
    records,
    recordsByType,
    firstLsn: withRecords[0]?.firstLsn ?? null,
    lastLsn: withRecords[withRecords.length - 1]?.lastLsn ?? null,
    epochs: [...epochs].sort((a, b) => a - b),
    tail: lastScan?.torn === undefined ? { state: 'clean' } : { state: 'torn', ...lastScan.torn },
    problems: findProblems(scans),
  };
}

/** Each segment's own problem, then what only shows between segments. */
function findProblems(scans: readonly SegmentScan[]): LogProblem[] {
  const problems: LogProblem[] = [];
  let lastEpoch = 0;
  scans.forEach((scan, index) => {
    if (scan.refused !== undefined) {
      problems.push({ segment: scan.segment, offset: 0, lsn: scan.firstLsn, reason: scan.refused.message });
      return;
    }
    const previous = scans[index - 1];
    const previousIsWhole = previous !== undefined && previous.problem === undefined && previous.refused === undefined;
    if (previousIsWhole && scan.firstLsn !== previous.lastLsn + 1) {
      const reason =
        scan.firstLsn > previous.lastLsn + 1
          ? `records ${previous.lastLsn + 1}..${scan.firstLsn - 1} are missing: the next segment, ${scan.segment}, starts at LSN ${scan.firstLsn}`
          : `the next segment, ${scan.segment}, starts at LSN ${scan.firstLsn}, which this segment already holds`;
      problems.push({ segment: previous.segment, offset: previous.usedBytes, lsn: previous.lastLsn + 1, reason });
    }
    const firstEpoch = scan.epochs[0];
    if (firstEpoch !== undefined && firstEpoch < lastEpoch) {
      const reason = `epoch ${firstEpoch} after epoch ${lastEpoch} in the segment before`;
      problems.push({ segment: scan.segment, offset: segmentHeaderBytes, lsn: scan.firstLsn, reason });
    }
    lastEpoch = Math.max(lastEpoch, scan.epochs[scan.epochs.length - 1] ?? 0);
    if (scan.problem !== undefined) problems.push({ segment: scan.segment, ...scan.problem });
  });
  return problems;
}

export function describeProblem(problem: LogProblem): string {
  return `${problem.segment} at byte offset ${problem.offset}, LSN ${problem.lsn}: ${problem.reason}`;
}

export function describeTail(tail: TailReport): string {
  if (tail.state === 'clean') return 'clean';
  return `torn: ${tail.bytes} bytes at ${tail.segment} byte offset ${tail.offset} (${tail.reason}); recovery will cut them`;
}

/**
 * Says on stderr what is wrong (one line per problem, one warning for a torn tail) and returns
 * the exit code: 3 for corruption, and for a torn tail under `strict`; 0 otherwise.
 */
export function finishReport(report: Pick<LogReport, 'problems' | 'tail'>, strict: boolean): number {
  for (const problem of report.problems) {
    printError(txlogError('CORRUPT_LOG', `corrupt WAL: ${describeProblem(problem)}`));
  }
  if (report.tail.state === 'torn') {
    const message = `torn tail: ${report.tail.bytes} bytes at ${report.tail.segment} byte offset ${report.tail.offset} (${report.tail.reason}); recovery will cut them`;
    if (strict) printError(txlogError('CORRUPT_LOG', message));
    else printWarning(message);
  }
  if (report.problems.length > 0) return exitCodes.corrupt;
  if (report.tail.state === 'torn' && strict) return exitCodes.corrupt;
  return exitCodes.done;
}

/**
 * `txlog inspect DIR` (summary) and `txlog inspect DIR --verify`. Both read every frame of
 * every segment and reach the same verdict (`log-report.ts`); the summary scans on the main
 * thread and prints what an operator wants at a glance, `--verify` scans the segments in
 * parallel worker threads (piscina) and prints a verdict per segment.
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import { txlogError } from '../wal/errors.js';
import { nodePlatform } from '../wal/platform.js';
import { formatTable, LineOutput, printWarning } from './common.js';
import { buildLogReport, describeTail, finishReport, type LogProblem, type LogReport } from './log-report.js';
import { startProgress } from './progress.js';
import { findWalFiles, scanSegmentFile, type SegmentScan, type SegmentTask, type WalFiles } from './wal-files.js';
import type { ReportRequest } from './inspect-request.js';

export async function printSummary(request: ReportRequest): Promise<number> {
  const files = openWalFiles(request.dir);
  const scans = segmentTasks(files).map((task) => scanSegmentFile(task));
  const report = buildLogReport(files.walDir, scans);
  const output = new LineOutput();
  if (request.json) {
    await output.line(JSON.stringify(reportJson(report)));
  } else {
    for (const line of summaryLines(report)) await output.line(line);
  }
  await output.flush();
  return finishReport(report, request.strict);
}

export async function printVerification(request: ReportRequest): Promise<number> {
  const files = openWalFiles(request.dir);
  const scans = await verifyInWorkers(files);
  const report = buildLogReport(files.walDir, scans);
  const output = new LineOutput();
  if (request.json) {
    await output.line(JSON.stringify(reportJson(report)));
  } else {
    for (const line of verificationLines(report)) await output.line(line);
  }
  await output.flush();
  return finishReport(report, request.strict);
}

function openWalFiles(dir: string): WalFiles {
  const files = findWalFiles(dir);
  for (const name of files.ignored) printWarning(`ignoring ${path.join(files.walDir, name)}: not a segment file name`);
  return files;
}

function segmentTasks(files: WalFiles): SegmentTask[] {
  return files.segments.map((segment, index) => ({
    walDir: files.walDir,
    segment,
    isLast: index === files.segments.length - 1,
  }));
}

/** The worker runs as built JavaScript next to this file (`dist/cli/verify-worker.js`). */
function verifyWorkerPath(): string {
  const workerPath = fileURLToPath(new URL('./verify-worker.js', import.meta.url));
  if (!existsSync(workerPath)) {
    throw txlogError('IO_ERROR', `the verify worker is missing at ${workerPath}; build txlog first (npm run build)`);
  }
  return workerPath;
}

/** One task per segment; as many threads as cores, never more than segments. */
async function verifyInWorkers(files: WalFiles): Promise<SegmentScan[]> {
  const tasks = segmentTasks(files);
  const threads = Math.max(1, Math.min(tasks.length, availableParallelism()));
  const pool = new Piscina<SegmentTask, SegmentScan>({
    filename: verifyWorkerPath(),
    minThreads: threads,
    maxThreads: threads,
  });
  const sizes = tasks.map((task) => nodePlatform.fileSystem.stat(path.join(task.walDir, task.segment))?.sizeBytes ?? 0);
  const progress = startProgress('verifying', sizes.reduce((sum, size) => sum + size, 0));
  try {
    return await Promise.all(
      tasks.map(async (task, index) => {
        let scan: SegmentScan;
        try {
          scan = await pool.run(task);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw txlogError('IO_ERROR', `verifying ${task.segment} failed: ${message}`, { segment: task.segment }, error);
        }
        progress.advance(sizes[index] ?? 0);
        return scan;
      }),
    );
  } finally {
    progress.done();
    await pool.destroy();
  }
}

function resultOf(report: LogReport): 'clean' | 'torn' | 'corrupt' {
  if (report.problems.length > 0) return 'corrupt';
  return report.tail.state === 'torn' ? 'torn' : 'clean';
}

/** The JSON form: everything the text shows, with exact numbers. */
function reportJson(report: LogReport): Record<string, unknown> {
  return {
    result: resultOf(report),
    walDir: report.walDir,
    formatVersions: report.formatVersions,
    records: report.records,
    recordsByType: report.recordsByType,
    firstLsn: report.firstLsn,
    lastLsn: report.lastLsn,
    epochs: report.epochs,
    tail: report.tail,
    problems: report.problems,
    segments: report.segments.map((scan) => ({
      segment: scan.segment,
      sizeBytes: scan.sizeBytes,
      usedBytes: scan.usedBytes,
      formatVersion: scan.formatVersion,
      firstLsn: scan.firstLsn,
      lastLsn: scan.lastLsn,
      records: scan.records,
      epochs: scan.epochs,
    })),
  };
}

function summaryLines(report: LogReport): string[] {
  const rows = [['SEGMENT', 'SIZE', 'USED', 'LSN', 'RECORDS', 'EPOCHS', 'STATE']];
  for (const scan of report.segments) {
    rows.push([
      scan.segment,
      formatBytes(scan.sizeBytes),
      formatBytes(scan.usedBytes),
      lsnRange(scan.firstLsn, scan.lastLsn),
      String(scan.records),
      scan.epochs.length === 0 ? '-' : scan.epochs.join(','),
      segmentState(report, scan),
    ]);
  }
  return [...headlineLines(report), '', ...formatTable(rows)];
}

function verificationLines(report: LogReport): string[] {
  const rows = [['SEGMENT', 'LSN', 'RECORDS', 'RESULT']];
  for (const scan of report.segments) {
    rows.push([scan.segment, lsnRange(scan.firstLsn, scan.lastLsn), String(scan.records), segmentState(report, scan)]);
  }
  const problems = report.problems.length;
  const verdict =
    problems > 0 ? `corrupt (${problems} problem${problems === 1 ? '' : 's'})` : report.tail.state === 'torn' ? 'sound, with a torn tail' : 'clean';
  return [`verified ${report.segments.length} segments in ${report.walDir}: ${verdict}`, ...headlineLines(report).slice(1), '', ...formatTable(rows)];
}

function headlineLines(report: LogReport): string[] {
  const byType = Object.entries(report.recordsByType)
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
  const epochs = report.epochs.length === 0 ? '' : `, epochs ${report.epochs.join(',')}`;
  const range = report.firstLsn === null || report.lastLsn === null ? 'no records' : `LSN ${report.firstLsn}..${report.lastLsn}`;
  const problems = report.problems.length;
  const damage = problems === 0 ? '' : ` (damaged: ${problems} problem${problems === 1 ? '' : 's'}, below)`;
  return [
    `WAL      ${report.walDir}`,
    `format   version ${report.formatVersions.join(', ') || '-'}`,
    `segments ${report.segments.length}`,
    `records  ${report.records}${byType === '' ? '' : ` (${byType})`}, ${range}${epochs}${damage}`,
    `tail     ${describeTail(report.tail)}`,
  ];
}

function segmentState(report: LogReport, scan: SegmentScan): string {
  const problems = report.problems.filter((problem) => problem.segment === scan.segment);
  if (problems.length > 0) return problems.map(describeProblemHere).join('; ');
  if (scan.torn !== undefined) return `torn tail: ${scan.torn.bytes} bytes at byte offset ${scan.torn.offset}`;
  return 'ok';
}

function describeProblemHere(problem: LogProblem): string {
  return `corrupt at byte offset ${problem.offset}, LSN ${problem.lsn}: ${problem.reason}`;
}

function lsnRange(firstLsn: number, lastLsn: number): string {
  return lastLsn < firstLsn ? '-' : `${firstLsn}..${lastLsn}`;
}

const byteUnits = ['KiB', 'MiB', 'GiB', 'TiB'];

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < byteUnits.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${byteUnits[unit]}`;
}

/**
 * `txlog inspect DIR --records`: one line (or one JSON object) per record, streamed segment by
 * segment in LSN order, so a log of any size prints in constant memory. Reading stops at the
 * first damaged segment, after printing every record before the damage, and the exit code says
 * so; a torn tail ends the listing like the end of the log (with a warning).
 */
import * as path from 'node:path';
import { parseSegmentFileName } from '../wal/format.js';
import { exitCodes, LineOutput, printWarning } from './common.js';
import { buildLogReport, finishReport } from './log-report.js';
import { matchesFilter, recordJson, recordLine, recordLineHeadings, viewRecord, type RecordFilter, type RecordView } from './record-view.js';
import { findWalFiles, segmentFrames, type SegmentScan } from './wal-files.js';
import type { RecordsRequest } from './inspect-request.js';

/** Text columns have fixed widths: the listing streams, so it cannot measure the rows first. */
const columnWidths = [12, 6, 8, 8];

export async function printRecords(request: RecordsRequest): Promise<number> {
  const files = findWalFiles(request.dir);
  for (const name of files.ignored) printWarning(`ignoring ${path.join(files.walDir, name)}: not a segment file name`);
  const filter = toFilter(request);
  const output = new LineOutput();
  const format = request.json ? (view: RecordView): string => JSON.stringify(recordJson(view)) : textLine;
  if (!request.json) await output.line(textRow(recordLineHeadings));
  const scans: SegmentScan[] = [];
  let printed = 0;
  for (let index = firstSegmentIndex(files.segments, request.fromLsn); index < files.segments.length; index++) {
    const segment = files.segments[index]!;
    const task = { walDir: files.walDir, segment, isLast: index === files.segments.length - 1 };
    for (const frame of segmentFrames(task, (scan) => scans.push(scan))) {
      if (frame.lsn < request.fromLsn) continue;
      const view = viewRecord(frame, segment);
      if (!matchesFilter(view, filter)) continue;
      await output.line(format(view));
      printed += 1;
      if (printed >= request.limit) {
        await output.flush();
        return exitCodes.done;
      }
    }
    const scan = scans[scans.length - 1];
    if (scan?.problem !== undefined || scan?.refused !== undefined) break;
  }
  await output.flush();
  return finishReport(buildLogReport(files.walDir, scans, files.segments.length), request.strict);
}

function toFilter(request: RecordsRequest): RecordFilter {
  const filter: RecordFilter = {};
  if (request.stream !== undefined) filter.stream = request.stream;
  if (request.clientId !== undefined) filter.clientId = request.clientId;
  return filter;
}

/** The last segment whose first LSN is at most `fromLsn`: the earlier ones hold only lower LSNs. */
function firstSegmentIndex(segments: readonly string[], fromLsn: number): number {
  let found = 0;
  segments.forEach((segment, index) => {
    if ((parseSegmentFileName(segment) ?? 0) <= fromLsn) found = index;
  });
  return found;
}

function textLine(view: RecordView): string {
  return textRow(recordLine(view));
}

function textRow(cells: readonly string[]): string {
  return cells.map((cell, column) => cell.padEnd(columnWidths[column] ?? 0)).join(' ').trimEnd();
}

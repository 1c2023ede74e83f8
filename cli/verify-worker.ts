/**
 * A `txlog inspect --verify` worker (piscina): scans one whole segment, checking every frame's
 * checksum and LSN, and returns its verdict. It loads as built JavaScript
 * (`dist/cli/verify-worker.js`), resolved by `inspect-verify.ts` next to itself.
 */
import { scanSegmentFile, type SegmentScan, type SegmentTask } from './wal-files.js';

export default function verifySegment(task: SegmentTask): SegmentScan {
  return scanSegmentFile(task);
}

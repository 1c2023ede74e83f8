/**
 * Raw floors measured beside the WAL in the same run: what plain synchronous syscalls cost on
 * this disk for the same bytes, so the WAL's numbers can be read as a ratio to what the hardware
 * allows. Each writes into a preallocated (zero-filled, fdatasync'd) file, so no fdatasync has to
 * update the file size, like the WAL's preallocated segments.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { elapsedNs, type LatencySamples } from './stats.js';

export interface FloorOptions {
  dir: string;
  /** Bytes written per record (the WAL frame size: payload plus its 24-byte header). */
  recordBytes: number;
  durationMs: number;
  /** Size of the preallocated file; writing wraps around at its end. */
  fileBytes: number;
}

export interface FloorResult {
  /** One sample per write (and fdatasync), in nanoseconds. */
  samples: LatencySamples;
  records: number;
  seconds: number;
}

function preallocatedFile(options: FloorOptions, name: string): number {
  const filePath = path.join(options.dir, name);
  const fd = fs.openSync(filePath, 'w+');
  const zeros = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < options.fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, Math.min(zeros.length, options.fileBytes - at), at);
  fs.fdatasyncSync(fd);
  return fd;
}

/**
 * One record at a time: write then fdatasync (`sync: true`), or write alone (`sync: false`),
 * with `batchRecords` records per write (1 for the latency floor).
 */
export function measureFloor(options: FloorOptions & { batchRecords: number; sync: boolean; samples: LatencySamples }): FloorResult {
  const name = `floor-${options.batchRecords}-${options.sync ? 'sync' : 'nosync'}.tmp`;
  const fd = preallocatedFile(options, name);
  const batch = Buffer.alloc(options.recordBytes * options.batchRecords, 0x61);
  const samples = options.samples;
  let position = 0;
  let records = 0;
  try {
    const startNs = process.hrtime.bigint();
    const endNs = startNs + BigInt(options.durationMs) * 1_000_000n;
    while (process.hrtime.bigint() < endNs) {
      if (position + batch.length > options.fileBytes) position = 0;
      const operationNs = process.hrtime.bigint();
      fs.writeSync(fd, batch, 0, batch.length, position);
      if (options.sync) fs.fdatasyncSync(fd);
      samples.add(elapsedNs(operationNs));
      position += batch.length;
      records += options.batchRecords;
    }
    return { samples, records, seconds: elapsedNs(startNs) / 1e9 };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(path.join(options.dir, name), { force: true });
  }
}

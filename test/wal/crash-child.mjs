// Child process of test/wal/crash.test.ts: appends to a WAL with fsync 'always' from several
// concurrent appenders until it is SIGKILLed, and records every acknowledged LSN in a side file
// the moment its promise resolves (writeSync: the line is in the kernel before the next await).
//
// Usage: node crash-child.mjs WAL_DIR ACK_FILE ROUND SEED PREALLOCATE(0|1) SYNC_ON_WORKER(0|1)
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { Wal } from '../../dist/wal/index.js';

const [walDir, ackFile, roundText, seedText, preallocateText, workerText] = process.argv.slice(2);
const round = Number(roundText);
const appenders = 8;
const segmentBytes = 8192;

// Never outlive a parent that died without killing us.
setTimeout(() => process.exit(3), 30_000).unref();

let state = Number(seedText) >>> 0;
function randomInteger(min, max) {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return min + Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (max - min + 1));
}

/** Must match `expectedPayload` in crash.test.ts. */
function payloadOf(appender, sequence, sizeBytes) {
  const digest = createHash('sha256').update(`${round}:${appender}:${sequence}:${sizeBytes}`).digest('hex');
  return { round, appender, sequence, body: digest.repeat(Math.ceil(sizeBytes / 64) + 1).slice(0, sizeBytes) };
}

const wal = await Wal.open({
  dir: walDir,
  fsync: 'always',
  segmentBytes,
  preallocate: preallocateText === '1',
  syncOnWorkerThread: workerText === '1',
  log: () => {},
});
if (wal.lastEpoch > round) throw new Error(`log epoch ${wal.lastEpoch} above round ${round}`);
const acks = openSync(ackFile, 'a');
process.stdout.write(`ready ${wal.lastLsn}\n`);

let acknowledgedAny = false;

async function appender(index) {
  for (let sequence = 0; ; sequence++) {
    const sizeBytes = randomInteger(0, 1) === 0 ? randomInteger(0, 64) : randomInteger(0, 2500);
    const lsn = await wal.append(1 + (sequence % 3), payloadOf(index, sequence, sizeBytes), round);
    writeSync(acks, `${lsn} ${round} ${index} ${sequence} ${sizeBytes}\n`);
    if (!acknowledgedAny) {
      acknowledgedAny = true;
      process.stdout.write('acknowledged\n');
    }
  }
}

try {
  await Promise.all(Array.from({ length: appenders }, (_, index) => appender(index)));
} finally {
  closeSync(acks);
}

/**
 * State rebuild benchmark: how fast a store rebuilds its LMDB state from the WAL (what the first
 * open after an upgrade of the state layout does, or after a machine crash under the boot-id
 * rule). Writes a log of `--events` one-event commits (the built-in append, 256 clients with
 * exactly-once ids, `fsync: 'never'`), closes the store, removes its state, and times the open
 * that rebuilds it; `--rounds` times over copies of the same log.
 *
 *   npm run build && node dist/bench/rebuild-bench.js [--events 100000] [--rounds 3] [--json] [--dir D]
 *
 * Reports events per second and CPU microseconds per event of this process (all threads) for
 * each round, the time to open the rebuilt store again (the WAL's open, nothing to apply), and
 * their medians. Issue 11's target is 200,000 events/s for a 1M-event log.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../engine/index.js';
import { median } from './stats.js';
import { eventOf } from './txlog-subjects.js';

const writers = 256;

interface Round {
  events: number;
  elapsedMs: number;
  eventsPerSecond: number;
  cpuUsPerEvent: number;
  /** Opening the store again once rebuilt: the WAL's open (its tail segment judged) and nothing to apply. */
  reopenMs: number;
}

function parseArguments(): { events: number; rounds: number; json: boolean; dir: string } {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      dir: { type: 'string', default: os.tmpdir() },
    },
  });
  const events = Number(values.events);
  const rounds = Number(values.rounds);
  if (!Number.isSafeInteger(events) || events < 1000 || events > 10_000_000) throw new Error('--events must be an integer in [1000, 10000000]');
  if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be an integer in [1, 20]');
  return { events, rounds, json: values.json === true, dir: values.dir ?? os.tmpdir() };
}

/** Writes `events` one-event commits into a new store at `dir` and closes it. */
async function writeLog(dir: string, events: number): Promise<void> {
  const store = await openStore({ dir, fsync: 'never', log: () => {} });
  const event = eventOf(200);
  let started = 0;
  const writer = async (index: number): Promise<void> => {
    for (let requestId = 1; started < events; requestId++) {
      started += 1;
      await store.execute('append', { stream: `stream-${index}`, events: [event] }, { clientId: `client-${index}`, requestId });
    }
  };
  await Promise.all(Array.from({ length: writers }, (_, index) => writer(index)));
  await store.close();
}

async function rebuildRound(logDir: string, roundDir: string, events: number): Promise<Round> {
  fs.cpSync(path.join(logDir, 'wal'), path.join(roundDir, 'wal'), { recursive: true });
  const startedMs = performance.now();
  const cpuBefore = process.cpuUsage();
  const store = await openStore({ dir: roundDir, fsync: 'never', log: () => {} });
  const elapsedMs = performance.now() - startedMs;
  const cpu = process.cpuUsage(cpuBefore);
  // The rebuild must hold every event of the log, or its speed means nothing.
  const [last] = await store.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 1 });
  await store.close();
  if (last?.position !== events - 1) throw new Error(`the rebuilt state ends at position ${String(last?.position)}, not ${events - 1}`);
  const reopenStartedMs = performance.now();
  const reopened = await openStore({ dir: roundDir, fsync: 'never', log: () => {} });
  const reopenMs = performance.now() - reopenStartedMs;
  await reopened.close();
  return { events, elapsedMs, eventsPerSecond: (events / elapsedMs) * 1000, cpuUsPerEvent: (cpu.user + cpu.system) / events, reopenMs };
}

async function main(): Promise<void> {
  const options = parseArguments();
  const root = fs.mkdtempSync(path.join(options.dir, 'txlog-rebuild-bench-'));
  try {
    const logDir = path.join(root, 'log');
    await writeLog(logDir, options.events);
    const rounds: Round[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const roundDir = path.join(root, `round-${round}`);
      rounds.push(await rebuildRound(logDir, roundDir, options.events));
      fs.rmSync(roundDir, { recursive: true, force: true });
    }
    const summary = {
      events: options.events,
      loadAverage: os.loadavg(),
      rounds,
      medianEventsPerSecond: median(rounds.map((round) => round.eventsPerSecond)),
      medianCpuUsPerEvent: median(rounds.map((round) => round.cpuUsPerEvent)),
      medianReopenMs: median(rounds.map((round) => round.reopenMs)),
    };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      return;
    }
    for (const [index, round] of rounds.entries()) {
      process.stdout.write(`round ${index + 1}: ${round.events} events rebuilt in ${round.elapsedMs.toFixed(0)} ms: ${round.eventsPerSecond.toFixed(0)} events/s, ${round.cpuUsPerEvent.toFixed(1)} µs CPU/event; reopened in ${round.reopenMs.toFixed(0)} ms\n`);
    }
    process.stdout.write(`median: ${summary.medianEventsPerSecond.toFixed(0)} events/s, ${summary.medianCpuUsPerEvent.toFixed(1)} µs CPU/event, reopen ${summary.medianReopenMs.toFixed(0)} ms (load average ${summary.loadAverage.map((load) => load.toFixed(2)).join(' ')})\n`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`rebuild-bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

/**
 * A seeded property test of optimistic concurrency: many concurrent executes of a handler that
 * reads a stream and appends with the version it saw, on a few streams, with random awaits inside
 * the handler so transactions interleave differently on every seed. Whatever the interleaving:
 * versions are dense per stream, global positions are dense, every transaction either committed
 * or failed with WRONG_EXPECTED_VERSION, each committed transaction's event sits exactly where it
 * says, the count of committed events equals the stream lengths, and a replay of the log finds
 * no divergence. Prints its seed; `TXLOG_SEED=<seed>` replays it.
 */
import { describe, expect, it } from 'vitest';
import { defineService, type Context, type Store } from '../../engine/index.js';
import { replayLog } from '../../engine/replay.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import { useTempDir } from '../helpers/temp.js';
import { openQuietStore } from '../helpers/store.js';

const newDir = useTempDir('txlog-concurrency-');
const rounds = 4;
const transactionsPerRound = 300;

interface IncrementArgs {
  stream: string;
  id: number;
  /** Awaits before the read, between read and append, and before returning: kinds 0 (microtask) or 1 (macrotask). */
  pauses: number[][];
}

async function pause(kinds: readonly number[]): Promise<void> {
  for (const kind of kinds) {
    if (kind === 0) await Promise.resolve();
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const counterService = defineService({
  name: 'counters',
  commands: {
    async increment(ctx: Context, args: IncrementArgs) {
      await pause(args.pauses[0] ?? []);
      const { version } = await ctx.readStream(args.stream);
      await pause(args.pauses[1] ?? []);
      ctx.append(args.stream, [{ type: 'Incremented', data: { id: args.id } }], { expectedVersion: version });
      await pause(args.pauses[2] ?? []);
      return { sawVersion: version };
    },
  },
});

async function runRound(store: Store, random: ReturnType<typeof seededRandom>, round: number): Promise<void> {
  const streams = ['counter-a', 'counter-b', 'counter-c'];
  const sends = Array.from({ length: transactionsPerRound }, (_, id) => {
    const args: IncrementArgs = {
      stream: random.pick(streams),
      id,
      pauses: [0, 1, 2].map(() => Array.from({ length: random.integer(0, 3) }, () => random.integer(0, 1))),
    };
    const sent = store.execute('increment', args, { clientId: `client-${id % 16}`, requestId: round * 1000 + Math.floor(id / 16) + 1 });
    return sent.then(
      (reply) => ({ args, reply: reply as { sawVersion: number }, code: undefined }),
      (error: { code: string }) => ({ args, reply: undefined, code: error.code }),
    );
  });
  const outcomes = await Promise.all(sends);

  const committed = outcomes.filter((outcome) => outcome.code === undefined);
  const failedCodes = new Set(outcomes.filter((outcome) => outcome.code !== undefined).map((outcome) => outcome.code));
  expect([...failedCodes].every((code) => code === 'WRONG_EXPECTED_VERSION'), `failure codes ${[...failedCodes].join(', ')}`).toBe(true);
  expect(committed.length).toBeGreaterThan(0);

  const all = await store.readAll({ fromPosition: 0, maxCount: 4096 });
  expect(all.map((event) => event.position)).toEqual(all.map((_, index) => index));
  let streamLengths = 0;
  for (const stream of streams) {
    const slice = await store.readStream(stream);
    expect(slice.events.map((event) => event.version)).toEqual(slice.events.map((_, index) => index));
    expect(slice.version).toBe(slice.events.length - 1);
    streamLengths += slice.events.length;
    // Each committed transaction's event is at the version after the one it saw.
    for (const outcome of committed.filter((candidate) => candidate.args.stream === stream)) {
      const event = slice.events[outcome.reply!.sawVersion + 1];
      expect(event?.data).toEqual({ id: outcome.args.id });
    }
  }
  // Events from this round and earlier rounds: every committed transaction wrote exactly one.
  expect(streamLengths).toBe(all.length);
  const idsThisRound = all.slice(all.length - committed.length).map((event) => (event.data as { id: number }).id);
  expect(idsThisRound.sort((left, right) => left - right)).toEqual(committed.map((outcome) => outcome.args.id).sort((left, right) => left - right));
}

describe('optimistic concurrency under random interleavings', () => {
  it(`keeps versions and positions dense over ${rounds} rounds of ${transactionsPerRound} concurrent transactions`, async () => {
    const seed = testSeed('engine concurrency');
    const random = seededRandom(seed);
    const dir = newDir();
    const { store } = await openQuietStore(dir, { service: counterService });
    let totalCommitted = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        const before = (await store.readAll({ maxCount: 4096 })).length;
        await runRound(store, random, round);
        totalCommitted += (await store.readAll({ maxCount: 4096 })).length - before;
      }
    } finally {
      await store.close();
    }
    expect(totalCommitted).toBeGreaterThan(rounds);
    const report = await replayLog({ dir, service: counterService });
    expect(report.commits).toBe(rounds * transactionsPerRound);
    expect(report.divergences).toEqual([]);
  });
});

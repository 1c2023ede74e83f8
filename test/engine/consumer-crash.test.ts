/**
 * Proves a durable consumer handles every event exactly once, as far as its txlog writes show,
 * across SIGKILLs of the process running it (real child processes running dist/): each seeded
 * round starts the consumer again on the same directory while new source events keep arriving,
 * and kills it at a seeded moment (in catch-up or live). At the end, the stream `handled` holds
 * each source event's position exactly once, in log order, and the checkpoint covers the last.
 *
 * Needs `npm run build` first. Prints its seed; `TXLOG_SEED` replays the kill moments (the
 * interleaving inside a real process stays the kernel's).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../engine/index.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import { openQuietStore } from '../helpers/store.js';
import { exited, killAndWait, useChildProcesses, useTempDir } from '../helpers/temp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const childScript = path.join(here, 'consumer-child.mjs');
const newDir = useTempDir('txlog-consumer-crash-');
const spawnChild = useChildProcesses();

const rounds = 6;
const liveEventsPerRound = 40;

/** Resolves when the child has printed `count` handling lines or `done`, or exited. */
function watch(child: ReturnType<typeof spawnChild>): { ready: Promise<void>; handled: (count: number) => Promise<void>; errors: () => string } {
  let handling = 0;
  let finished = false;
  let partial = '';
  let errors = '';
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const wake = (): void => {
    for (const waiter of waiters.splice(0)) {
      if (finished || handling >= waiter.count) waiter.resolve();
      else waiters.push(waiter);
    }
  };
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') resolve();
        else if (line === 'done') finished = true;
        else if (line.startsWith('handling ')) handling += 1;
      }
      wake();
    });
    child.once('exit', (code, signal) => {
      finished = true;
      wake();
      reject(new Error(`child exited (${code ?? signal}) before ready: ${errors}`));
    });
  });
  ready.catch(() => undefined);
  return {
    ready,
    handled: (count) => new Promise<void>((resolve) => (waiters.push({ count, resolve }), wake())),
    errors: () => errors,
  };
}

async function positionsOf(store: Store, stream: string, field?: 'position'): Promise<number[]> {
  const positions: number[] = [];
  for await (const event of store.readStream(stream)) positions.push(field === undefined ? event.position : (event.data as { position: number }).position);
  return positions;
}

describe('durable consumer across SIGKILLs', () => {
  it(`handles every event exactly once over ${rounds} seeded kills`, async () => {
    expect(existsSync(path.join(here, '..', '..', 'dist', 'engine', 'consumer.js')), 'run `npm run build` first').toBe(true);
    const random = seededRandom(testSeed('consumer crash'));
    const dir = newDir();
    const seeding = await openQuietStore(dir);
    for (let stream = 0; stream < 4; stream++) {
      await seeding.store.append(`orders-${stream}`, Array.from({ length: random.integer(50, 150) }, (_, index) => ({ type: 'Placed', data: { index } })));
    }
    await seeding.store.close();

    let kills = 0;
    for (let round = 0; round < rounds; round++) {
      const child = spawnChild(process.execPath, [childScript, dir, `${liveEventsPerRound}`]);
      const watched = watch(child);
      await watched.ready;
      await watched.handled(random.integer(1, 120));
      if (child.exitCode === null) kills += 1;
      await killAndWait(child);
      const exit = await exited(child);
      expect(exit.code === 0 || exit.signal === 'SIGKILL', watched.errors()).toBe(true);
    }
    expect(kills).toBeGreaterThan(0);

    const { store } = await openQuietStore(dir);
    try {
      let caughtUp!: () => void;
      const reached = new Promise<void>((resolve) => (caughtUp = resolve));
      const consumer = await store.consumer({
        name: 'projector',
        filter: { streamPrefix: 'orders-' },
        handle: (event, context) => context.append('handled', [{ type: 'Handled', data: { position: event.position } }]),
        onCaughtUp: () => caughtUp(),
      });
      await Promise.race([reached, consumer.done]);
      await consumer.stop();
      await consumer.done;
      const sources: number[] = [];
      for await (const event of store.readAll({ filter: { streamPrefix: 'orders-' } })) sources.push(event.position);
      expect(sources.length).toBeGreaterThanOrEqual(200);
      expect(await positionsOf(store, 'handled', 'position')).toEqual(sources);
      const [checkpoint] = (await store.readStream('$consumer-projector', { direction: 'backwards', maxCount: 1 })).events;
      expect((checkpoint?.data as { position: number }).position).toBeGreaterThanOrEqual(sources.at(-1)!);
    } finally {
      await store.close();
    }
  });
});

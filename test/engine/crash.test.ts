/**
 * Proves exactly-once across real crashes (child processes running dist/, SIGKILL by pid,
 * `fsync: 'always'`):
 * 1. Killed mid-load, with many concurrent executes on a few streams, at a seeded random moment,
 *    round after round: reopened in the parent and sent every request again (acknowledged or not)
 *    with the same ids, each acknowledged request returns exactly the reply the child got, every
 *    transaction is applied exactly once, and the streams hold the same events as a straight run.
 * 2. Killed between journal and commit (the handler kills its own process after its first
 *    `ctx.call` is journaled): the request id counts as taken, a different request under it is
 *    refused (REQUEST_ID_REUSED) without calling out, and the resend does not call that `fn`
 *    again (the side file has one line per call index) and commits with the journaled result.
 *
 * Needs `npm run build` first. Prints its seed; `TXLOG_SEED` replays the kill timings (the
 * interleaving inside a real process stays the kernel's).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../engine/index.js';
import { recordTypes } from '../../engine/records.js';
import { replicationHooksOf } from '../../engine/replication-hooks.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import { exited, killAndWait, useChildProcesses, useTempDir } from '../helpers/temp.js';
import { commitOf, journalRecords, openQuietStore } from '../helpers/store.js';
// @ts-expect-error: a plain ES module shared with the child process, without type declarations.
import { crashService, depositRequest } from './crash-service.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repositoryRoot = path.resolve(here, '..', '..');
const childScript = path.join(here, 'crash-child.mjs');
const newDir = useTempDir('txlog-engine-crash-');
const spawnChild = useChildProcesses();

const rounds = 4;
const clients = 32;
const requestsPerClient = 120;
/**
 * Every request is resent after each kill, so each client's whole history must stay inside its
 * session window (the default 64 would answer an old resend with REQUEST_EXPIRED once a fast run
 * has committed past it). The child opens its store with the same window.
 */
const requestWindow = 256;
const streams = 5;

type DepositRequest = { clientId: string; requestId: number; args: { stream: string; tag: string } };
const requestOf = depositRequest as (client: number, requestId: number, streams: number) => DepositRequest;

beforeAll(() => {
  const built = path.join(repositoryRoot, 'dist', 'engine', 'store.js');
  if (!existsSync(built)) throw new Error('dist/ is missing: run `npm run build` first');
  const newestSourceMs = Math.max(
    ...['engine', 'wal'].flatMap((dir) => readdirSync(path.join(repositoryRoot, dir)).map((name) => statSync(path.join(repositoryRoot, dir, name)).mtimeMs)),
  );
  if (statSync(built).mtimeMs < newestSourceMs) throw new Error('dist/ is older than engine/ or wal/: run `npm run build`');
});

/** Collects a child's stdout lines; `ready` resolves on its ready line and fails if it exits first. */
function watchChild(child: ReturnType<typeof spawnChild>): { lines: string[]; ready: Promise<void>; errors: () => string } {
  const lines: string[] = [];
  let partial = '';
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) {
        lines.push(line);
        if (line === 'ready') resolve();
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before ready: ${errors}`)));
  });
  return { lines, ready, errors: () => errors };
}

/** Every stream's events as sorted tags: the state a run leaves, whatever its interleaving. */
async function tagsByStream(store: Store): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (let stream = 0; stream < streams; stream++) {
    const slice = await store.readStream(`account-${stream}`);
    expect(slice.events.map((event) => event.version)).toEqual(slice.events.map((_, index) => index));
    result[`account-${stream}`] = slice.events.map((event) => (event.data as { tag: string }).tag).sort();
  }
  return result;
}

/** Sends every request, each client in order, all clients at once; returns the replies by tag. */
async function sendAll(store: Store): Promise<Map<string, unknown>> {
  const replies = new Map<string, unknown>();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let requestId = 1; requestId <= requestsPerClient; requestId++) {
        const request = requestOf(client, requestId, streams);
        replies.set(request.args.tag, await store.execute('deposit', request.args, { clientId: request.clientId, requestId }));
      }
    }),
  );
  return replies;
}

describe('crash recovery of the store with real processes', () => {
  it(`applies each acknowledged transaction exactly once across ${rounds} SIGKILLs mid-load`, async () => {
    const seed = testSeed('engine crash mid-load');
    const random = seededRandom(seed);

    const straightDir = newDir();
    const straight = await openQuietStore(straightDir, { service: crashService, requestWindow });
    await sendAll(straight.store);
    const expected = await tagsByStream(straight.store);
    await straight.store.close();
    expect(Object.values(expected).flat().length).toBe(clients * requestsPerClient);

    let acknowledgedTotal = 0;
    for (let round = 0; round < rounds; round++) {
      const dir = newDir();
      const child = spawnChild(process.execPath, [childScript, 'load', dir, `${clients}`, `${requestsPerClient}`, `${streams}`]);
      const watched = watchChild(child);
      await watched.ready;
      const killAfterMs = random.integer(20, 250);
      await new Promise((resolve) => setTimeout(resolve, killAfterMs));
      // On a loaded machine the child may not have acknowledged anything yet: the first round
      // waits for its first acknowledgement (a kill before any proves little), the others not.
      for (const deadline = Date.now() + 10_000; round === 0 && !watched.lines.some((line) => line.startsWith('ack ')) && Date.now() < deadline; ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await killAndWait(child);
      const acknowledged = watched.lines
        .filter((line) => line.startsWith('ack '))
        .map((line) => {
          const [, client, requestId, ...reply] = line.split(' ');
          return { client: Number(client), requestId: Number(requestId), reply: JSON.parse(reply.join(' ')) as unknown };
        });
      const finished = watched.lines.includes('done');
      console.log(`[engine crash mid-load] round ${round}: killed after ${killAfterMs} ms, ${acknowledged.length} acknowledged${finished ? ' (child had finished)' : ''}`);
      acknowledgedTotal += acknowledged.length;

      const { store } = await openQuietStore(dir, { service: crashService, requestWindow });
      try {
        const replies = await sendAll(store);
        for (const ack of acknowledged) {
          const request = requestOf(ack.client, ack.requestId, streams);
          expect(replies.get(request.args.tag), `reply of ${request.args.tag}`).toEqual(ack.reply);
        }
        expect(await tagsByStream(store)).toEqual(expected);
        expect(store.appliedLsn).toBe(store.lastLsn);
      } finally {
        await store.close();
      }
    }
    expect(acknowledgedTotal).toBeGreaterThan(0);
  });

  it('a resend after a kill between journal and commit does not call fn again and commits the journaled result', async () => {
    const dir = newDir();
    const sideFile = path.join(dir, 'side-effects.txt');
    const child = spawnChild(process.execPath, [childScript, 'charge', dir, sideFile], {
      env: { ...process.env, TXLOG_CRASH_KILL_AFTER_FIRST_CALL: '1' },
    });
    const watched = watchChild(child);
    const exit = await exited(child);
    expect(exit.signal, watched.errors()).toBe('SIGKILL');
    expect(watched.lines.some((line) => line.startsWith('ack '))).toBe(false);
    expect(readFileSync(sideFile, 'utf8')).toBe('payer:1:0\n');

    const { store } = await openQuietStore(dir, { service: crashService });
    try {
      // The journal entry survived; no commit did.
      expect(journalRecords(store).map((entry) => [entry.callIndex, entry.result])).toEqual([[0, `payer:1:0@${child.pid}`]]);
      expect(commitOf(store, 'payer', 1)).toBeUndefined();
      // A restarted client asking for its next id must not get 1 back: request 1 left a trace.
      expect(store.latestRequestId('payer')).toBe(1);
      // A different request forced under id 1 is refused, and the gateway is not called for it.
      const otherSideFile = path.join(dir, 'other-side-effects.txt');
      await expect(store.execute('charge', { sideFile: otherSideFile }, { clientId: 'payer', requestId: 1 })).rejects.toMatchObject({
        code: 'REQUEST_ID_REUSED',
      });
      expect(existsSync(otherSideFile)).toBe(false);
      expect(readFileSync(sideFile, 'utf8')).toBe('payer:1:0\n');
      const reply = await store.execute('charge', { sideFile }, { clientId: 'payer', requestId: 1 });
      expect(reply).toEqual({ first: `payer:1:0@${child.pid}`, second: `payer:1:1@${process.pid}` });
      expect(readFileSync(sideFile, 'utf8')).toBe('payer:1:0\npayer:1:1\n');
      const commit = commitOf(store, 'payer', 1);
      expect(commit?.calls).toBe(2);
      expect([...replicationHooksOf(store).readRecords(1)].map((record) => record.type)).toEqual([recordTypes.journal, recordTypes.journal, recordTypes.commit]);
      // And once more: the stored reply, no call at all.
      expect(await store.execute('charge', { sideFile }, { clientId: 'payer', requestId: 1 })).toEqual(reply);
      expect(readFileSync(sideFile, 'utf8')).toBe('payer:1:0\npayer:1:1\n');
      expect((await store.readStream('charges')).events.map((event) => event.data)).toEqual([reply]);
    } finally {
      await store.close();
    }
  });
});

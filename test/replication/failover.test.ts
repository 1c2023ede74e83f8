/**
 * Proves exactly-once across a primary crash, round after round (a fresh pair each round, real
 * `txlog serve` processes, `--fsync always`, the bank service whose deposits charge an external
 * HTTP system that does NOT deduplicate: every request to it gets a fresh charge id `key#n`):
 * several clients pipeline deposits, the primary is SIGKILLed at a seeded random moment, the
 * clients fail over to the backup. Then, on the new primary:
 * - every acknowledged deposit is on its account exactly once, with the very charge id its
 *   reply carried (a lost and re-run transaction would show a second charge, `#2`);
 * - no request is applied twice; each event's charge id was issued by the external system for
 *   that request's idempotency key, and each key appears in the log with one charge only;
 * - the external system saw each key at most twice, and a second time only for requests in
 *   flight at the kill (called by the dead primary before it could journal the result);
 * - every request that failed (TIMEOUT: outcome unknown), resent with its id, is applied once,
 *   so each account's balance equals the exact sum of every deposit issued (a straight run);
 * - the old primary, restarted with `--peer <new primary>`, rejoins as backup and ends with a
 *   WAL identical to the new primary's, record for record.
 *
 * Every other round runs with a shared secret, so every link (client and peer) is TLS 1.3 with
 * the key derived from it: the same guarantees hold with encryption on.
 *
 * Needs `npm run build`. Prints its seed; `TXLOG_SEED` replays the kill timings and shapes (the
 * interleaving inside real processes stays the kernel's). `TXLOG_FAILOVER_ROUNDS` sets rounds.
 */
import { describe, expect, it } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import type { ClientOptions } from '../../replication/client.js';
import { seededRandom, testSeed } from '../helpers/random.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  readAllEvents,
  expectIdenticalLogs,
  sleep,
  startPair,
  usePairFixture,
  statusOf,
  useExternalSystem,
  waitFor,
  waitForPrimaryInSync,
  lightArgs,
  type DepositArgs,
} from './pair.js';

const { nodes, pairDirs } = usePairFixture('txlog-failover-');
const startExternal = useExternalSystem();

const rounds = Number(process.env['TXLOG_FAILOVER_ROUNDS'] ?? 5);
const accounts = 6;

interface Issued {
  clientIndex: number;
  clientId: string;
  requestId: number;
  args: DepositArgs;
  reply?: { chargeId: string; variant: string } | undefined;
  error?: TxlogError;
  /** Sent before the kill and not answered by then. */
  inFlightAtKill: boolean;
}

const keyOf = (clientId: string, requestId: number): string => `${clientId}/${requestId}`;

describe('failover under load', () => {
  it(`loses no acknowledged deposit and applies none twice over ${rounds} SIGKILLs of the primary`, async () => {
    const seed = testSeed('failover');
    const random = seededRandom(seed);
    for (let round = 0; round < rounds; round++) {
      const clientCount = random.integer(3, 5);
      const depth = random.integer(1, 3);
      const killAfterMs = random.integer(150, 1200);
      const runAfterKillMs = random.integer(800, 1500);
      const secret = round % 2 === 1 ? `failover-secret-${seed}` : undefined;
      console.log(`[failover] round ${round}: ${clientCount} clients x ${depth} in flight, kill after ${killAfterMs} ms${secret === undefined ? '' : ', TLS (secret)'}`);
      await runRound(round, clientCount, depth, killAfterMs, runAfterKillMs, secret);
    }
  });
});

async function runRound(round: number, clientCount: number, depth: number, killAfterMs: number, runAfterKillMs: number, secret: string | undefined): Promise<void> {
  const external = await startExternal();
  const dirs = pairDirs();
  const nodeArgs = ['--service', bankServicePath, '--fsync', 'always', '--heartbeat-timeout-ms', '500'];
  const env: Record<string, string> = { TXLOG_TEST_EXTERNAL: external.address };
  if (secret !== undefined) env['TXLOG_SECRET'] = secret;
  // Every connection of this round's clients (and status probes) carries the round's secret.
  const security: Partial<ClientOptions> = secret === undefined ? {} : { secret };
  const pair = await startPair(nodes, dirs, { args: nodeArgs, env, client: security });
  const before = await statusOf(pair.servers[0]!, 2000, security);

  const issued = new Map<string, Issued>();
  const clients = await Promise.all(
    Array.from({ length: clientCount }, (_, index) => connectClient(pair.servers, { clientId: `round${round}-client${index}`, deadlineMs: 15_000, ...security })),
  );
  let killed = false;
  let stop = false;
  const runClient = async (clientIndex: number): Promise<void> => {
    const client = clients[clientIndex]!;
    let nextRequestId = 1;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const requestId = nextRequestId++;
        const entry: Issued = { clientIndex, clientId: client.clientId, requestId, args: depositFor(clientIndex, requestId, accounts), inFlightAtKill: false };
        issued.set(keyOf(client.clientId, requestId), entry);
        const inFlight = { entry };
        inFlightSet.add(inFlight);
        try {
          entry.reply = (await client.execute('deposit', entry.args)) as Issued['reply'];
        } catch (error) {
          if (!(error instanceof TxlogError) || error.code !== 'TIMEOUT') throw error; // Anything else is a bug.
          entry.error = error;
          expect(error.details['requestId']).toBe(requestId);
        } finally {
          inFlightSet.delete(inFlight);
        }
      }
    };
    await Promise.all(Array.from({ length: depth }, () => worker()));
  };
  const inFlightSet = new Set<{ entry: Issued }>();
  const load = Promise.all(clients.map((_, index) => runClient(index)));
  await sleep(killAfterMs);
  for (const { entry } of inFlightSet) entry.inFlightAtKill = true;
  await pair.primary.kill();
  killed = true;
  await sleep(runAfterKillMs);
  // The load goes on until the new primary has served some of it: on a loaded machine the
  // failover itself can take longer than the planned run (a fixed sleep made this flaky).
  const servedAfterKill = (): boolean => [...issued.values()].some((entry) => entry.reply !== undefined && !entry.inFlightAtKill);
  await waitFor('a request acknowledged after the failover', servedAfterKill, 30_000, nodes);
  stop = true;
  await load;
  expect(killed).toBe(true);

  // The backup took over.
  const after = await statusOf(pair.servers[1]!, 2000, security);
  expect(after.role).toBe('primary');
  expect(after.epoch).toBeGreaterThan(before.epoch);
  const acknowledgedAfterKill = [...issued.values()].filter((entry) => entry.reply !== undefined && !entry.inFlightAtKill).length;
  expect(acknowledgedAfterKill, 'the clients were served after the failover').toBeGreaterThan(0);

  // Requests whose outcome stayed unknown are resent with their ids: each applies at most once.
  for (const entry of issued.values()) {
    if (entry.reply !== undefined) continue;
    const resender = await connectClient([pair.servers[1]!], { clientId: entry.clientId, firstRequestId: entry.requestId, ...security });
    try {
      entry.reply = (await resender.execute('deposit', entry.args)) as Issued['reply'];
    } finally {
      await resender.close();
    }
  }

  const events = (await readAllEvents(clients[0]!)).map((event) => ({ event, data: depositData(event) }));
  await Promise.all(clients.map((client) => client.close()));

  // Each request applied exactly once, with the outcome its client was given.
  const byRequest = new Map<string, (typeof events)[number]>();
  for (const item of events) {
    const key = keyOf(item.data.clientId, item.data.requestId);
    expect(byRequest.has(key), `request ${key} applied twice`).toBe(false);
    byRequest.set(key, item);
  }
  for (const [key, entry] of issued) {
    const found = byRequest.get(key);
    expect(found, `request ${key} is missing`).toBeDefined();
    expect(found!.event.stream).toBe(`account-${entry.args.account}`);
    expect(found!.data.amount).toBe(entry.args.amount);
    expect(found!.data.chargeId, `request ${key}: the log holds another charge than the reply`).toBe(entry.reply!.chargeId);
  }
  expect(byRequest.size).toBe(issued.size);

  // The external side: each event's charge was issued for its own key; repeats only at the kill.
  const inFlightKeys = new Set([...issued.values()].filter((entry) => entry.inFlightAtKill).map((entry) => `${entry.clientId}:${entry.requestId}:0`));
  for (const { data } of events) {
    expect(external.charges.get(data.chargeId)).toBe(`${data.clientId}:${data.requestId}:0`);
  }
  expect(external.requests.size).toBe(issued.size);
  for (const [key, count] of external.requests) {
    expect(count, `key ${key}`).toBeLessThanOrEqual(2);
    if (count > 1) expect(inFlightKeys.has(key), `key ${key} charged twice but was not in flight at the kill`).toBe(true);
  }

  // The balances of a straight run: every issued deposit once.
  const expected = new Map<string, number>();
  for (const entry of issued.values()) expected.set(`account-${entry.args.account}`, (expected.get(`account-${entry.args.account}`) ?? 0) + entry.args.amount);
  const actual = new Map<string, number>();
  for (const { event, data } of events) actual.set(event.stream, (actual.get(event.stream) ?? 0) + data.amount);
  expect(actual).toEqual(expected);
  console.log(
    `[failover] round ${round}: ${issued.size} deposits, ${[...issued.values()].filter((entry) => entry.error !== undefined).length} resent after TIMEOUT, ` +
      `${[...external.requests.values()].filter((count) => count > 1).length} keys charged again after the kill (of ${inFlightKeys.size} in flight)`,
  );

  // The old primary rejoins as backup and ends with the same log.
  const rejoined = await nodes.start('A2', dirs.primary, ['--listen', '127.0.0.1:0', '--peer', pair.servers[1]!, '--role', 'primary', ...lightArgs, ...nodeArgs], {
    ...process.env,
    ...env,
  });
  await waitForPrimaryInSync(pair.servers[1]!, 30_000, nodes, security);
  const rejoinedStatus = await statusOf(rejoined.addresses[0]!, 2000, security);
  expect(rejoinedStatus.role).toBe('backup');
  expect(rejoinedStatus.epoch).toBe(after.epoch);
  await rejoined.stop();
  await pair.backup.stop();
  await expectIdenticalLogs(dirs.primary, dirs.backup);
}

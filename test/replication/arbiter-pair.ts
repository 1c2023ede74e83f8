/**
 * Helpers for the tests of a pair with an etcd arbiter (real `txlog serve` processes, a real
 * etcd from test/helpers/etcd.ts): the arbiter flags with test timing, a pair started on fixed
 * ports so either node can be restarted where its peer looks for it, load with journaled
 * external calls that records every acknowledgement, and the final check that every
 * acknowledged deposit is on the primary exactly once, with the charge its reply carried.
 */
import { expect } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import type { Client } from '../../replication/client.js';
import type { NodeStatus } from '../../replication/node.js';
import { freePort } from '../../bench/postgres.js';
import {
  bankServicePath,
  connectClient,
  depositData,
  depositFor,
  lightArgs,
  readAllEvents,
  sleep,
  statusOf,
  waitFor,
  type Nodes,
  type TestNode,
} from './pair.js';

/** Short enough for tests, with margins a noisy 2-core machine cannot eat. */
export const arbiterTiming = { leaseTtlMs: 6000, marginMs: 3000, renewIntervalMs: 500, requestTimeoutMs: 1000 } as const;

/** Generous waits: every one is a poll that ends as soon as its condition holds. */
export const settleWaitMs = 60_000;

export function arbiterArgs(etcdEndpoint: string, prefix = '/txlog/test'): string[] {
  return [
    '--arbiter', `etcd://${etcdEndpoint}${prefix}`,
    '--arbiter-lease-ttl-ms', String(arbiterTiming.leaseTtlMs),
    '--arbiter-margin-ms', String(arbiterTiming.marginMs),
    '--arbiter-renew-interval-ms', String(arbiterTiming.renewIntervalMs),
    '--arbiter-request-timeout-ms', String(arbiterTiming.requestTimeoutMs),
    '--service', bankServicePath,
    '--heartbeat-timeout-ms', '1000',
    '--replica-timeout-ms', '1000',
    '--on-replica-lost', 'continue',
    ...lightArgs,
  ];
}

export interface ArbiterPair {
  addresses: { A: string; B: string };
  /** Starts (or restarts) node A or B on its fixed address, pointing at its peer. */
  start(name: 'A' | 'B', etcdEndpoint?: string): Promise<TestNode>;
  dirs: { A: string; B: string };
}

/** Two nodes on fixed loopback ports, each the other's peer; `etcdFor` gives each its etcd address. */
export async function arbiterPair(nodes: Nodes, dirs: { primary: string; backup: string }, etcdEndpoint: string, env: NodeJS.ProcessEnv = {}): Promise<ArbiterPair> {
  const addresses = { A: `127.0.0.1:${await freePort()}`, B: `127.0.0.1:${await freePort()}` };
  const pairDirs = { A: dirs.primary, B: dirs.backup };
  return {
    addresses,
    dirs: pairDirs,
    start: (name, endpoint = etcdEndpoint) => {
      const peer = name === 'A' ? addresses.B : addresses.A;
      return nodes.start(name, pairDirs[name], ['--listen', addresses[name], '--peer', peer, '--role', 'primary', ...arbiterArgs(endpoint)], env);
    },
  };
}

/** Statuses of the nodes that answer (a dead or stopped one is left out). */
export async function statuses(addresses: string[]): Promise<NodeStatus[]> {
  const answers = await Promise.all(addresses.map((address) => statusOf(address, 1500).catch(() => undefined)));
  return answers.filter((status): status is NodeStatus => status !== undefined);
}

/** Waits until `address` is primary with its backup in sync and both in etcd's in-sync set. */
export async function waitPairedInSet(address: string, members: string[], nodes: Nodes): Promise<NodeStatus> {
  let status: NodeStatus | undefined;
  await waitFor(
    `${address} to be primary, paired, with in-sync set [${members.join(', ')}]`,
    async () => {
      status = await statusOf(address);
      return status.role === 'primary' && status.inSync && !status.alone && sameMembers(status, members);
    },
    settleWaitMs,
    nodes,
  );
  return status!;
}

export function sameMembers(status: NodeStatus, members: string[]): boolean {
  return JSON.stringify(status.arbiter?.inSync?.members ?? []) === JSON.stringify([...members].sort());
}

/** One acknowledged deposit: the charge its reply carried and when the answer came. */
export interface Acknowledgement {
  chargeId: string;
  atMs: number;
}

export interface Load {
  acknowledged: Map<string, Acknowledgement>;
  /** Acknowledgements so far. */
  readonly count: number;
  stop(): Promise<void>;
}

/**
 * `clients` writers, each its own client id and one request at a time, sending deposits (each a
 * journaled external call) to `servers`. A request whose outcome is unknown (TIMEOUT,
 * REPLICA_UNAVAILABLE) or refused for now (NOT_PRIMARY, BUSY) is resent with the same id from a
 * new client until it is answered or the load stops; a final error fails the test.
 */
export function startLoad(servers: string[], clients: number, prefix = 'w'): Load {
  const acknowledged = new Map<string, Acknowledgement>();
  let stopped = false;
  const failures: unknown[] = [];
  const writer = async (index: number): Promise<void> => {
    const clientId = `${prefix}${index}`;
    let client: Client | undefined;
    for (let requestId = 1; !stopped; requestId++) {
      for (;;) {
        if (stopped) break;
        try {
          client ??= await connectClient(servers, { clientId, firstRequestId: requestId, deadlineMs: 5000 });
          const reply = (await client.execute('deposit', depositFor(index, requestId, 5))) as { chargeId: string };
          acknowledged.set(`${clientId}/${requestId}`, { chargeId: reply.chargeId, atMs: Date.now() });
          break;
        } catch (error) {
          if (!(error instanceof TxlogError) || !['TIMEOUT', 'REPLICA_UNAVAILABLE', 'NOT_PRIMARY', 'BUSY', 'CLOSED', 'OUTCOME_UNKNOWN'].includes(error.code)) {
            failures.push(error);
            stopped = true;
            break;
          }
          await client?.close().catch(() => undefined);
          client = undefined;
          await sleep(100);
        }
      }
    }
    await client?.close().catch(() => undefined);
  };
  const running = Promise.all(Array.from({ length: clients }, (_, index) => writer(index)));
  return {
    acknowledged,
    get count() {
      return acknowledged.size;
    },
    async stop() {
      stopped = true;
      await running;
      if (failures.length > 0) throw failures[0];
    },
  };
}

/** Waits until the load has `more` acknowledgements beyond what it had. */
export async function waitForProgress(load: Load, more: number, nodes: Nodes): Promise<void> {
  const target = load.count + more;
  await waitFor(`${more} more acknowledged deposits (at ${load.count})`, () => load.count >= target, settleWaitMs, nodes);
}

/**
 * Every acknowledged deposit is on the primary at `servers` exactly once with the charge its
 * reply carried, no deposit is there twice, and the external system saw each key at most twice
 * (a call whose result was journaled is never made again; one that died before its journal
 * record could be acknowledged may be made once more).
 */
export async function expectNothingLostOrTwice(servers: string[], acknowledged: Map<string, Acknowledgement>, externalRequests?: Map<string, number>): Promise<void> {
  const reader = await connectClient(servers, { clientId: 'checker', deadlineMs: 30_000 });
  const events = await readAllEvents(reader);
  await reader.close();
  const seen = new Map<string, string>();
  for (const event of events) {
    const data = depositData(event);
    const key = `${data.clientId}/${data.requestId}`;
    expect(seen.has(key), `${key} applied twice`).toBe(false);
    seen.set(key, data.chargeId);
  }
  for (const [key, { chargeId }] of acknowledged) {
    expect(seen.get(key), `acknowledged ${key} is missing or carries another charge`).toBe(chargeId);
  }
  for (const [key, count] of externalRequests ?? []) expect(count, `external calls for ${key}`).toBeLessThanOrEqual(2);
}

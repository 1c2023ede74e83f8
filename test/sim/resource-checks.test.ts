/**
 * Proves that the simulator's memory checks (`resource-checks.ts`) can fail, and say where: a
 * snapshot past a structure's limit, an entry without an owner, more held than the memory bound
 * allows, and a node that keeps something once the world has settled each fail with the node,
 * the structure, its size and its bound; a snapshot within every bound passes.
 */
import { describe, expect, it } from 'vitest';
import type { ResourceUsage } from '../../engine/resources.js';
import { ResourceChecks, type ResourceSample } from './resource-checks.js';

class Failed extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(message);
  }
}

const world = { streamsPerCommitMax: 1, peerLinksIdleMax: 4, timersIdleMax: 3 };

function checks(): ResourceChecks {
  return new ResourceChecks((invariant, message) => {
    throw new Failed(invariant, message);
  }, world);
}

/** A node with two requests in progress, each with its transaction and one record not yet released. */
function busyNode(changes: Partial<Record<string, number>> = {}, sample: Partial<ResourceSample> = {}): ResourceSample {
  const sizes: Record<string, [number, number | null]> = {
    walAppendsWaiting: [2, 65_536],
    recordsUnreleased: [2, 81_921],
    recordsReleasedUnapplied: [0, 64],
    releaseWaiters: [2, 81_921],
    applyWaiters: [0, 81_985],
    transactionsRunning: [2, 16_384],
    requestIdsRunning: [2, 16_384],
    handlerDeadlines: [2, 16_384],
    decidedCommits: [2, 81_985],
    streamHeadsUnapplied: [2, 81_985_000],
    clientConnections: [2, 1024],
    clientRequests: [2, 4_194_304],
    requestsOnOneConnection: [1, 4096],
    peerLinks: [2, 66],
    walSegments: [1, null],
  };
  const usage: ResourceUsage = {};
  for (const [name, [size, limit]] of Object.entries(sizes)) usage[name] = { size: changes[name] ?? size, limit };
  return { name: 'a3', usage, timersPending: 4, connectionEndsOpen: 4, directCalls: 0, ...sample };
}

function failure(action: () => void): Failed {
  try {
    action();
  } catch (error) {
    if (error instanceof Failed) return error;
    throw error;
  }
  throw new Error('the check passed');
}

describe('the simulator\'s resource checks', () => {
  it('pass a node within every bound, and one that has let go of everything', () => {
    const resources = checks();
    resources.afterStep([busyNode()]);
    const idle = busyNode({ walAppendsWaiting: 0, recordsUnreleased: 0, releaseWaiters: 0, transactionsRunning: 0, requestIdsRunning: 0, handlerDeadlines: 0, decidedCommits: 0, streamHeadsUnapplied: 0, clientConnections: 0, clientRequests: 0, requestsOnOneConnection: 0 }, { timersPending: 3 });
    resources.afterStep([idle]);
    resources.checkDrained(idle);
  });

  it('fail a structure past its limit, naming the node, the structure, its size and its limit', () => {
    const failed = failure(() => checks().afterStep([busyNode({ recordsReleasedUnapplied: 65 })]));
    expect(failed.invariant).toBe('resource-limit');
    expect(failed.message).toBe('a3: recordsReleasedUnapplied holds 65, past its limit 64');
  });

  it('fail entries that outnumber what owns them', () => {
    const waiters = failure(() => checks().afterStep([busyNode({ releaseWaiters: 3 })]));
    expect(waiters.invariant).toBe('resource-owner');
    expect(waiters.message).toBe('a3: releaseWaiters holds 3, more than the records not yet released that own them (2)');
    const deadlines = failure(() => checks().afterStep([busyNode({ handlerDeadlines: 3 })]));
    expect(deadlines.message).toContain('handlerDeadlines holds 3, more than the transactions running');
    const connections = failure(() => checks().afterStep([busyNode({ clientConnections: 3 })]));
    expect(connections.message).toBe('a3: clientConnections + peerLinks + handshakes holds 5, more than the connection ends open on the network that own them (4)');
  });

  it('fail a node holding more for its work in progress than the memory bound allows', () => {
    const failed = failure(() => checks().afterStep([busyNode({}, { timersPending: 40 })]));
    expect(failed.invariant).toBe('resource-memory');
    expect(failed.message).toContain('a3 holds 60 entries for work in progress (timers 40), more than 57');
  });

  it('fail a node that keeps a waiter, a connection or timers once the world has settled', () => {
    const idle = { walAppendsWaiting: 0, recordsUnreleased: 0, releaseWaiters: 0, transactionsRunning: 0, requestIdsRunning: 0, handlerDeadlines: 0, decidedCommits: 0, streamHeadsUnapplied: 0, clientRequests: 0 };
    const kept = busyNode({ ...idle, releaseWaiters: 1, clientConnections: 1 }, { timersPending: 4 });
    const failed = failure(() => checks().checkDrained(kept));
    expect(failed.invariant).toBe('resource-drain');
    expect(failed.message).toBe('a3 still holds releaseWaiters 1, clientConnections 1, timers 4 (idle: at most 3) after the world settled');
  });
});

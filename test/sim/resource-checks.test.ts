/**
 * Proves that the simulator's memory checks (`resource-checks.ts`) can fail, and say where: a
 * snapshot past a structure's limit, an entry without an owner, more held than the memory bound
 * allows, and a node that keeps something once the world has settled each fail with the node,
 * the structure, its size and its bound; a snapshot within every bound passes.
 */
import { describe, expect, it } from 'vitest';
import type { ResourceUsage } from '../../engine/resources.js';
import { InvariantViolation } from './bank.js';
import { ResourceChecks, type ResourceSample } from './resource-checks.js';

const world = { streamsPerCommitMax: 1, peerLinksIdleMax: 4, timersIdleMax: 3 };

function checks(): ResourceChecks {
  return new ResourceChecks((invariant, message) => {
    throw new InvariantViolation(invariant, message, []);
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

describe('the simulator\'s resource checks', () => {
  it('pass a node within every bound, and one that has let go of everything', () => {
    const resources = checks();
    resources.afterStep([busyNode()]);
    const idle = busyNode({ walAppendsWaiting: 0, recordsUnreleased: 0, releaseWaiters: 0, transactionsRunning: 0, requestIdsRunning: 0, handlerDeadlines: 0, decidedCommits: 0, streamHeadsUnapplied: 0, clientConnections: 0, clientRequests: 0, requestsOnOneConnection: 0 }, { timersPending: 3 });
    resources.afterStep([idle]);
    resources.checkDrained(idle);
  });

  it('fail a structure past its limit, naming the node, the structure, its size and its limit', () => {
    expect(() => checks().afterStep([busyNode({ recordsReleasedUnapplied: 65 })])).toThrow('resource-limit: a3: recordsReleasedUnapplied holds 65, past its limit 64');
  });

  it('fail entries that outnumber what owns them', () => {
    expect(() => checks().afterStep([busyNode({ releaseWaiters: 3 })])).toThrow(
      'resource-owner: a3: releaseWaiters holds 3, more than the records not yet released that own them (2)',
    );
    expect(() => checks().afterStep([busyNode({ handlerDeadlines: 3 })])).toThrow('handlerDeadlines holds 3, more than the transactions running');
    expect(() => checks().afterStep([busyNode({ clientConnections: 3 })])).toThrow(
      'resource-owner: a3: clientConnections + peerLinks + handshakes holds 5, more than the connection ends open on the network that own them (4)',
    );
  });

  it('fail a node holding more for its work in progress than the memory bound allows', () => {
    expect(() => checks().afterStep([busyNode({}, { timersPending: 40 })])).toThrow('resource-memory: a3 holds 60 entries for work in progress (timers 40), more than 57');
  });

  it('fail a node that keeps a waiter, a connection or timers once the world has settled', () => {
    const idle = { walAppendsWaiting: 0, recordsUnreleased: 0, releaseWaiters: 0, transactionsRunning: 0, requestIdsRunning: 0, handlerDeadlines: 0, decidedCommits: 0, streamHeadsUnapplied: 0, clientRequests: 0 };
    const kept = busyNode({ ...idle, releaseWaiters: 1, clientConnections: 1 }, { timersPending: 4 });
    expect(() => checks().checkDrained(kept)).toThrow(
      'resource-drain: a3 still holds releaseWaiters 1, clientConnections 1, timers 4 (idle: at most 3) after the world settled',
    );
  });
});

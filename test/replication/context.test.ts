/**
 * Proves the node's shared state (`replication/context.ts`):
 * - every role change the state machine makes is allowed (waiting → primary | backup; backup →
 *   backup | waiting | primary; primary → waiting), and any other is an assertion failure
 *   (primary → backup or primary, waiting → waiting), leaving the role as it was;
 * - the epoch only rises;
 * - log lines carry the node id.
 */
import { describe, expect, it } from 'vitest';
import { AssertionFailed } from '../../wal/assert.js';
import { nodePlatform } from '../../wal/platform.js';
import { NodeState } from '../../replication/context.js';
import type { ReplicatedStore } from '../../replication/engine-port.js';
import { resolveNodeOptions } from '../../replication/options.js';
import type { Role } from '../../replication/protocol.js';

const releases = { count: 0 };

function newState(lines: string[] = []): NodeState {
  const options = resolveNodeOptions({ dir: '/nonexistent', listen: '127.0.0.1:0', peers: [], role: 'primary', nodeId: 'A' });
  // `epoch` is read when the state is made; each role change asks the store to look at its
  // release gate again (counted here).
  const store = { epoch: 3, releaseMore: () => void (releases.count += 1) } as unknown as ReplicatedStore;
  return new NodeState(options, store, nodePlatform.clock, nodePlatform.random, (line) => lines.push(line));
}

function walk(state: NodeState, roles: Role[]): void {
  for (const role of roles) state.changeRole(role);
}

describe('NodeState', () => {
  it('allows the role changes the state machine makes', () => {
    const state = newState();
    expect(state.role).toBe('waiting');
    const before = releases.count;
    walk(state, ['primary', 'waiting', 'backup', 'backup', 'waiting', 'primary', 'waiting', 'backup', 'primary']);
    expect(state.role).toBe('primary');
    // The release gate depends on the role: every change has it looked at again.
    expect(releases.count - before).toBe(9);
  });

  it('refuses any other role change with an assertion, keeping the role', () => {
    const cases: Array<{ path: Role[]; next: Role }> = [
      { path: ['primary'], next: 'backup' },
      { path: ['primary'], next: 'primary' },
      { path: [], next: 'waiting' },
    ];
    for (const { path, next } of cases) {
      const state = newState();
      walk(state, path);
      const before = state.role;
      expect(() => state.changeRole(next), `${before} → ${next}`).toThrow(AssertionFailed);
      expect(state.role).toBe(before);
    }
  });

  it('starts at the store epoch and never lowers it', () => {
    const state = newState();
    expect(state.epoch).toBe(3);
    state.observeEpoch(2);
    expect(state.epoch).toBe(3);
    state.observeEpoch(5);
    expect(state.epoch).toBe(5);
  });

  it('prefixes log lines with the node id', () => {
    const lines: string[] = [];
    newState(lines).log('hello');
    expect(lines).toEqual(['[A] hello']);
  });
});

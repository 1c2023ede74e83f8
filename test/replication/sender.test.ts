/**
 * Proves the primary sender's release gate (replication/sender.ts `releaseLimit`) by role, with a
 * stand-in for the node's context: a backup applies what it receives once written; a node that
 * is waiting (a primary that just stepped down and is dropping its unreleased tail) releases
 * nothing beyond what it had applied, whatever it had written (found by the simulator, pair
 * seed 3120); a primary alone releases what is written; one with a backup, what it acknowledged.
 */
import { describe, expect, it } from 'vitest';
import type { NodeContext } from '../../replication/context.js';
import type { ReplicatedStore } from '../../replication/engine-port.js';
import type { Role } from '../../replication/protocol.js';
import { PrimarySender } from '../../replication/sender.js';
import { nodeClock, nodeRandom } from '../../wal/platform.js';

function contextWith(role: Role, appliedLsn: number): NodeContext {
  const store = { appliedLsn, lastLsn: appliedLsn + 10 } as unknown as ReplicatedStore;
  return {
    options: {} as NodeContext['options'],
    store,
    clock: nodeClock,
    random: nodeRandom,
    links: new Set(),
    nodeId: 'A',
    role,
    epoch: 3,
    closed: false,
    observeEpoch: () => undefined,
    log: () => undefined,
  };
}

describe('the release gate', () => {
  it('releases by role: all for a backup, nothing new while waiting, what the backup acknowledged for a primary', () => {
    expect(new PrimarySender(contextWith('backup', 40)).releaseLimit()).toBe(Number.MAX_SAFE_INTEGER);
    expect(new PrimarySender(contextWith('waiting', 40)).releaseLimit()).toBe(40);
    const alone = new PrimarySender(contextWith('primary', 40));
    alone.begin(true);
    expect(alone.releaseLimit()).toBe(Number.MAX_SAFE_INTEGER);
    const paired = new PrimarySender(contextWith('primary', 40));
    paired.begin(false);
    expect(paired.releaseLimit()).toBe(0);
  });
});

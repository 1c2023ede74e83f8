/**
 * Proves the primary sender's release gate (replication/sender.ts `releaseLimit`) by role, with a
 * stand-in for the node's context: a backup applies what it receives once written; a node that
 * is waiting (a primary that just stepped down and is dropping its unreleased tail) releases
 * nothing beyond what it had applied, whatever it had written (found by the simulator, pair
 * seed 3120); a primary alone releases what is written; one with a backup, what it acknowledged.
 * And the backup's return to sync: resumed on a spare link with nothing left to resend, the
 * primary counts its backup in sync again at once, without waiting for an acknowledgement that
 * no commit will bring (found by the simulator, pair seed 125208643: an idle pair never settled).
 */
import { describe, expect, it } from 'vitest';
import type { NodeContext, PeerLink } from '../../replication/context.js';
import type { Connection } from '../../replication/connection.js';
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

/** A link to backup B whose messages are kept, and a context whose store ends at LSN 10. */
function linkTo(sent: Array<{ t: string }>): PeerLink {
  const connection = { closed: false, bufferedBytes: 0, send: (message: { t: string }) => sent.push(message), flush: () => undefined };
  return { connection: connection as unknown as Connection, state: { role: 'backup', epoch: 3, nodeId: 'B' } as PeerLink['state'], lastHeardMs: 0, dialed: false };
}

describe('the backup back in sync', () => {
  it('counts a backup resumed on a spare link with nothing to resend in sync at once', () => {
    const store = { appliedLsn: 10, lastLsn: 10, nextLsn: 11, endOfEpoch: () => 10, releaseMore: () => undefined } as unknown as ReplicatedStore;
    const links = new Set<PeerLink>();
    const context = { ...contextWith('primary', 10), store, links } as NodeContext;
    const sender = new PrimarySender(context);
    sender.begin(false);
    const first: Array<{ t: string }> = [];
    const spare: Array<{ t: string }> = [];
    const firstLink = linkTo(first);
    links.add(firstLink);
    sender.onJoin(firstLink, { t: 'join', epoch: 3, lastLsn: 10, lastEpoch: 3 } as Parameters<PrimarySender['onJoin']>[1]);
    sender.onAck(firstLink, { t: 'ack', epoch: 3, receivedLsn: 10, durableLsn: 10 });
    expect(sender.inSync).toBe(true);
    expect(first.map((message) => message.t)).toEqual(['truncate', 'live', 'synced']);
    // The only link fails: the backup is not in sync any more.
    (firstLink.connection as unknown as { closed: boolean }).closed = true;
    sender.onLinkClosed(firstLink);
    expect(sender.inSync).toBe(false);
    // A spare link to the same backup tells its state: replication resumes there, with nothing
    // to resend (the backup acknowledged LSN 10, the end of the log), and no commit follows.
    const spareLink = linkTo(spare);
    links.add(spareLink);
    sender.onSpareLinkState(spareLink, { role: 'backup', epoch: 3, nodeId: 'B' } as Parameters<PrimarySender['onSpareLinkState']>[1]);
    expect(spare.map((message) => message.t)).toEqual(['live', 'synced']);
    expect(sender.inSync).toBe(true);
    expect(sender.releaseLimit()).toBe(10);
  });
});

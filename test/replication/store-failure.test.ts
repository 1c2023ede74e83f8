/**
 * Proves what a node does when its disk fails (issue 8, hole 2), with a real node on real
 * sockets and files and a file system seam whose fdatasync fails once armed:
 * - the client whose commit reached the WAL hears an outcome-unknown error (never a definite
 *   failure);
 * - the node closes itself, so a peer would no longer get its heartbeats and could take over;
 * - reopening the directory and resending the same request id finds the commit, applied once.
 */
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/index.js';
import { TxlogError } from '../../wal/errors.js';
import { failingSyncPlatform } from '../helpers/faulty-platform.js';
import { useInProcessNodes } from '../helpers/in-process-pair.js';

const nodes = useInProcessNodes('txlog-store-failure-');

describe('a node whose disk fails', () => {
  it('answers outcome unknown, closes itself, and the commit is found after reopening', async () => {
    const dir = nodes.newDir();
    const faulty = failingSyncPlatform();
    const node = await nodes.start({ dir, fsync: 'always', platform: faulty.platform });
    const client = await nodes.connect(node.addresses, { clientId: 'c', deadlineMs: 3000 });
    await client.append('s', [{ type: 'Before', data: 1 }]);

    faulty.arm();
    const error = await client.append('s', [{ type: 'During', data: 2 }]).then(
      () => new Error('acknowledged although its fdatasync failed'),
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(TxlogError);
    expect((error as TxlogError).outcomeUnknown, (error as Error).message).toBe(true);
    await node.whenClosed;
    expect(node.store.failedWith?.code).toBe('IO_ERROR');
    expect(nodes.logs()).toMatch(/closing the node so its peer can take over/);

    const store = await openStore({ dir, fsync: 'never', log: () => undefined });
    try {
      // The resend of request 2 (the client's second) finds it committed: it is not applied twice.
      const resent = await store.append('s', [{ type: 'During', data: 2 }], { clientId: 'c', requestId: 2 });
      expect(resent).toEqual({ stream: 's', version: 1, position: 1 });
      expect((await store.readStream('s')).events.map((event) => event.data)).toEqual([1, 2]);
    } finally {
      await store.close();
    }
  });
});

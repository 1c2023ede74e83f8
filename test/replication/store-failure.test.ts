/**
 * Proves what a node does when its disk fails (issue 8, hole 2), with a real node on real
 * sockets and files and a file system seam whose fdatasync fails once armed:
 * - the client whose commit reached the WAL hears an outcome-unknown error (never a definite
 *   failure);
 * - the node closes itself, so a peer would no longer get its heartbeats and could take over;
 * - reopening the directory and resending the same request id finds the commit, applied once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../engine/index.js';
import { connect, type Client } from '../../replication/client.js';
import { startNode, type TxlogNode } from '../../replication/node.js';
import { TxlogError } from '../../wal/errors.js';
import { failingSyncPlatform } from '../helpers/faulty-platform.js';
import { useTempDir } from '../helpers/temp.js';

const newDir = useTempDir('txlog-store-failure-');
const running: Array<TxlogNode | Client> = [];
afterEach(async () => {
  for (const item of running.splice(0).reverse()) await item.close();
});

describe('a node whose disk fails', () => {
  it('answers outcome unknown, closes itself, and the commit is found after reopening', async () => {
    const dir = newDir();
    const faulty = failingSyncPlatform();
    const messages: string[] = [];
    const node = await startNode({
      dir,
      listen: '127.0.0.1:0',
      peers: [],
      role: 'primary',
      forcePrimary: true,
      fsync: 'always',
      segmentBytes: 1024 * 1024,
      preallocate: false,
      platform: faulty.platform,
      log: (message) => messages.push(message),
    });
    running.push(node);
    const client = await connect({ servers: node.addresses, clientId: 'c', deadlineMs: 3000, connectTimeoutMs: 500 });
    running.push(client);
    await client.append('s', [{ type: 'Before', data: 1 }]);

    faulty.arm();
    const error = await client.append('s', [{ type: 'During', data: 2 }]).then(
      () => new Error('acknowledged although its fdatasync failed'),
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(TxlogError);
    expect((error as TxlogError).outcomeUnknown, (error as Error).message).toBe(true);
    await node.whenClosed;
    expect(node.storeFailure?.code).toBe('IO_ERROR');
    expect(messages.join('\n')).toMatch(/closing the node so its peer can take over/);

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

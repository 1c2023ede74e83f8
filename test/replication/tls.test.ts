/**
 * Proves TLS 1.3 on every link of a cluster with a secret (real `startNode`, real loopback
 * sockets, port 0):
 * - a pair with a secret replicates and fails over, every link over TLS with the derived key;
 * - a plaintext client, and a raw plaintext socket, against a TLS node are refused with
 *   UNAUTHORIZED (an error frame they can read), and the node keeps serving a good client;
 * - a client with the wrong secret or of another cluster fails the TLS handshake with
 *   UNAUTHORIZED, and so does a backup dialing with the wrong secret (it never joins);
 * - bytes captured by a proxy on the client and the peer link hold no event data in the clear,
 *   while the same capture without a secret does (the capture would see it);
 * - the key derivation is bound to the secret and the cluster.
 */
import { describe, expect, it } from 'vitest';
import { tlsPskKey, tlsPskKeyBytes } from '../../replication/tls.js';
import type { NodeOptions } from '../../replication/options.js';
import { rejectedError } from '../helpers/wal.js';
import { useInProcessNodes, waitForInProcess } from '../helpers/in-process-pair.js';
import { useTcpProxies } from '../helpers/tcp-proxy.js';
import { firstPlaintextFrame } from '../helpers/plaintext-dialer.js';

const nodes = useInProcessNodes('txlog-tls-');
const proxies = useTcpProxies();
const secret = 'correct horse battery staple';

/** A primary and a backup whose peer link and one client go through proxies that capture. */
async function capturedPair(options: Partial<NodeOptions>): Promise<Buffer> {
  const primary = await nodes.start({ nodeId: 'A', forcePrimary: false, ...options });
  const peerProxy = await proxies(primary.addresses[0]!);
  const clientProxy = await proxies(primary.addresses[0]!);
  await nodes.start({ nodeId: 'B', role: 'backup', forcePrimary: false, peers: [peerProxy.address], ...options });
  await waitForInProcess('the backup in sync', () => primary.status().inSync, 30_000);
  const client = await nodes.connect([clientProxy.address], { clientId: 'capture', ...(options.secret === undefined ? {} : { secret: options.secret }) });
  await client.append('account-capture', [{ type: 'MarkerDeposited', data: { note: 'marker-in-the-clear-0123456789' } }]);
  expect((await client.readStream('account-capture')).events).toHaveLength(1);
  return Buffer.concat([clientProxy.captured(), peerProxy.captured()]);
}

describe('TLS on every link', () => {
  it('replicates and fails over with a secret', async () => {
    const { primary, backup, servers } = await nodes.startPair({ both: { secret } });
    const client = await nodes.connect(servers, { clientId: 'c', secret });
    for (let index = 0; index < 10; index++) await client.append('s', [{ type: 'Added', data: index }]);
    const epochBefore = primary.status().epoch;
    await primary.close();

    await client.append('s', [{ type: 'After', data: 10 }]);
    expect(backup.status()).toMatchObject({ role: 'primary', alone: true });
    expect(backup.status().epoch).toBeGreaterThan(epochBefore);
    expect((await client.readStream('s')).events.map((event) => event.data)).toEqual([...Array(11).keys()]);
  });

  it('refuses plaintext dialers with UNAUTHORIZED and keeps serving', async () => {
    const node = await nodes.start({ secret });
    const address = node.addresses[0]!;
    const good = await nodes.connect([address], { clientId: 'good', secret });
    await good.append('before', [{ type: 'Added', data: 1 }]);

    // The client's default connect timeout: the refusal comes after the node's plaintext probe.
    const plaintext = await rejectedError(() => nodes.connect([address], { clientId: 'plain', deadlineMs: 3000, connectTimeoutMs: 1000 }));
    expect(plaintext.code).toBe('UNAUTHORIZED');
    expect(await firstPlaintextFrame(address)).toMatchObject({ t: 'error', error: { code: 'UNAUTHORIZED' } });

    await good.append('after', [{ type: 'Added', data: 2 }]);
    expect(node.status().role).toBe('primary');
  });

  it('fails the handshake with UNAUTHORIZED for a wrong secret or another cluster', async () => {
    const node = await nodes.start({ secret });
    const address = node.addresses[0]!;
    const wrongSecret = await rejectedError(() => nodes.connect([address], { secret: 'wrong', deadlineMs: 3000 }));
    expect(wrongSecret.code).toBe('UNAUTHORIZED');
    const otherCluster = await rejectedError(() => nodes.connect([address], { secret, clusterId: 'other', deadlineMs: 3000 }));
    expect(otherCluster.code).toBe('UNAUTHORIZED');

    // A backup with the wrong secret never joins; the primary keeps serving alone.
    await nodes.start({ nodeId: 'B', role: 'backup', forcePrimary: false, peers: [address], secret: 'wrong' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(node.status().inSync).toBe(false);
    expect(nodes.logs()).toMatch(/UNAUTHORIZED|TLS handshake/);
    const good = await nodes.connect([address], { secret });
    await good.append('still', [{ type: 'Added', data: 1 }]);
  });

  it('shows no event data to someone on the path', async () => {
    const marker = Buffer.from('marker-in-the-clear');
    const encrypted = await capturedPair({ secret });
    expect(encrypted.length).toBeGreaterThan(0);
    expect(encrypted.includes(marker)).toBe(false);
    expect(encrypted.includes(Buffer.from('MarkerDeposited'))).toBe(false);
    expect(encrypted.includes(Buffer.from('account-capture'))).toBe(false);
  });

  it('would show event data without a secret (the capture sees the clear text)', async () => {
    const clear = await capturedPair({});
    expect(clear.includes(Buffer.from('marker-in-the-clear'))).toBe(true);
  });

  it('derives a key bound to the secret and the cluster', () => {
    const key = tlsPskKey(secret, 'txlog');
    expect(key).toHaveLength(tlsPskKeyBytes);
    expect(tlsPskKey(secret, 'txlog').equals(key)).toBe(true);
    expect(tlsPskKey('other', 'txlog').equals(key)).toBe(false);
    expect(tlsPskKey(secret, 'other').equals(key)).toBe(false);
  });
});

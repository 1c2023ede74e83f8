/**
 * Proves TLS with certificates instead of the secret's key, with real `txlog serve` processes
 * (from dist/) on real loopback sockets and certificates that openssl makes in each test's
 * temporary directory:
 * - a pair whose nodes present certificates of one CA replicates, and a client with a
 *   certificate of that CA commits and reads, through the library and through the CLI;
 * - a dialer presenting no certificate, or one signed by another CA, fails the handshake with
 *   UNAUTHORIZED, and the node keeps serving;
 * - a node whose certificate another CA signed never joins, and the primary takes a good
 *   backup afterwards;
 * - a plaintext client against a node with certificates is refused with UNAUTHORIZED (an error
 *   frame it can read), and the node keeps serving;
 * - with a secret as well, the secret is still proven inside TLS: a client with a good
 *   certificate but no secret is refused with UNAUTHORIZED;
 * - the files are checked before anything starts: unreadable, another certificate's key, a
 *   certificate the CA did not sign, a node certificate without serverAuth are BAD_REQUEST.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliMainPath } from '../../dist/replication/spawn-node.js';
import { startNode } from '../../replication/node.js';
import { tlsNetwork, type TlsCredentials } from '../../replication/tls.js';
import type { TlsFiles } from '../../replication/tls-certificates.js';
import { runCli } from '../cli/helpers.js';
import { opensslAvailable, tlsFlags, useCertificates, type CertificateAuthority } from '../helpers/certificates.js';
import { firstPlaintextFrame } from '../helpers/plaintext-dialer.js';
import { rejectedError } from '../helpers/wal.js';
import { connectClient, lightArgs, startPair, statusOf, usePairFixture, waitFor, waitForPrimaryInSync, type Nodes } from './pair.js';

const fixture = usePairFixture('txlog-certs-');
const certificates = useCertificates();

interface Cluster {
  authority: CertificateAuthority;
  node: TlsFiles;
  client: TlsFiles;
  /** Another CA, which the cluster does not trust, and a node certificate of its own. */
  rogue: TlsFiles;
}

function makeCluster(): Cluster {
  const made = certificates();
  const authority = made.authority('cluster-ca');
  const rogueAuthority = made.authority('rogue-ca');
  return {
    authority,
    node: authority.issue('node'),
    client: authority.issue('client', { extendedKeyUsage: 'clientAuth' }),
    rogue: rogueAuthority.issue('rogue-node'),
  };
}

/** A network that dials with `identity` (or none) and trusts the cluster's CA. */
function dialerWith(cluster: Cluster, identity: TlsFiles | undefined): TlsCredentials {
  const ca = readFileSync(cluster.authority.caFile);
  if (identity === undefined) return { kind: 'certificates', ca, identity: undefined };
  return { kind: 'certificates', ca, identity: { cert: readFileSync(identity.certFile), key: readFileSync(identity.keyFile) } };
}

/** Appends one event to `stream` and reads it back with a client that has the cluster's certificate. */
async function expectServing(servers: string[], cluster: Cluster, stream: string): Promise<void> {
  const client = await connectClient(servers, { tls: cluster.client });
  try {
    await client.append(stream, [{ type: 'Added', data: { stream } }]);
    expect((await client.readStream(stream)).events.map((event) => event.data)).toEqual([{ stream }]);
  } finally {
    await client.close();
  }
}

async function startLone(nodes: Nodes, cluster: Cluster, extraArgs: string[] = []): Promise<string> {
  const node = await nodes.start('A', path.join(fixture.newDir(), 'a'), ['--listen', '127.0.0.1:0', ...lightArgs, ...tlsFlags(cluster.node), ...extraArgs]);
  return node.addresses[0]!;
}

describe.skipIf(!opensslAvailable())('TLS with certificates', () => {
  it('replicates, and a client with a certificate commits and reads (library and CLI)', async () => {
    const cluster = makeCluster();
    const { nodes } = fixture;
    const pair = await startPair(nodes, fixture.pairDirs(), { args: tlsFlags(cluster.node), client: { tls: cluster.client } });
    await expectServing(pair.servers, cluster, 'library');

    const servers = pair.servers.join(',');
    const appended = await runCli(cliMainPath, ['append', '--servers', servers, ...tlsFlags(cluster.client), 'cli', '{"type":"Added","data":1}']);
    expect(appended.stderr).toBe('');
    expect(appended.exitCode).toBe(0);
    const read = await runCli(cliMainPath, ['read', '--servers', servers, ...tlsFlags(cluster.client), 'cli']);
    expect(read.exitCode).toBe(0);
    expect((JSON.parse(read.stdout) as { events: Array<{ data: unknown }> }).events.map((event) => event.data)).toEqual([1]);

    const primary = await statusOf(pair.servers[0]!, 2000, { tls: cluster.client });
    await waitFor('the backup to hold every record', async () => (await statusOf(pair.servers[1]!, 2000, { tls: cluster.client })).lastLsn === primary.lastLsn, 30_000, nodes);
    expect(primary).toMatchObject({ role: 'primary', inSync: true, alone: false });
  });

  it('fails the handshake with UNAUTHORIZED for a dialer with no certificate or an untrusted one, and keeps serving', async () => {
    const cluster = makeCluster();
    const address = await startLone(fixture.nodes, cluster);
    await expectServing([address], cluster, 'before');

    for (const identity of [undefined, cluster.rogue]) {
      const network = tlsNetwork(dialerWith(cluster, identity), { handshakeTimeoutMs: 2000 });
      const refused = await rejectedError(() => connectClient([address], { network, deadlineMs: 5000 }));
      expect(refused.code, identity === undefined ? 'no certificate' : 'another CA').toBe('UNAUTHORIZED');
      expect(refused.message).toMatch(/certificate signed by its CA/);
    }
    await expectServing([address], cluster, 'after');
  });

  it('keeps a node with a certificate of another CA from joining', async () => {
    const cluster = makeCluster();
    const { nodes } = fixture;
    const dirs = fixture.pairDirs();
    const primary = await nodes.start('A', dirs.primary, ['--listen', '127.0.0.1:0', '--expect-peer', '--role', 'primary', ...lightArgs, ...tlsFlags(cluster.node)]);
    const address = primary.addresses[0]!;
    const rogue = await nodes.start('R', path.join(dirs.root, 'rogue'), ['--listen', '127.0.0.1:0', '--peer', address, '--role', 'backup', ...lightArgs, ...tlsFlags(cluster.rogue)]);
    await waitFor('the rogue node to be refused', () => /UNAUTHORIZED|TLS handshake/.test(rogue.log()), 30_000, nodes);
    expect(await statusOf(address, 2000, { tls: cluster.client })).toMatchObject({ inSync: false, peerLinks: 0 });
    await rogue.kill();

    await nodes.start('B', dirs.backup, ['--listen', '127.0.0.1:0', '--peer', address, '--role', 'backup', ...lightArgs, ...tlsFlags(cluster.node)]);
    await waitForPrimaryInSync(address, 30_000, nodes, { tls: cluster.client });
    await expectServing([address], cluster, 'paired');
  });

  it('refuses a plaintext client with UNAUTHORIZED and keeps serving', async () => {
    const cluster = makeCluster();
    const address = await startLone(fixture.nodes, cluster);
    // The client's default connect timeout: the refusal comes after the node's plaintext probe.
    const plaintext = await rejectedError(() => connectClient([address], { deadlineMs: 3000, connectTimeoutMs: 1000 }));
    expect(plaintext.code).toBe('UNAUTHORIZED');
    expect(await firstPlaintextFrame(address)).toMatchObject({ t: 'error', error: { code: 'UNAUTHORIZED' } });
    const cli = await runCli(cliMainPath, ['status', '--servers', address, '--json']);
    expect(cli.exitCode).toBe(4);
    expect(JSON.parse(cli.stdout)).toMatchObject([{ server: address, error: { code: 'UNAUTHORIZED' } }]);
    await expectServing([address], cluster, 'after');
  });

  it('still proves the secret inside TLS when there is one', async () => {
    const cluster = makeCluster();
    const secretFile = path.join(fixture.newDir(), 'secret');
    writeFileSync(secretFile, 'correct horse battery staple\n');
    const address = await startLone(fixture.nodes, cluster, ['--secret-file', secretFile]);
    const withoutSecret = await rejectedError(() => connectClient([address], { tls: cluster.client, deadlineMs: 3000 }));
    expect(withoutSecret.code).toBe('UNAUTHORIZED');
    const client = await connectClient([address], { tls: cluster.client, secret: 'correct horse battery staple' });
    try {
      await client.append('both', [{ type: 'Added', data: 1 }]);
      expect((await client.readStream('both')).events).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('checks the files before starting or dialing (BAD_REQUEST)', async () => {
    const cluster = makeCluster();
    const other = cluster.authority.issue('other');
    const clientOnly = cluster.client;
    const cases: Array<[string, TlsFiles, RegExp]> = [
      ['a missing file', { ...cluster.node, certFile: path.join(path.dirname(cluster.node.certFile), 'nothing.pem') }, /cannot read the TLS certificate file .*ENOENT/],
      ['another certificate\'s key', { ...cluster.node, keyFile: other.keyFile }, /does not belong to the certificate/],
      ['a certificate of another CA', { ...cluster.rogue, caFile: cluster.authority.caFile }, /is not signed by a certificate in/],
      ['a certificate that is not PEM', { ...cluster.node, certFile: cluster.node.keyFile }, /holds no PEM certificate/],
      ['a client certificate on a node', clientOnly, /does not allow serverAuth use/],
    ];
    for (const [what, tls, message] of cases) {
      const error = await rejectedError(() => startNode({ dir: fixture.newDir(), listen: '127.0.0.1:0', peers: [], role: 'primary', tls, log: () => undefined }));
      expect(error.code, what).toBe('BAD_REQUEST');
      expect(error.message, what).toMatch(message);
    }
    const client = await rejectedError(() => connectClient(['127.0.0.1:1'], { tls: { ...cluster.client, keyFile: other.keyFile } }));
    expect(client.code).toBe('BAD_REQUEST');
    // A node listening on a routable address needs a secret or certificates; certificates suffice.
    const node = await startNode({ dir: fixture.newDir(), listen: '0.0.0.0:0', peers: [], role: 'primary', forcePrimary: true, tls: cluster.node, fsync: 'never', log: () => undefined });
    await node.close();
  });
});

/**
 * Proves the handshake and the connection guard of a node started in-process with `startNode`
 * (real loopback sockets):
 * - a client with the wrong secret, or of another cluster, is refused with UNAUTHORIZED;
 * - raw sockets (inside the TLS layer a node with a secret runs, with the derived key) that send garbage, a frame with a huge length prefix, an `auth` with a wrong
 *   protocol version, a `req` before `auth`, a forged proof, or (once authenticated) garbage or
 *   an unknown operation each get one `error` frame with the right code and are closed,
 *   while a good client connected the whole time keeps getting answers;
 * - past `clientConnectionsMax` handshakes under way (connections that proved nothing yet), a
 *   new connection gets BUSY, and one is taken again once a handshake ends; past
 *   `acceptedPeerLinksMax` peer links, a new one gets BUSY once its handshake is done;
 * - `startNode` refuses a non-loopback listen or peer address without a secret (BAD_REQUEST)
 *   before it creates anything (no test binds a non-loopback address: house rule).
 */
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startNode, type TxlogNode } from '../../replication/node.js';
import { connect, type Client } from '../../replication/client.js';
import {
  FrameDecoder,
  authProof,
  encodeMessage,
  nonceBytes,
  parseAddress,
  parseMessage,
  protocolVersion,
  type Message,
} from '../../replication/protocol.js';
import { acceptedPeerLinksMax, frameBytesMaxDefault } from '../../replication/limits.js';
import { tlsPskCipher, tlsPskIdentity, tlsPskKey } from '../../replication/tls.js';
import { rejectedError } from '../helpers/wal.js';
import { useInProcessNodes } from '../helpers/in-process-pair.js';

const nodes = useInProcessNodes('txlog-handshake-');
const secret = 'correct horse battery staple';

/** How long a raw session waits for a message before calling it missing. */
const messageWaitMs = 20_000;

function startTestNode(options: { secret?: string; listen?: string } = {}): Promise<TxlogNode> {
  return nodes.start({ secret: options.secret ?? secret, listen: options.listen ?? '127.0.0.1:0' });
}

function goodClient(address: string): Promise<Client> {
  return nodes.connect([address], { secret, clientId: 'good', deadlineMs: 5000 });
}

/** A socket speaking raw frames: read the next message, watch for the close. */
interface RawSession {
  socket: net.Socket;
  /** The next message; `what` names it in the error when none comes (a hang, not slowness: the bound is generous for a loaded 2-vCPU machine). */
  next(what: string): Promise<Message>;
  closed: Promise<void>;
  send(bytes: Buffer): void;
}

/** Raw frames inside the TLS layer a node with a secret runs (the key derived as the node does). */
async function rawSession(address: string): Promise<RawSession> {
  const { host, port } = parseAddress(address);
  const key = tlsPskKey(secret, 'txlog');
  const socket = tls.connect({
    host,
    port,
    minVersion: 'TLSv1.3',
    ciphers: tlsPskCipher,
    pskCallback: () => ({ psk: key, identity: tlsPskIdentity }),
    checkServerIdentity: () => undefined,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const decoder = new FrameDecoder(frameBytesMaxDefault);
  const queue: Message[] = [];
  const waiting: Array<(message: Message) => void> = [];
  socket.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) {
      const message = parseMessage(body);
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(message);
      else queue.push(message);
    }
  });
  socket.on('error', () => undefined); // A reset after the node closes is expected.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    send: (bytes) => socket.write(bytes),
    next: (what) =>
      new Promise<Message>((resolve, reject) => {
        const queued = queue.shift();
        if (queued !== undefined) return resolve(queued);
        const timer = setTimeout(() => reject(new Error(`no message within ${messageWaitMs} ms (waiting for ${what})`)), messageWaitMs);
        waiting.push((message) => {
          clearTimeout(timer);
          resolve(message);
        });
      }),
  };
}

/** Opens a raw session and reads the node's hello. */
async function afterHello(address: string): Promise<{ session: RawSession; hello: Extract<Message, { t: 'hello' }> }> {
  const session = await rawSession(address);
  const hello = await session.next('hello');
  if (hello.t !== 'hello') throw new Error(`expected hello, got ${hello.t}`);
  return { session, hello };
}

function authFor(hello: Extract<Message, { t: 'hello' }>, overrides: Partial<Extract<Message, { t: 'auth' }>> = {}): Buffer {
  return encodeMessage({
    t: 'auth',
    protocol: protocolVersion,
    clusterId: 'txlog',
    kind: 'client',
    id: 'raw',
    proof: authProof(secret, hello.nonce, 'txlog', 'client'),
    nonce: new Uint8Array(nonceBytes).fill(3),
    ...overrides,
  });
}

/** The session gets exactly one error frame with `code`, then the node closes it. */
async function expectRefused(session: RawSession, code: string): Promise<void> {
  const message = await session.next(`the ${code} error frame`);
  expect(message.t).toBe('error');
  if (message.t === 'error') expect(message.error.code).toBe(code);
  await session.closed;
}

async function expectStillServing(client: Client, label: string): Promise<void> {
  const result = await client.append(`good-${label}`, [{ type: 'Still', data: { label } }]);
  expect(result).toMatchObject({ stream: `good-${label}`, version: 0 });
}

describe('handshake', () => {
  it('refuses a client with the wrong secret or cluster with UNAUTHORIZED', async () => {
    const node = await startTestNode();
    const address = node.addresses[0]!;
    const wrongSecret = await rejectedError(() => connect({ servers: [address], secret: 'wrong', deadlineMs: 3000 }));
    expect(wrongSecret.code).toBe('UNAUTHORIZED');
    const noSecret = await rejectedError(() => connect({ servers: [address], deadlineMs: 3000 }));
    expect(noSecret.code).toBe('UNAUTHORIZED');
    const otherCluster = await rejectedError(() => connect({ servers: [address], secret, clusterId: 'other', deadlineMs: 3000 }));
    expect(otherCluster.code).toBe('UNAUTHORIZED');
    const client = await goodClient(address);
    await expectStillServing(client, 'after-unauthorized');
  });

  it('answers bad sockets with an error frame and closes them, while a good client keeps working', async () => {
    const node = await startTestNode();
    const address = node.addresses[0]!;
    const client = await goodClient(address);
    await expectStillServing(client, 'before');

    // Garbage instead of auth: a frame whose body is not msgpack.
    const garbage = await afterHello(address);
    garbage.session.send(Buffer.from([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]));
    await expectRefused(garbage.session, 'PROTOCOL_ERROR');
    await expectStillServing(client, 'garbage');

    // Plain text, read as a huge length prefix.
    const text = await afterHello(address);
    text.session.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await expectRefused(text.session, 'PROTOCOL_ERROR');

    // A length prefix far above the limit, with no body: refused without waiting for one.
    const huge = await afterHello(address);
    huge.session.send(Buffer.from([0xff, 0xff, 0xff, 0xf0]));
    await expectRefused(huge.session, 'PROTOCOL_ERROR');
    await expectStillServing(client, 'huge');

    // A well-formed auth for another protocol version.
    const version = await afterHello(address);
    version.session.send(authFor(version.hello, { protocol: protocolVersion + 1 }));
    await expectRefused(version.session, 'PROTOCOL_ERROR');

    // A request before authenticating.
    const early = await afterHello(address);
    early.session.send(encodeMessage({ t: 'req', callId: 1, op: 'status', epoch: 0, body: {} }));
    await expectRefused(early.session, 'PROTOCOL_ERROR');
    await expectStillServing(client, 'early');

    // A proof for another nonce (a replayed auth).
    const forged = await afterHello(address);
    forged.session.send(authFor(forged.hello, { proof: authProof(secret, new Uint8Array(nonceBytes), 'txlog', 'client') }));
    await expectRefused(forged.session, 'UNAUTHORIZED');

    // A proof made for the peer side, sent as a client.
    const sideSwap = await afterHello(address);
    sideSwap.session.send(authFor(sideSwap.hello, { proof: authProof(secret, sideSwap.hello.nonce, 'txlog', 'peer') }));
    await expectRefused(sideSwap.session, 'UNAUTHORIZED');
    await expectStillServing(client, 'forged');

    // Authenticated, then garbage; and authenticated, then an unknown operation.
    for (const bad of [Buffer.from([0, 0, 0, 1, 0xc1]), encodeMessage({ t: 'req', callId: 1, op: 'status', epoch: 0, body: {} }).fill(0x21, 6)]) {
      const authed = await afterHello(address);
      authed.session.send(authFor(authed.hello));
      const welcome = await authed.session.next('welcome');
      expect(welcome.t).toBe('welcome');
      authed.session.send(bad);
      await expectRefused(authed.session, 'PROTOCOL_ERROR');
    }
    const unknownOp = await afterHello(address);
    unknownOp.session.send(authFor(unknownOp.hello));
    expect((await unknownOp.session.next('welcome')).t).toBe('welcome');
    const packedReq = encodeMessage({ t: 'req', callId: 1, op: 'status', epoch: 0, body: {} });
    const withUnknownOp = Buffer.from(packedReq.toString('latin1').replace('status', 'statuz'), 'latin1');
    unknownOp.session.send(withUnknownOp);
    await expectRefused(unknownOp.session, 'PROTOCOL_ERROR');

    // A peer link must not carry client requests either.
    const peer = await afterHello(address);
    peer.session.send(authFor(peer.hello, { kind: 'peer', proof: authProof(secret, peer.hello.nonce, 'txlog', 'peer') }));
    expect((await peer.session.next('welcome')).t).toBe('welcome');
    peer.session.send(encodeMessage({ t: 'req', callId: 1, op: 'status', epoch: 0, body: {} }));
    let answer = await peer.session.next('an answer to the request');
    while (answer.t === 'peer' || answer.t === 'heartbeat') answer = await peer.session.next('an answer to the request');
    expect(answer).toMatchObject({ t: 'error', error: { code: 'PROTOCOL_ERROR' } });
    await peer.session.closed;

    await expectStillServing(client, 'after');
    const status = await client.status();
    expect(status.role).toBe('primary');
    expect(status.clients).toBe(1);
  });

  it('completes a raw authenticated exchange (the guard refuses only what is wrong)', async () => {
    const node = await startTestNode();
    const { session, hello } = await afterHello(node.addresses[0]!);
    expect(hello.protocol).toBe(protocolVersion);
    const myNonce = new Uint8Array(nonceBytes).fill(9);
    session.send(authFor(hello, { nonce: myNonce }));
    const welcome = await session.next('welcome');
    expect(welcome.t).toBe('welcome');
    if (welcome.t === 'welcome') expect(Buffer.from(welcome.proof).equals(authProof(secret, myNonce, 'txlog', 'server'))).toBe(true);
    session.send(encodeMessage({ t: 'req', callId: 7, op: 'status', epoch: 0, body: {} }));
    const response = await session.next('the response');
    expect(response).toMatchObject({ t: 'res', callId: 7, ok: true });
    session.socket.destroy();
  });

  it('refuses a connection past clientConnectionsMax handshakes under way with BUSY, and takes one once a handshake ends', async () => {
    const node = await nodes.start({ secret, listen: '127.0.0.1:0', clientConnectionsMax: 2 });
    const address = node.addresses[0]!;
    const silent = [await afterHello(address), await afterHello(address)];
    expect(node.status().resources['handshakes']).toEqual({ size: 2, limit: 2 });

    await expectRefused(await rawSession(address), 'BUSY');

    const [finishing, waiting] = silent as [Awaited<ReturnType<typeof afterHello>>, Awaited<ReturnType<typeof afterHello>>];
    finishing.session.send(authFor(finishing.hello));
    expect((await finishing.session.next('welcome')).t).toBe('welcome');
    const next = await afterHello(address);
    expect(node.status().resources['handshakes']!.size).toBe(2);
    for (const session of [finishing.session, waiting.session, next.session]) session.socket.destroy();
  });

  it('accepts acceptedPeerLinksMax peer links and refuses the next with BUSY after its handshake', async () => {
    const node = await nodes.start({ secret, listen: '127.0.0.1:0', heartbeatIntervalMs: 10_000, heartbeatTimeoutMs: 60_000 });
    const address = node.addresses[0]!;
    const peerLink = async (index: number): Promise<RawSession> => {
      const { session, hello } = await afterHello(address);
      session.send(authFor(hello, { kind: 'peer', id: `peer-${index}`, proof: authProof(secret, hello.nonce, 'txlog', 'peer') }));
      expect((await session.next('welcome')).t).toBe('welcome');
      return session;
    };
    const links: RawSession[] = [];
    for (let index = 0; index < acceptedPeerLinksMax; index++) links.push(await peerLink(index));
    expect((await links[0]!.next('peer')).t).toBe('peer');
    expect(node.status().peerLinks).toBe(acceptedPeerLinksMax);

    const refused = await peerLink(acceptedPeerLinksMax);
    await expectRefused(refused, 'BUSY');
    expect(node.status().resources['peerLinks']).toEqual({ size: acceptedPeerLinksMax, limit: acceptedPeerLinksMax });
    for (const link of links) link.socket.destroy();
  });
});

describe('startNode without a secret', () => {
  it('refuses a non-loopback listen or peer address with BAD_REQUEST before creating anything', async () => {
    for (const [listen, peers] of [
      ['0.0.0.0:0', []],
      ['10.1.2.3:0', []],
      ['127.0.0.1:0', ['192.168.1.1:7002']],
    ] as const) {
      const dir = path.join(nodes.newDir(), 'store');
      const error = await rejectedError(() =>
        startNode({ dir, listen, peers: [...peers], role: 'primary', forcePrimary: true, fsync: 'never', log: () => undefined }),
      );
      expect(error.code, listen).toBe('BAD_REQUEST');
      expect(existsSync(dir)).toBe(false);
    }
  });
});

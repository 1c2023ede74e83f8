/**
 * One authenticated, framed connection, and the handshake that opens it from either side.
 * Sockets reach this file through the `Network` seam; the Node implementation is the only real
 * one, a simulator may supply its own.
 */
import * as net from 'node:net';
import { TxlogError, errorFromSerialized, txlogError } from '../wal/errors.js';
import type { Random } from '../wal/platform.js';
import {
  FrameDecoder,
  authProof,
  encodeMessage,
  nonceBytes,
  parseAddress,
  parseMessage,
  proofMatches,
  protocolVersion,
  type ConnectionKind,
  type Message,
} from './protocol.js';

/** Bytes queued for a slow reader before the connection is dropped. @default 64 MiB */
export const sendBufferBytesMax = 64 * 1024 * 1024;

export interface Network {
  listen(host: string, port: number, onSocket: (socket: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }>;
  connect(host: string, port: number): net.Socket;
}

export const nodeNetwork: Network = {
  listen(host, port, onSocket) {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true }, onSocket);
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const address = server.address();
        const boundPort = typeof address === 'object' && address !== null ? address.port : port;
        resolve({
          port: boundPort,
          close: () =>
            new Promise<void>((done) => {
              server.close(() => done());
            }),
        });
      });
    });
  },
  connect(host, port) {
    const socket = net.connect({ host, port, noDelay: true });
    return socket;
  },
};

export class Connection {
  private readonly decoder: FrameDecoder;
  private handler: ((message: Message) => void) | undefined;
  private readonly closeListeners = new Set<(error: Error | undefined) => void>();
  private closedError: Error | undefined;
  private isClosed = false;
  /** Corked by a `send` in this event-loop turn; uncorked at its end by `flush`. */
  private corked = false;
  /** Messages that arrived before a handler was set (during the handshake hand-over). */
  private early: Message[] = [];

  constructor(
    readonly socket: net.Socket,
    frameBytesMax: number,
  ) {
    this.decoder = new FrameDecoder(frameBytesMax);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.close(error));
    socket.on('close', () => this.close(undefined));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  private receive(chunk: Buffer): void {
    if (this.isClosed) return;
    let bodies: Buffer[];
    try {
      bodies = this.decoder.push(chunk);
    } catch (error) {
      this.reject(error);
      return;
    }
    for (const body of bodies) {
      if (this.isClosed) return;
      let message: Message;
      try {
        message = parseMessage(body);
      } catch (error) {
        this.reject(error);
        return;
      }
      if (this.handler === undefined) {
        this.early.push(message);
        continue;
      }
      try {
        this.handler(message);
      } catch (error) {
        // A message we could not act on must not take the process down: drop this connection.
        this.reject(error);
        return;
      }
    }
  }

  /** Tells the other side what was wrong (a coded error) and closes. */
  reject(error: unknown): void {
    const coded = error instanceof TxlogError ? error : txlogError('PROTOCOL_ERROR', String(error));
    this.send({ t: 'error', error: coded.toJSON() });
    this.socket.end();
    this.close(coded);
  }

  /** Until the next `setHandler`, messages wait in order instead of being handled. */
  holdMessages(): void {
    this.handler = undefined;
  }

  setHandler(handler: (message: Message) => void): void {
    this.handler = handler;
    const early = this.early;
    this.early = [];
    for (const message of early) handler(message);
  }

  onClose(listener: (error: Error | undefined) => void): void {
    if (this.isClosed) listener(this.closedError);
    else this.closeListeners.add(listener);
  }

  /**
   * Queues a message. Past `sendBufferBytesMax` queued bytes the reader is too slow: drop it.
   *
   * Messages sent in one turn of the event loop leave in one `writev` at its end (the socket
   * is corked until `process.nextTick`): a batch of replies or acknowledgements costs one
   * system call, not one each. Call `flush()` before blocking the thread (an fdatasync) when
   * what was sent must be on its way meanwhile.
   */
  send(message: Message): void {
    if (this.isClosed) return;
    if (this.socket.writableLength > sendBufferBytesMax) {
      this.close(txlogError('BUSY', `${this.remote} reads too slowly; dropping the connection`));
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => this.flush());
    }
    this.socket.write(encodeMessage(message));
  }

  /** Hands everything sent so far to the kernel now. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  close(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closedError = error;
    if (error !== undefined) this.socket.destroy();
    else this.socket.end();
    // A closed socket never emits again; also make sure no half-open socket lingers.
    setImmediate(() => this.socket.destroy());
    for (const listener of this.closeListeners) listener(error);
    this.closeListeners.clear();
  }
}

export interface HandshakeOptions {
  clusterId: string;
  secret: string;
  frameBytesMax: number;
  timeoutMs: number;
  random: Random;
}

function nextMessage(connection: Connection, timeoutMs: number): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(txlogError('TIMEOUT', `no answer from ${connection.remote} in ${timeoutMs} ms`)), timeoutMs);
    connection.onClose((error) => {
      clearTimeout(timer);
      reject(error ?? txlogError('PROTOCOL_ERROR', `${connection.remote} closed the connection during the handshake`));
    });
    connection.setHandler((message) => {
      clearTimeout(timer);
      connection.holdMessages();
      resolve(message);
    });
  });
}

function remoteError(message: Message): TxlogError {
  if (message.t === 'error') return errorFromSerialized(message.error);
  return txlogError('PROTOCOL_ERROR', `unexpected ${message.t} during the handshake`);
}

/** Dials `address` and proves we know the secret; resolves with the open connection. */
export async function dial(
  network: Network,
  address: string,
  options: HandshakeOptions & { kind: ConnectionKind; id: string },
): Promise<{ connection: Connection; nodeId: string }> {
  const { host, port } = parseAddress(address);
  const socket = network.connect(host, port);
  const connection = new Connection(socket, options.frameBytesMax);
  try {
    const hello = await nextMessage(connection, options.timeoutMs);
    if (hello.t !== 'hello') throw remoteError(hello);
    if (hello.protocol !== protocolVersion) {
      throw txlogError('PROTOCOL_ERROR', `${address} speaks protocol ${hello.protocol}; this client speaks ${protocolVersion}`);
    }
    if (hello.clusterId !== options.clusterId) {
      throw txlogError('UNAUTHORIZED', `${address} belongs to cluster ${hello.clusterId}, not ${options.clusterId}`);
    }
    const nonce = options.random.bytes(nonceBytes);
    connection.send({
      t: 'auth',
      protocol: protocolVersion,
      clusterId: options.clusterId,
      kind: options.kind,
      id: options.id,
      proof: authProof(options.secret, hello.nonce, options.clusterId, options.kind),
      nonce,
    });
    const welcome = await nextMessage(connection, options.timeoutMs);
    if (welcome.t !== 'welcome') throw remoteError(welcome);
    if (!proofMatches(authProof(options.secret, nonce, options.clusterId, 'server'), welcome.proof)) {
      throw txlogError('UNAUTHORIZED', `${address} could not prove it knows the cluster secret`);
    }
    return { connection, nodeId: welcome.nodeId };
  } catch (error) {
    connection.close(error instanceof Error ? error : undefined);
    throw error;
  }
}

/** Runs the server side of the handshake on a fresh socket. Rejects (and closes) on failure. */
export async function accept(
  socket: net.Socket,
  options: HandshakeOptions & { nodeId: string },
): Promise<{ connection: Connection; kind: ConnectionKind; id: string }> {
  const connection = new Connection(socket, options.frameBytesMax);
  const nonce = options.random.bytes(nonceBytes);
  connection.send({ t: 'hello', protocol: protocolVersion, clusterId: options.clusterId, nodeId: options.nodeId, nonce });
  let auth: Message;
  try {
    auth = await nextMessage(connection, options.timeoutMs);
  } catch (error) {
    connection.close(error instanceof Error ? error : undefined);
    throw error;
  }
  if (auth.t !== 'auth') {
    connection.reject(txlogError('PROTOCOL_ERROR', `expected auth, got ${auth.t}`));
    throw txlogError('PROTOCOL_ERROR', 'handshake without auth');
  }
  if (auth.protocol !== protocolVersion) {
    const error = txlogError('PROTOCOL_ERROR', `protocol ${auth.protocol} is not supported; this node speaks ${protocolVersion}`);
    connection.reject(error);
    throw error;
  }
  if (auth.clusterId !== options.clusterId || !proofMatches(authProof(options.secret, nonce, options.clusterId, auth.kind), auth.proof)) {
    const error = txlogError('UNAUTHORIZED', 'wrong cluster or secret');
    connection.reject(error);
    throw error;
  }
  connection.send({ t: 'welcome', nodeId: options.nodeId, proof: authProof(options.secret, auth.nonce, options.clusterId, 'server') });
  return { connection, kind: auth.kind, id: auth.id };
}

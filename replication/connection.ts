/**
 * One authenticated, framed connection, and the handshake that opens it from either side.
 * Bytes reach this file through the `Transport` seam (`transport.ts`); timers through `Clock`.
 */
import { AssertionFailed } from '../wal/assert.js';
import { TxlogError, errorFromSerialized, txlogError } from '../wal/errors.js';
import type { Clock, Random } from '../wal/platform.js';
import { sendBufferBytesMax } from './limits.js';
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
import type { Network, Transport } from './transport.js';

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
    private readonly transport: Transport,
    frameBytesMax: number,
    private readonly clock: Clock,
  ) {
    this.decoder = new FrameDecoder(frameBytesMax);
    transport.onData((chunk) => this.receive(chunk));
    transport.onError((error) => this.close(error));
    transport.onClose(() => this.close(undefined));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get remote(): string {
    return this.transport.remoteAddress;
  }

  /** Bytes sent and not yet taken by the other side. */
  get bufferedBytes(): number {
    return this.transport.bufferedBytes;
  }

  /** Listeners waiting for the close (a few per connection: its owner, a handshake, a drain). */
  get closeListenerCount(): number {
    return this.closeListeners.size;
  }

  /** Resolves when what is queued has drained, or when the connection closes. */
  whenDrained(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.isClosed) return resolve();
      // Its close listener goes with the drain: the catch-up pump waits here once per 8 MiB
      // sent, and kept, they added up over a long catch-up for the life of the link.
      const drained = (): void => {
        this.closeListeners.delete(drained);
        resolve();
      };
      this.transport.onceDrained(drained);
      this.closeListeners.add(drained);
    });
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
        // A broken invariant is ours, not the peer's: it must stop the process, not a link.
        if (error instanceof AssertionFailed) throw error;
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
    this.transport.close();
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
   * Messages sent in one turn of the event loop leave in one `writev` at its end (the transport
   * is corked until `process.nextTick`, which no clock drives: it runs before any timer, so a
   * simulated clock needs no part in it): a batch of replies or acknowledgements costs one
   * system call, not one each. Call `flush()` before blocking the thread (an fdatasync) when
   * what was sent must be on its way meanwhile.
   */
  send(message: Message): void {
    if (this.isClosed) return;
    if (this.transport.bufferedBytes > sendBufferBytesMax) {
      this.close(txlogError('BUSY', `${this.remote} reads too slowly; dropping the connection`));
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.transport.cork();
      process.nextTick(() => this.flush());
    }
    this.transport.write(encodeMessage(message));
  }

  /** Hands everything sent so far to the kernel now. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.transport.uncork();
  }

  close(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closedError = error;
    if (error !== undefined) this.transport.destroy();
    else this.transport.close();
    // A closed transport never emits again; also make sure no half-open one lingers.
    this.clock.setImmediate(() => this.transport.destroy());
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
  clock: Clock;
}

function nextMessage(connection: Connection, clock: Clock, timeoutMs: number): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(txlogError('TIMEOUT', `no answer from ${connection.remote} in ${timeoutMs} ms`)), timeoutMs);
    connection.onClose((error) => {
      timer.cancel();
      reject(error ?? txlogError('PROTOCOL_ERROR', `${connection.remote} closed the connection during the handshake`));
    });
    connection.setHandler((message) => {
      timer.cancel();
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
  const connection = new Connection(network.connect(host, port), options.frameBytesMax, options.clock);
  try {
    const hello = await nextMessage(connection, options.clock, options.timeoutMs);
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
    const welcome = await nextMessage(connection, options.clock, options.timeoutMs);
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

/** Runs the server side of the handshake on a fresh transport. Rejects (and closes) on failure. */
export async function accept(
  transport: Transport,
  options: HandshakeOptions & { nodeId: string },
): Promise<{ connection: Connection; kind: ConnectionKind; id: string }> {
  const connection = new Connection(transport, options.frameBytesMax, options.clock);
  const nonce = options.random.bytes(nonceBytes);
  connection.send({ t: 'hello', protocol: protocolVersion, clusterId: options.clusterId, nodeId: options.nodeId, nonce });
  let auth: Message;
  try {
    auth = await nextMessage(connection, options.clock, options.timeoutMs);
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

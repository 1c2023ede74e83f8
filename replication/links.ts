/**
 * Link management: the listeners, the handshake of every incoming connection (a peer becomes a
 * link, a client goes to the request handler), the dial loop to each peer address, and the set
 * of open peer links. Every link opens with our `peer {state}`; what the peer says on it goes to
 * the node.
 */
import { TxlogError, txlogError } from '../wal/errors.js';
import type { NodeContext, PeerLink } from './context.js';
import { accept, dial, type Connection, type HandshakeOptions } from './connection.js';
import { acceptedPeerLinksMax, dialBackoffMsMax, dialBackoffMsMin } from './limits.js';
import { encodeMessage, type Message, type PeerState } from './protocol.js';
import type { Transport } from './transport.js';

/** What the links hand to the node. */
export interface LinkEvents {
  peerState(): PeerState;
  onPeerMessage(link: PeerLink, message: Message): void;
  onLinkClosed(link: PeerLink): void;
  onClient(connection: Connection, clientId: string): void;
}

export class PeerLinks {
  /** The addresses actually bound (port 0 replaced by the port picked). */
  readonly addresses: string[] = [];
  private readonly servers: Array<{ port: number; close: () => Promise<void> }> = [];
  private readonly dialing = new Set<string>();
  /** Incoming connections still in their handshake (at most `clientConnectionsMax`). */
  private handshakes = 0;

  constructor(
    private readonly context: NodeContext,
    private readonly events: LinkEvents,
    /** The node's set of open links, which this class alone adds to and removes from. */
    readonly links: Set<PeerLink>,
  ) {}

  /** Incoming connections still in their handshake. */
  get handshaking(): number {
    return this.handshakes;
  }

  /** Tells every peer our state. */
  broadcastState(): void {
    const state = this.events.peerState();
    for (const link of this.links) link.connection.send({ t: 'peer', state });
  }

  /** Binds every listen address. */
  async listen(): Promise<void> {
    for (const address of this.context.options.listen) {
      const separator = address.lastIndexOf(':');
      const host = address.slice(0, separator).replace(/^\[|\]$/g, '');
      const port = Number(address.slice(separator + 1));
      const server = await this.context.options.network.listen(host, port, (transport) => void this.onTransport(transport));
      this.servers.push(server);
      this.addresses.push(`${address.slice(0, separator)}:${server.port}`);
    }
  }

  /** Keeps a link open to every peer address until the node closes. */
  dialPeers(): void {
    for (const address of this.context.options.peers) void this.dialLoop(address);
  }

  /** Closes every link silent past `heartbeatTimeoutMs`; sends a `heartbeat` on the others. */
  heartbeat(nowMs: number, epoch: number, lastLsn: number): void {
    const timeoutMs = this.context.options.heartbeatTimeoutMs;
    for (const link of [...this.links]) {
      if (nowMs - link.lastHeardMs > timeoutMs) {
        this.context.log(`peer link ${link.connection.remote} silent for ${Math.round(nowMs - link.lastHeardMs)} ms; closing it`);
        link.connection.close(txlogError('TIMEOUT', 'heartbeat timeout'));
        continue;
      }
      link.connection.send({ t: 'heartbeat', epoch, lastLsn });
    }
  }

  /** Some open link to a primary of `epoch` or above was heard from within `heartbeatTimeoutMs`. */
  primaryHeardFrom(epoch: number, nowMs: number): boolean {
    return [...this.links].some(
      (link) =>
        !link.connection.closed &&
        link.state?.role === 'primary' &&
        link.state.epoch >= epoch &&
        nowMs - link.lastHeardMs < this.context.options.heartbeatTimeoutMs,
    );
  }

  /** A client-facing address of the primary, preferring the link we follow it on. */
  primaryAddress(following: PeerLink | undefined): string | undefined {
    const link = following ?? [...this.links].find((candidate) => candidate.state?.role === 'primary');
    return link?.state?.addresses[0];
  }

  /** Closes every link now, then stops listening. */
  async close(closeClients: () => void): Promise<void> {
    for (const link of [...this.links]) link.connection.close(undefined);
    closeClients();
    await Promise.all(this.servers.map((server) => server.close()));
  }

  private handshakeOptions(): HandshakeOptions {
    const options = this.context.options;
    return {
      clusterId: options.clusterId,
      secret: options.secret,
      frameBytesMax: options.frameBytesMax,
      timeoutMs: options.connectTimeoutMs,
      random: this.context.random,
      clock: this.context.clock,
    };
  }

  private async onTransport(transport: Transport): Promise<void> {
    if (this.context.closed) {
      transport.destroy();
      return;
    }
    // Before its handshake a connection has proved nothing, yet holds a decoder that may buffer
    // a frame for up to `connectTimeoutMs`: as many at once as the node may serve clients.
    const handshakesMax = this.context.options.clientConnectionsMax;
    if (this.handshakes >= handshakesMax) {
      transport.write(encodeMessage({ t: 'error', error: txlogError('BUSY', `this node is in ${handshakesMax} handshakes already; retry later`).toJSON() }));
      transport.close();
      return;
    }
    this.handshakes += 1;
    let accepted;
    try {
      accepted = await accept(transport, { ...this.handshakeOptions(), nodeId: this.context.nodeId });
    } catch {
      return; // The connection was told why and closed; nothing else is affected.
    } finally {
      this.handshakes -= 1;
    }
    if (this.context.closed) {
      accepted.connection.close(undefined);
      return;
    }
    if (accepted.kind === 'peer') this.add(accepted.connection, false);
    else this.events.onClient(accepted.connection, accepted.id);
  }

  private async dialLoop(address: string): Promise<void> {
    let delayMs = dialBackoffMsMin;
    while (!this.context.closed) {
      if (!this.dialing.has(address)) {
        this.dialing.add(address);
        try {
          const { connection } = await dial(this.context.options.network, address, {
            ...this.handshakeOptions(),
            kind: 'peer',
            id: this.context.nodeId,
          });
          if (this.context.closed) {
            connection.close(undefined);
            return;
          }
          delayMs = dialBackoffMsMin;
          this.add(connection, true);
          await new Promise<void>((resolve) => connection.onClose(() => resolve()));
        } catch (error) {
          if (error instanceof TxlogError && error.code === 'UNAUTHORIZED') this.context.log(`peer ${address}: ${error.message}`);
        } finally {
          this.dialing.delete(address);
        }
      }
      await new Promise<void>((resolve) => this.context.clock.setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, dialBackoffMsMax);
    }
  }

  private add(connection: Connection, dialed: boolean): void {
    if (!dialed && this.links.size >= acceptedPeerLinksMax + this.context.options.peers.length) {
      connection.reject(txlogError('BUSY', `this node holds ${this.links.size} peer links already`));
      return;
    }
    const link: PeerLink = { connection, state: undefined, lastHeardMs: this.context.clock.monotonicMs(), dialed };
    this.links.add(link);
    connection.onClose(() => {
      this.links.delete(link);
      this.events.onLinkClosed(link);
    });
    connection.setHandler((message) => this.events.onPeerMessage(link, message));
    connection.send({ t: 'peer', state: this.events.peerState() });
  }
}

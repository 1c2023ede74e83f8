/**
 * The byte pipes under every connection, and where they come from. `Connection` and the node
 * see only `Transport` and `Network`; `nodeNetwork` adapts TCP sockets (`node:net`) to them, and
 * `tlsNetwork` (`tls.ts`) TLS 1.3 sockets, used whenever a secret is configured. A
 * deterministic simulator supplies in-memory ones instead, so that it can reorder, delay, cut
 * and stall links from one seed.
 */
import * as net from 'node:net';

/** One bidirectional, ordered byte stream to a remote end. */
export interface Transport {
  /** Queues bytes; false once the queue is past its high-water mark (the caller may wait for drain). */
  write(bytes: Uint8Array): boolean;
  /** Bytes queued and not yet handed to the other side. */
  readonly bufferedBytes: number;
  /** Holds writes until `uncork`, so that a turn's messages leave in one go. */
  cork(): void;
  uncork(): void;
  /** Called with each chunk received, in order. */
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once each time the queue has drained after `write` returned false. */
  onceDrained(listener: () => void): void;
  /** Called once when the transport is closed, by either side, for whatever reason. */
  onClose(listener: () => void): void;
  onError(listener: (error: Error) => void): void;
  /** Ends our side after the queued bytes are sent. */
  close(): void;
  /** Drops the transport at once, with whatever is still queued. */
  destroy(): void;
  /** `host:port` of the other end, for logs and messages. */
  readonly remoteAddress: string;
}

export interface Network {
  listen(host: string, port: number, onTransport: (transport: Transport) => void): Promise<{ port: number; close: () => Promise<void> }>;
  connect(host: string, port: number): Transport;
}

/**
 * Adapts a TCP socket (connected or connecting; a TLS socket is one too) to `Transport`.
 * `mapError` turns a socket error into the one the connection sees (the TLS network names
 * handshake failures with it).
 */
export function socketTransport(socket: net.Socket, mapError: (error: Error) => Error = (error) => error): Transport {
  return {
    write: (bytes) => socket.write(bytes),
    get bufferedBytes() {
      return socket.writableLength;
    },
    cork: () => socket.cork(),
    uncork: () => socket.uncork(),
    onData: (listener) => void socket.on('data', listener),
    onceDrained: (listener) => void socket.once('drain', listener),
    onClose: (listener) => void socket.once('close', () => listener()),
    onError: (listener) => void socket.on('error', (error: Error) => listener(mapError(error))),
    close: () => void socket.end(),
    destroy: () => void socket.destroy(),
    // Asked when needed, not at creation: a dialing socket learns its remote end on connect.
    get remoteAddress() {
      return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    },
  };
}

/** Binds `server` and resolves with the bound port and a close that waits for it. */
export function listenOn(server: net.Server, host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
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
}

export const nodeNetwork: Network = {
  listen(host, port, onTransport) {
    return listenOn(net.createServer({ noDelay: true }, (socket) => onTransport(socketTransport(socket))), host, port);
  },
  connect(host, port) {
    return socketTransport(net.connect({ host, port, noDelay: true }));
  },
};

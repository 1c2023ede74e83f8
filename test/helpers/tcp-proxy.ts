/**
 * A small TCP proxy on loopback (port chosen by the OS) for tests that need to cut a link or
 * give a restarted process a stable address: it forwards each connection to the current target,
 * `cut()` destroys every forwarded socket and refuses new ones until `restore()`; `captured()`
 * is every byte it forwarded, for tests of what crosses the wire. Closed after
 * the test by the `useTcpProxies` teardown.
 */
import * as net from 'node:net';
import { afterEach } from 'vitest';

export interface TcpProxy {
  /** `127.0.0.1:port` to connect to. */
  address: string;
  /** Where new connections go (undefined: refused). */
  setTarget(target: string | undefined): void;
  /** Destroys every open forwarded connection and refuses new ones. */
  cut(): void;
  restore(): void;
  /** Connections forwarded right now. */
  readonly openConnections: number;
  /** Every byte forwarded so far, both ways (what someone on the path could read). */
  captured(): Buffer;
  close(): Promise<void>;
}

export function useTcpProxies(): (target: string | undefined) => Promise<TcpProxy> {
  const open: TcpProxy[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((proxy) => proxy.close()));
  });
  return async (initialTarget) => {
    const proxy = await startTcpProxy(initialTarget);
    open.push(proxy);
    return proxy;
  };
}

export async function startTcpProxy(initialTarget: string | undefined): Promise<TcpProxy> {
  let target = initialTarget;
  let isCut = false;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const capture: Buffer[] = [];
  const server = net.createServer((incoming) => {
    if (isCut || target === undefined) {
      incoming.destroy();
      return;
    }
    const separator = target.lastIndexOf(':');
    const outgoing = net.connect({ host: target.slice(0, separator), port: Number(target.slice(separator + 1)) });
    const pair: [net.Socket, net.Socket] = [incoming, outgoing];
    pairs.add(pair);
    const teardown = (): void => {
      pairs.delete(pair);
      incoming.destroy();
      outgoing.destroy();
    };
    incoming.on('error', teardown);
    outgoing.on('error', teardown);
    incoming.on('close', teardown);
    outgoing.on('close', teardown);
    incoming.on('data', (chunk: Buffer) => capture.push(chunk));
    outgoing.on('data', (chunk: Buffer) => capture.push(chunk));
    incoming.pipe(outgoing);
    outgoing.pipe(incoming);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : 0;
  const destroyAll = (): void => {
    for (const [incoming, outgoing] of [...pairs]) {
      incoming.destroy();
      outgoing.destroy();
    }
    pairs.clear();
  };
  return {
    address: `127.0.0.1:${port}`,
    setTarget: (next) => {
      target = next;
    },
    cut: () => {
      isCut = true;
      destroyAll();
    },
    restore: () => {
      isCut = false;
    },
    get openConnections() {
      return pairs.size;
    },
    captured: () => Buffer.concat(capture),
    close: () =>
      new Promise<void>((resolve) => {
        isCut = true;
        destroyAll();
        server.close(() => resolve());
      }),
  };
}

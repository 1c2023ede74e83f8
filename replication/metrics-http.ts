/**
 * The `/metrics` endpoint of `txlog serve --metrics-listen`: a plain `node:http` server that
 * answers GET /metrics with the registry in Prometheus text format and 404 to anything else.
 * It listens before the node starts, so a port in use fails the command before the store is
 * opened, and a node already holding that port is not touched.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { txlogError } from '../wal/errors.js';
import type { PrometheusMetrics } from './prometheus.js';

export interface MetricsServer {
  /** `host:port` actually bound (port 0 picks a free one). */
  address: string;
  close(): Promise<void>;
}

export async function serveMetrics(metrics: PrometheusMetrics, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EADDRINUSE' ? 'is in use' : `cannot be listened on (${error.code ?? error.message})`;
      reject(txlogError('IO_ERROR', `metrics address ${host}:${port} ${why}`, { host, port, code: error.code }, error));
    });
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

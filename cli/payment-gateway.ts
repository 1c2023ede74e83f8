/**
 * A fake payment gateway on loopback: `POST {idempotencyKey}` answers `{chargeId}` and counts
 * the requests per key. `txlog demo` charges it from its service (deduplicating, as a real
 * gateway would: a key charged again gets its first charge back); the failover tests use it
 * without deduplication, so that a call made twice shows up as two different charges.
 */
import * as http from 'node:http';

export interface PaymentGatewayOptions {
  /**
   * True: a repeated key is answered with the charge already made for it. False: every request
   * is a new charge, `key#n` for the n-th request with that key.
   */
  deduplicate: boolean;
}

export interface PaymentGateway {
  /** `127.0.0.1:PORT`. */
  address: string;
  /** Requests per idempotency key. */
  requests: Map<string, number>;
  /** Every charge id issued, with the key it was issued for. */
  charges: Map<string, string>;
  /** Closes the server and every connection to it. */
  close(): Promise<void>;
}

export async function startPaymentGateway(options: PaymentGatewayOptions): Promise<PaymentGateway> {
  const requests = new Map<string, number>();
  const charges = new Map<string, string>();
  const chargeOfKey = new Map<string, string>();
  const charge = (key: string): string => {
    const count = (requests.get(key) ?? 0) + 1;
    requests.set(key, count);
    const earlier = options.deduplicate ? chargeOfKey.get(key) : undefined;
    if (earlier !== undefined) return earlier;
    const chargeId = `${key}#${count}`;
    charges.set(chargeId, key);
    chargeOfKey.set(key, chargeId);
    return chargeId;
  };
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      let key: string;
      try {
        key = String((JSON.parse(body) as { idempotencyKey: unknown }).idempotencyKey);
      } catch {
        response.writeHead(400).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ chargeId: charge(key) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    requests,
    charges,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

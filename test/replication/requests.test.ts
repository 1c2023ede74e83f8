/**
 * Proves that a bug of the node's own (anything but a `TxlogError` thrown while it serves a
 * client request, `replication/requests.ts`) never reaches a client as a recorded, final outcome
 * such as `HANDLER_FAILED`:
 * - a write answers `OUTCOME_UNKNOWN` (it may have committed before the bug struck), so the
 *   client resends the same request id: once the bug is gone the resend commits exactly once,
 *   and while it stays the client ends with `TIMEOUT` (outcome unknown), never a final error;
 * - a read answers `INTERNAL_ERROR`, not retryable, saying it changed nothing;
 * - the node logs each one loudly, with the stack.
 * The bug is injected by replacing the store's method a node executes through (the replication
 * hook `executeOwned`), in this process.
 *
 * And that the node counts a request until it ends, its connection closed or not: past
 * `clientConnectionsMax` × `requestsPerConnectionMax` running, a new one is refused with BUSY,
 * as `status().resources.clientRequests` shows.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TxlogError } from '../../wal/errors.js';
import { replicationHooksOf } from '../../engine/replication-hooks.js';
import { useInProcessNodes, waitForInProcess } from '../helpers/in-process-pair.js';

const nodes = useInProcessNodes('txlog-requests-');

afterEach(() => {
  vi.restoreAllMocks();
});

async function rejection(promise: Promise<unknown>): Promise<TxlogError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(TxlogError);
  return error as TxlogError;
}

describe('an internal error while serving a request', () => {
  it('makes a write OUTCOME_UNKNOWN: the client resends the same request id, which commits once', async () => {
    const { primary, servers } = await nodes.startPair();
    const client = await nodes.connect(servers, { clientId: 'c' });
    const execute = vi.spyOn(replicationHooksOf(primary.store), 'executeOwned').mockImplementationOnce(() => {
      throw new TypeError('a bug of the node');
    });

    await client.append('s', [{ type: 'Added', data: 1 }]);

    expect(execute).toHaveBeenCalledTimes(2);
    const [first, second] = execute.mock.calls;
    expect(second![2]).toEqual(first![2]); // the same client and request id, resent
    expect((await client.readStream('s')).events.map((event) => event.data)).toEqual([1]);
    expect(nodes.logs()).toMatch(/INTERNAL ERROR \(a bug\) serving execute of client c: TypeError: a bug of the node\n/);
  });

  it('never turns a write that keeps failing into a final error: the client times out, outcome unknown', async () => {
    const { primary, servers } = await nodes.startPair();
    const client = await nodes.connect(servers, { clientId: 'c', deadlineMs: 300 });
    vi.spyOn(replicationHooksOf(primary.store), 'executeOwned').mockImplementation(() => Promise.reject(new Error('a bug of the node')));

    const error = await rejection(client.append('s', [{ type: 'Added', data: 1 }]));

    expect(error.code).toBe('TIMEOUT');
    expect(error.outcomeUnknown).toBe(true);
    expect(error.details['lastError']).toBe('OUTCOME_UNKNOWN');
  });

  it('makes a read INTERNAL_ERROR, not retryable, and logs it', async () => {
    const { primary, servers } = await nodes.startPair();
    const client = await nodes.connect(servers, { clientId: 'c' });
    const readStream = vi.spyOn(primary.store, 'readStream').mockImplementation(() => {
      throw new RangeError('a bug of the node');
    });

    const error = await rejection(client.readStream('s'));

    expect(error.code).toBe('INTERNAL_ERROR');
    expect(error.retryable).toBe(false);
    expect(error.outcomeUnknown).toBe(false);
    expect(error.details).toMatchObject({ internalError: true, op: 'readStream', thrown: 'RangeError: a bug of the node' });
    expect(readStream).toHaveBeenCalledTimes(1);
    expect(nodes.logs()).toContain('INTERNAL ERROR (a bug) serving readStream of client c: RangeError: a bug of the node');
  });

  it('still answers a TxlogError as it is', async () => {
    const { servers } = await nodes.startPair();
    const client = await nodes.connect(servers, { clientId: 'c' });

    const error = await rejection(client.execute('no-such-command', {}));

    expect(error.code).toBe('UNKNOWN_COMMAND');
    expect(nodes.logs()).not.toContain('INTERNAL ERROR');
  });
});

describe('requests running on a node', () => {
  it('count until they end, their connection closed or not, and past the node\'s limit a new one gets BUSY', async () => {
    const node = await nodes.start({ clientConnectionsMax: 1, requestsPerConnectionMax: 2 });
    const servers = [node.addresses[0]!];
    // Transactions that never end: each request holds its place on the node.
    vi.spyOn(replicationHooksOf(node.store), 'executeOwned').mockImplementation(() => new Promise(() => undefined));
    const first = await nodes.connect(servers, { clientId: 'first' });
    for (let request = 1; request <= 2; request++) void first.execute('hang', {}).catch(() => undefined);
    await waitForInProcess('two requests running', () => node.status().resources['clientRequests']!.size === 2, 5000);
    expect(node.status().resources['requestsOnOneConnection']).toEqual({ size: 2, limit: 2 });
    await first.close();
    await waitForInProcess('the first connection gone', () => node.status().clients === 0, 5000);

    // A client's first call asks the node for its session: refused too.
    const error = await rejection(nodes.connect(servers, { clientId: 'second', deadlineMs: 500 }));

    expect(error.code).toBe('TIMEOUT');
    expect(error.details['lastError']).toBe('BUSY');
    expect(node.status().resources['clientRequests']).toEqual({ size: 2, limit: 2 });
  });
});


/**
 * Proves of replication/connection.ts what the handshake and protocol tests do not reach:
 * waiting for a slow reader to drain, as the catch-up pump does once per 8 MiB it sends, holds
 * nothing once the drain came (a long catch-up used to leave one close listener per wait on the
 * link until it closed), and a wait begun on a closed connection ends at once.
 */
import { describe, expect, it } from 'vitest';
import { Connection } from '../../replication/connection.js';
import type { Transport } from '../../replication/transport.js';
import { nodeClock } from '../../wal/platform.js';

/** A transport that only queues: the test says when it drains. */
function fakeTransport(): Transport & { drain(): void } {
  let drainListeners: Array<() => void> = [];
  return {
    write: () => false,
    bufferedBytes: 1024,
    cork: () => undefined,
    uncork: () => undefined,
    onData: () => undefined,
    onceDrained: (listener) => void drainListeners.push(listener),
    onClose: () => undefined,
    onError: () => undefined,
    close: () => undefined,
    destroy: () => undefined,
    remoteAddress: 'fake:1',
    drain() {
      const listeners = drainListeners;
      drainListeners = [];
      for (const listener of listeners) listener();
    },
  };
}

describe('Connection.whenDrained', () => {
  it('keeps no listener once the transport drained, however often it waited', async () => {
    const transport = fakeTransport();
    const connection = new Connection(transport, 1024 * 1024, nodeClock);
    connection.onClose(() => undefined);
    for (let wait = 0; wait < 100; wait++) {
      const drained = connection.whenDrained();
      expect(connection.closeListenerCount).toBe(2);
      transport.drain();
      await drained;
    }
    expect(connection.closeListenerCount).toBe(1);
    connection.close(undefined);
  });

  it('ends a wait when the connection closes, and at once on a closed one', async () => {
    const connection = new Connection(fakeTransport(), 1024 * 1024, nodeClock);
    const waiting = connection.whenDrained();
    connection.close(undefined);
    await waiting;
    await connection.whenDrained();
    expect(connection.closeListenerCount).toBe(0);
  });
});

/**
 * A dialer that speaks no TLS: a raw loopback socket that waits for the first txlog frame a
 * node sends it, to prove a TLS-only node refuses it with a frame it can read.
 */
import * as net from 'node:net';
import { frameBytesMaxDefault } from '../../replication/limits.js';
import { FrameDecoder, parseAddress, parseMessage } from '../../replication/protocol.js';

/** Connects a raw plaintext socket and resolves with the first frame the node sends. */
export async function firstPlaintextFrame(address: string): Promise<unknown> {
  const { host, port } = parseAddress(address);
  const socket = net.connect({ host, port });
  socket.on('error', () => undefined);
  const decoder = new FrameDecoder(frameBytesMaxDefault);
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no frame within 5 s')), 5000);
      socket.on('data', (chunk: Buffer) => {
        const [body] = decoder.push(chunk);
        if (body === undefined) return;
        clearTimeout(timer);
        resolve(parseMessage(body));
      });
    });
  } finally {
    socket.destroy();
  }
}

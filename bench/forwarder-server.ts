/**
 * The middle of the two-hop floor: a Node process placed like the replicated primary that, for
 * each frame from its client, sends the frame on to an echo process (placed like the backup),
 * writes one commit-sized record into a preallocated file and fdatasyncs it while the echo is on
 * its way, and answers its client once the echo is back: a primary's commit with no work beyond
 * the two round trips and the flush. Its one argument is JSON (`ForwarderSettings`); it prints
 * `{"port":N}` on stdout once listening and exits when stdin closes or on SIGTERM.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface ForwarderSettings {
  /** The echo process's port on 127.0.0.1. */
  downstreamPort: number;
  /** The preallocated file the records go to (removed on exit). */
  filePath: string;
  recordBytes: number;
  fileBytes: number;
  frameBytes: number;
}

function parseSettings(text: string | undefined): ForwarderSettings {
  if (text === undefined) throw new Error('forwarder-server: missing settings argument');
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null) throw new Error('forwarder-server: settings must be an object');
  const settings = value as Record<string, unknown>;
  const integer = (key: keyof ForwarderSettings): number => {
    const field = settings[key];
    if (typeof field !== 'number' || !Number.isSafeInteger(field) || field <= 0) throw new Error(`forwarder-server: ${key} must be a positive integer`);
    return field;
  };
  if (typeof settings['filePath'] !== 'string') throw new Error('forwarder-server: filePath must be a string');
  return {
    downstreamPort: integer('downstreamPort'),
    filePath: settings['filePath'],
    recordBytes: integer('recordBytes'),
    fileBytes: integer('fileBytes'),
    frameBytes: integer('frameBytes'),
  };
}

const settings = parseSettings(process.argv[2]);
const fd = fs.openSync(settings.filePath, 'w+');
const zeros = Buffer.alloc(1024 * 1024);
for (let at = 0; at < settings.fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, Math.min(zeros.length, settings.fileBytes - at), at);
fs.fdatasyncSync(fd);
const record = Buffer.alloc(settings.recordBytes, 0x61);
let position = 0;

const downstream = net.connect({ host: '127.0.0.1', port: settings.downstreamPort, noDelay: true });
downstream.on('error', () => stop());
// One frame at a time, as the floor's client sends them: the client waiting for its answer.
let waiting: { socket: net.Socket; frame: Buffer } | undefined;
let echoedBytes = 0;
downstream.on('data', (chunk: Buffer) => {
  echoedBytes += chunk.length;
  if (waiting === undefined || echoedBytes < settings.frameBytes) return;
  echoedBytes -= settings.frameBytes;
  const { socket, frame } = waiting;
  waiting = undefined;
  socket.write(frame);
});

function forward(socket: net.Socket, frame: Buffer): void {
  waiting = { socket, frame };
  downstream.write(frame);
  // Synchronous, so the echo waits in the socket meanwhile, as the backup's acknowledgement
  // waits for the primary's own flush.
  if (position + record.length > settings.fileBytes) position = 0;
  fs.writeSync(fd, record, 0, record.length, position);
  fs.fdatasyncSync(fd);
  position += record.length;
}

const server = net.createServer({ noDelay: true }, (socket) => {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  socket.on('data', (chunk: Buffer) => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes < settings.frameBytes) return;
    const frame = Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    forward(socket, frame);
  });
  socket.on('error', () => socket.destroy());
});
downstream.once('connect', () => {
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  });
});

function stop(): void {
  server.close();
  downstream.destroy();
  fs.closeSync(fd);
  fs.rmSync(settings.filePath, { force: true });
  process.exit(0);
}
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();

/**
 * Network floors measured in the same run as the replicated scenarios: what a Node-to-Node
 * loopback round trip costs (a child process echoing small frames, one at a time), that round
 * trip overlapped with a local write+fdatasync of one WAL frame (send to the echo child, write
 * and fdatasync here, then await the echo), and the two-hop floor of the real topology: this
 * process (the client) to a forwarder child placed like the primary, which sends on to the echo
 * child placed like the backup and flushes a record meanwhile (bench/forwarder-server.ts). A
 * replicated commit cannot beat the two-hop floor under `fsync: 'always'`, nor one round trip
 * under `interval`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ForwarderSettings } from './forwarder-server.js';
import type { LatencySamples } from './stats.js';
import { elapsedNs } from './stats.js';

/** Bytes per echoed frame: about a client request or an acknowledgement. */
export const echoFrameBytes = 64;
const echoServerPath = fileURLToPath(new URL('./echo-server.js', import.meta.url));
const forwarderServerPath = fileURLToPath(new URL('./forwarder-server.js', import.meta.url));

/** A child process that answers each frame with a frame of the same size: the echo or the forwarder. */
export interface EchoPeer {
  pid: number;
  /** Its port on 127.0.0.1. */
  port: number;
  /** One round trip: resolves when the frame came back whole. */
  roundTrip(frame: Buffer): Promise<void>;
  /** Starts a round trip; the returned promise resolves when the echo is back. */
  send(frame: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** Starts the echo child (pinned with `taskset -c cpus` when given) and connects to it. */
export function startEchoPeer(cpus: string | undefined): Promise<EchoPeer> {
  return startFramePeer([echoServerPath], cpus);
}

/**
 * Starts the forwarder child of the two-hop floor (pinned with `taskset -c cpus` when given) in
 * front of `echo`, flushing `recordBytes` per frame into a preallocated file at `filePath`.
 */
export function startForwarderPeer(
  cpus: string | undefined,
  echo: EchoPeer,
  options: { filePath: string; recordBytes: number; fileBytes: number },
): Promise<EchoPeer> {
  const settings: ForwarderSettings = { downstreamPort: echo.port, ...options, frameBytes: echoFrameBytes };
  return startFramePeer([forwarderServerPath, JSON.stringify(settings)], cpus);
}

async function startFramePeer(scriptArgs: string[], cpus: string | undefined): Promise<EchoPeer> {
  const child: ChildProcess = cpus === undefined
    ? spawn(process.execPath, scriptArgs, { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn('taskset', ['-c', cpus, process.execPath, ...scriptArgs], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline >= 0) resolve((JSON.parse(buffered.slice(0, newline)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`${path.basename(scriptArgs[0]!)} exited with ${String(code)}`)));
    child.once('error', reject);
  });
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let waiting: { bytesLeft: number; resolve: () => void } | undefined;
  socket.on('data', (chunk: Buffer) => {
    if (waiting === undefined) return;
    waiting.bytesLeft -= chunk.length;
    if (waiting.bytesLeft <= 0) {
      const done = waiting.resolve;
      waiting = undefined;
      done();
    }
  });
  const send = (frame: Buffer): Promise<void> =>
    new Promise<void>((resolve) => {
      waiting = { bytesLeft: frame.length, resolve };
      socket.write(frame);
    });
  return {
    pid: child.pid!,
    port,
    roundTrip: send,
    send,
    close: async () => {
      socket.destroy();
      // A child that already died (the forwarder exits when its echo goes) has no exit left to wait for.
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Round trips one at a time for `durationMs`. */
export async function measureRoundTrips(peer: EchoPeer, durationMs: number, samples: LatencySamples): Promise<void> {
  const frame = Buffer.alloc(echoFrameBytes, 0x62);
  const endNs = process.hrtime.bigint() + BigInt(durationMs) * 1_000_000n;
  while (process.hrtime.bigint() < endNs) {
    const startNs = process.hrtime.bigint();
    await peer.roundTrip(frame);
    samples.add(elapsedNs(startNs));
  }
}

/**
 * Send to the echo child, write+fdatasync one record into a preallocated file here, await the
 * echo. The fdatasync is synchronous (the cheapest way to issue it), so the echo waits in the
 * socket meanwhile, as a backup's acknowledgement waits for a primary's flush.
 */
export async function measureOverlapped(
  peer: EchoPeer,
  options: { dir: string; recordBytes: number; fileBytes: number; durationMs: number },
  samples: LatencySamples,
): Promise<void> {
  const filePath = path.join(options.dir, 'floor-overlapped.tmp');
  const fd = fs.openSync(filePath, 'w+');
  try {
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = 0; at < options.fileBytes; at += zeros.length) fs.writeSync(fd, zeros, 0, Math.min(zeros.length, options.fileBytes - at), at);
    fs.fdatasyncSync(fd);
    const frame = Buffer.alloc(echoFrameBytes, 0x62);
    const record = Buffer.alloc(options.recordBytes, 0x61);
    let position = 0;
    const endNs = process.hrtime.bigint() + BigInt(options.durationMs) * 1_000_000n;
    while (process.hrtime.bigint() < endNs) {
      if (position + record.length > options.fileBytes) position = 0;
      const startNs = process.hrtime.bigint();
      const echoed = peer.send(frame);
      fs.writeSync(fd, record, 0, record.length, position);
      fs.fdatasyncSync(fd);
      await echoed;
      samples.add(elapsedNs(startNs));
      position += record.length;
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(filePath, { force: true });
  }
}

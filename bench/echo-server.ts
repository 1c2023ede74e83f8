/**
 * The far end of the network floors: a Node process that echoes every byte it receives on a
 * loopback TCP socket (Nagle off), like a backup acknowledging a frame with no work at all. It
 * prints `{"port":N}` on stdout once listening and exits when stdin closes or on SIGTERM.
 */
import * as net from 'node:net';

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();

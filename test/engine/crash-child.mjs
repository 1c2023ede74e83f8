// Child process of test/engine/crash.test.ts, running the built store (dist/) with fsync 'always'.
//
//   node crash-child.mjs load DIR CLIENTS REQUESTS_PER_CLIENT STREAMS
//     Every client sends its deposits one after another, all clients at once, and prints
//     `ack CLIENT REQUEST_ID REPLY_JSON` the moment each execute resolves, until SIGKILLed.
//   node crash-child.mjs charge DIR SIDE_FILE
//     Sends one charge; with TXLOG_CRASH_KILL_AFTER_FIRST_CALL=1 it kills itself inside the handler.
import { openStore } from '../../dist/index.js';
import { crashService, depositRequest } from './crash-service.mjs';

// Never outlive a parent that died without killing us.
setTimeout(() => process.exit(3), 30_000).unref();

const [mode, dir, ...rest] = process.argv.slice(2);
// requestWindow matches crash.test.ts: every request is resent after the kill.
const store = await openStore({
  dir,
  service: crashService,
  fsync: 'always',
  segmentBytes: 1024 * 1024,
  preallocate: false,
  requestWindow: 256,
  log: () => {},
});

if (mode === 'load') {
  const [clients, requestsPerClient, streams] = rest.map(Number);
  process.stdout.write('ready\n');
  const client = async (index) => {
    for (let requestId = 1; requestId <= requestsPerClient; requestId++) {
      const request = depositRequest(index, requestId, streams);
      const reply = await store.execute('deposit', request.args, { clientId: request.clientId, requestId });
      // A pipe write is synchronous on Linux: once written, the parent gets it even if we die.
      process.stdout.write(`ack ${index} ${requestId} ${JSON.stringify(reply)}\n`);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));
  process.stdout.write('done\n');
} else if (mode === 'charge') {
  const [sideFile] = rest;
  process.stdout.write('ready\n');
  const reply = await store.execute('charge', { sideFile }, { clientId: 'payer', requestId: 1 });
  process.stdout.write(`ack ${JSON.stringify(reply)}\n`);
} else {
  throw new Error(`unknown mode ${mode}`);
}
await store.close();

// Child process of test/engine/consumer-crash.test.ts, running the built store (dist/).
//
//   node consumer-child.mjs DIR LIVE_EVENTS
//     Runs the consumer `projector` over the streams `orders-*`: each handled event appends
//     `{ position }` to the stream `handled` in the commit that moves its checkpoint. Meanwhile it
//     appends LIVE_EVENTS more source events to `orders-live`, one at a time, so the consumer is
//     killed both in catch-up and live. Prints `handling POSITION` as a handler starts and
//     `done` once caught up with every source event; the parent SIGKILLs it at a seeded moment.
import { openStore } from '../../dist/index.js';

// Never outlive a parent that died without killing us.
setTimeout(() => process.exit(3), 60_000).unref();

const [dir, liveEvents] = process.argv.slice(2);
// A process crash is what is tested: with `fsync: 'never'` every acknowledged write is in the
// page cache, which survives a SIGKILL, and the rounds stay fast on a shared machine.
const store = await openStore({ dir, fsync: 'never', segmentBytes: 1024 * 1024, preallocate: false, log: () => {} });
process.stdout.write('ready\n');

const producer = (async () => {
  for (let index = 0; index < Number(liveEvents); index++) {
    await store.append('orders-live', [{ type: 'Placed', data: { index } }]);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
})();

const consumer = await store.consumer({
  name: 'projector',
  filter: { streamPrefix: 'orders-' },
  handle: (event, context) => {
    // A pipe write is synchronous on Linux: once written, the parent has it even if we die.
    process.stdout.write(`handling ${event.position}\n`);
    context.append('handled', [{ type: 'Handled', data: { position: event.position } }]);
  },
});
await producer;
const [last] = await store.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 1, filter: { streamPrefix: 'orders-' } });
while (consumer.position < (last?.position ?? -1)) await new Promise((resolve) => setTimeout(resolve, 5));
await consumer.stop();
await consumer.done;
process.stdout.write('done\n');
await store.close();

// A service for the rejoin determinism test: `charge` makes two journaled calls; the second one
// waits until the file named in args.gate exists, so the test can restart the backup between
// the first call's journal record and the commit.
import { existsSync } from 'node:fs';

async function waitForFile(file) {
  const deadline = Date.now() + 30_000;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`gate ${file} never opened`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export default {
  name: 'gated',
  commands: {
    async charge(ctx, args) {
      const first = await ctx.call('gateway.authorize', (key) => `auth:${key}`);
      const second = await ctx.call('gateway.capture', async (key) => {
        await waitForFile(args.gate);
        return `capture:${key}`;
      });
      ctx.append('charges', [{ type: 'Charged', data: { first, second, at: ctx.now() } }]);
      return { first, second };
    },
  },
};

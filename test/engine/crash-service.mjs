// The service the engine crash tests run, shared by the child process (crash-child.mjs) and the
// parent test that reopens the store and resends: the same handlers on both sides, as on a
// primary and its backup.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

/** The external side effect of a call: one line per invocation, fsync'd before it returns. */
function recordInvocation(sideFile, key) {
  const fd = openSync(sideFile, 'a');
  try {
    writeSync(fd, `${key}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The pid tells which process made the call, so the parent can see a result was journaled.
  return `${key}@${process.pid}`;
}

export const crashService = {
  name: 'crash',
  commands: {
    async deposit(ctx, args) {
      // Only the head version: reading the whole stream each time would make the load quadratic.
      const { version } = await ctx.readStream(args.stream, { maxCount: 0 });
      ctx.append(args.stream, [{ type: 'Deposited', data: { tag: args.tag } }]);
      return { tag: args.tag, sawVersion: version };
    },
    async charge(ctx, args) {
      const first = await ctx.call('gateway.charge', (key) => recordInvocation(args.sideFile, key));
      // The child dies here: after call 0 is journaled (durable), before anything commits.
      if (process.env.TXLOG_CRASH_KILL_AFTER_FIRST_CALL === '1') process.kill(process.pid, 'SIGKILL');
      const second = await ctx.call('gateway.receipt', (key) => recordInvocation(args.sideFile, key));
      ctx.append('charges', [{ type: 'Charged', data: { first, second } }]);
      return { first, second };
    },
  },
};

/** The deposit request `requestId` of client number `client`: a pure function of the two. */
export function depositRequest(client, requestId, streams) {
  return {
    clientId: `client-${client}`,
    requestId,
    args: { stream: `account-${(client * 7 + requestId) % streams}`, tag: `${client}:${requestId}` },
  };
}

// The service the replication tests run on both nodes (`txlog serve --service`): a deposit
// charges an external system (a journaled `ctx.call`) and appends the deposit to its account.
// TXLOG_TEST_EXTERNAL is the external system's address; without it the "charge" is a local
// value derived from the idempotency key. TXLOG_TEST_VARIANT changes the reply and the event
// (the determinism test runs a backup with a different value); default 'same'.

async function charge(idempotencyKey, amount) {
  const external = process.env.TXLOG_TEST_EXTERNAL;
  if (external === undefined || external === '') return `local:${idempotencyKey}`;
  const response = await fetch(`http://${external}/charge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ idempotencyKey, amount }),
  });
  if (!response.ok) throw new Error(`external system answered ${response.status}`);
  const body = await response.json();
  return body.chargeId;
}

export default {
  name: 'replication-test-bank',
  commands: {
    async deposit(ctx, args) {
      const chargeId = await ctx.call('external.charge', (key) => charge(key, args.amount));
      const stream = `account-${args.account}`;
      const { version } = await ctx.readStream(stream, { maxCount: 0 });
      const variant = process.env.TXLOG_TEST_VARIANT ?? 'same';
      ctx.append(stream, [
        {
          type: 'Deposited',
          data: { amount: args.amount, chargeId, clientId: ctx.clientId, requestId: ctx.requestId, variant },
        },
      ]);
      return { chargeId, sawVersion: version, variant };
    },
  },
};

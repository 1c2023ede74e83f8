/**
 * The service `txlog demo` runs on both nodes: a deposit charges a payment gateway (an external
 * call, journaled) and records the deposit on the account's stream. The gateway's address comes
 * from TXLOG_DEMO_GATEWAY; the same module runs on the primary and the backup, which never
 * learn their role.
 */
import { defineService } from '../engine/service.js';

interface DepositArgs {
  account: string;
  amount: number;
}

async function charge(idempotencyKey: string, amount: number): Promise<string> {
  const gateway = process.env['TXLOG_DEMO_GATEWAY'];
  if (gateway === undefined) throw new Error('TXLOG_DEMO_GATEWAY is not set');
  const response = await fetch(`http://${gateway}/charge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ idempotencyKey, amount }),
  });
  if (!response.ok) throw new Error(`gateway answered ${response.status}`);
  const body = (await response.json()) as { chargeId: string };
  return body.chargeId;
}

export default defineService({
  name: 'demo-bank',
  commands: {
    async deposit(context, args: DepositArgs) {
      const chargeId = await context.call('gateway.charge', (key) => charge(key, args.amount));
      const stream = `account-${args.account}`;
      const { version } = await context.readStream(stream, { maxCount: 1 });
      context.append(stream, [
        {
          type: 'Deposited',
          data: { amount: args.amount, chargeId, clientId: context.clientId, requestId: context.requestId, at: context.now() },
        },
      ]);
      return { chargeId, previousVersion: version };
    },
  },
});

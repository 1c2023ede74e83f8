/**
 * Proves `store.resourceUsage()` (engine/resources.ts): while handlers run it counts them (their
 * transactions, request ids and deadlines) and the callers and heads of commits not yet applied,
 * within their limits; once everything is applied nothing of that work is left, and reading the
 * usage changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { defineService, type Context } from '../../engine/index.js';
import { useTempDir } from '../helpers/temp.js';
import { openQuietStore, settle } from '../helpers/store.js';

const newDir = useTempDir('txlog-resources-');

describe('store.resourceUsage', () => {
  it('counts the work in progress within its limits, and nothing of it once it is done', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const service = defineService({
      name: 'gated',
      commands: {
        async add(ctx: Context, args: { stream: string }) {
          await gate;
          ctx.append(args.stream, [{ type: 'Added' }]);
        },
      },
    });
    const { store } = await openQuietStore(newDir(), { service, transactionsInFlightMax: 8 });
    const running = [1, 2, 3].map((requestId) => store.execute('add', { stream: `s-${requestId}` }, { clientId: 'c', requestId }));
    await settle();

    const busy = store.resourceUsage();
    expect(busy['transactionsRunning']).toEqual({ size: 3, limit: 8 });
    expect(busy['requestIdsRunning']!.size).toBe(3);
    expect(busy['handlerDeadlines']!.size).toBe(3);
    for (const [name, use] of Object.entries(busy)) {
      if (use.limit !== null) expect(use.size, name).toBeLessThanOrEqual(use.limit);
    }

    open();
    await Promise.all(running);
    await store.whenIdle();
    const idle = store.resourceUsage();
    for (const name of ['walAppendsWaiting', 'recordsUnreleased', 'recordsReleasedUnapplied', 'releaseWaiters', 'applyWaiters', 'transactionsRunning', 'requestIdsRunning', 'handlerDeadlines', 'decidedCommits', 'streamHeadsUnapplied']) {
      expect(idle[name]!.size, name).toBe(0);
    }
    expect(idle['clientSessions']).toEqual({ size: 1, limit: 100_000 });
    expect(idle['walSegments']!.limit).toBeNull();
    expect(store.resourceUsage()).toEqual(idle);
    await store.close();
  });
});

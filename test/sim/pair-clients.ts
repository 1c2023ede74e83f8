/**
 * The pair world's clients: each sends its deposits in request-id order, resends the same request
 * id from a new session whenever the outcome is unknown, reads an account now and then, and
 * records every reply it was given. Once the pair settles, `resendAll` sends every acknowledged
 * request again and checks that it gets the reply it first got.
 */
import { Client } from '../../replication/client.js';
import { TxlogError } from '../../wal/errors.js';
import type { FileSystem, Random } from '../../wal/platform.js';
import type { SeededRandom } from '../helpers/random.js';
import { accountCount, depositArgs, sleep, splitTag } from './bank.js';
import type { SimNetwork } from './network.js';
import type { ProcessClock, Scheduler } from './scheduler.js';

export interface PairClientsWorld {
  scheduler: Scheduler;
  network: SimNetwork;
  /** The client-facing address of each node. */
  servers: string[];
  /** A client's clock and randomness, drawn from the world's streams in the order it asks. */
  platformRandom: SeededRandom;
  workloadRandom: SeededRandom;
  deadlineMs: number;
  connectTimeoutMs: number;
  /** Clients never touch a disk; their platform still needs one. */
  fileSystemFor(clock: ProcessClock): FileSystem;
  fail(invariant: string, message: string): never;
}

export class PairClients {
  /** The reply (or the transaction's error) each request tag was acknowledged with. */
  readonly acknowledged = new Map<string, unknown>();
  /** Tags of the events clients read. */
  readonly observedTags = new Set<string>();
  /** Clients that sent all their requests. */
  done = 0;

  constructor(private readonly world: PairClientsWorld) {}

  private newClient(clientId: string, firstRequestId: number): Client {
    const { platformRandom, scheduler } = this.world;
    const clock = scheduler.clockOf(`client-${clientId}-${firstRequestId}`);
    const random: Random = { float: () => platformRandom.float(), bytes: (count) => platformRandom.bytes(count) };
    const platform = { fileSystem: this.world.fileSystemFor(clock), clock, random };
    return new Client({
      servers: this.world.servers,
      clientId,
      firstRequestId,
      deadlineMs: this.world.deadlineMs,
      connectTimeoutMs: this.world.connectTimeoutMs,
      network: this.world.network.networkFor({ machine: 'c', clock }),
      platform,
    });
  }

  async run(index: number): Promise<void> {
    const { scheduler, workloadRandom } = this.world;
    const clientId = `client-${index}`;
    const requests = workloadRandom.integer(8, 30);
    let client: Client | undefined;
    for (let requestId = 1; requestId <= requests; requestId++) {
      const args = depositArgs(workloadRandom, clientId, requestId);
      for (let attempt = 0; ; attempt++) {
        client ??= this.newClient(clientId, requestId);
        const outcome = await client.execute('deposit', args).then(
          (reply) => ({ reply }),
          (error: unknown) => ({ error }),
        );
        if ('reply' in outcome) {
          this.acknowledged.set(args.tag, outcome.reply);
          scheduler.note(`ack ${args.tag}`);
          break;
        }
        const error = outcome.error;
        const code = error instanceof TxlogError ? error.code : String(error);
        if (code === 'WRONG_EXPECTED_VERSION') {
          this.acknowledged.set(args.tag, { error: code });
          break;
        }
        scheduler.note(`attempt ${attempt} of ${args.tag}: ${code}`);
        if (!(error instanceof TxlogError) || (!error.retryable && !error.outcomeUnknown)) {
          this.world.fail('unexpected-error', `${args.tag} failed with ${code}: ${String(error)}`);
        }
        // Outcome unknown: a new client session resends the same request id.
        await client.close();
        client = undefined;
        await sleep(scheduler, workloadRandom.integer(1, 50));
      }
      if (workloadRandom.float() < 0.1) await this.readSome(client!);
      await sleep(scheduler, workloadRandom.float() * 10);
    }
    await client?.close();
    this.done += 1;
  }

  private async readSome(client: Client): Promise<void> {
    try {
      const slice = await client.readStream(`account-${this.world.workloadRandom.integer(0, accountCount - 1)}`);
      for (const event of slice.events) this.observedTags.add((event.data as { tag: string }).tag);
    } catch {
      // Nothing shown.
    }
  }

  /** Resolves once every acknowledged request was resent and got its first reply again. */
  async resendAll(): Promise<void> {
    for (const [tag, first] of this.acknowledged) {
      const [clientId, requestId] = splitTag(tag);
      const client = this.newClient(clientId, requestId);
      const again = await client.execute('deposit', {}).then(
        (reply) => reply,
        (error: unknown) => ({ error: error instanceof TxlogError ? error.code : String(error) }),
      );
      await client.close();
      if (JSON.stringify(again) !== JSON.stringify(first)) this.world.fail('reply-changed', `${tag} first got ${JSON.stringify(first)}, its resend ${JSON.stringify(again)}`);
    }
  }
}

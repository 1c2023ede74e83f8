/**
 * Durable consumers: `store.consumer({ name, handle })` hands every event of the log (that
 * passes its filter) to `handle`, in order, and keeps its checkpoint in txlog itself, in the
 * stream `$consumer-<name>`. The checkpoint event is committed in the same transaction as the
 * txlog writes `handle` asked for (the built-in `append` with `{ writes }`), so after a crash
 * it resumes after the last event whose writes committed: no gap, and no event whose writes
 * are in txlog is handled again. Effects outside txlog get at-least-once.
 *
 * One consumer of a name runs at a time: in this store a second one fails with CONSUMER_ACTIVE
 * (or waits, with `whenActive: 'wait'`); any other writer of the checkpoint stream (a consumer
 * of the same name over another connection) is fenced by the checkpoint's expected version,
 * and the consumer that loses stops with CONSUMER_ACTIVE before anything of its is written.
 */
import { assert } from '../wal/assert.js';
import { txlogError, type TxlogError } from '../wal/errors.js';
import type { ExpectedVersion } from './expected-version.js';
import { checkFilter, type Direction, type EventFilter } from './reads.js';
import type { AnyEvent, AppendCheck, AppendOptions, AppendResult, EventToAppend, RecordedEvent, StreamSlice } from './service.js';

/** Streams of this prefix hold consumers' checkpoints; consumers never see them. */
export const consumerStreamPrefix = '$consumer-';
/** The event type of a checkpoint; its data is `{ position }`, the last position it covers. */
export const checkpointEventType = 'Checkpoint';
/** Events a consumer reads from the store at a time. */
const consumerPageEvents = 256;

export function checkpointStreamOf(name: string): string {
  return `${consumerStreamPrefix}${name}`;
}

/** What `handle` may do besides reading: writes committed atomically with the checkpoint. */
export interface ConsumerContext<Events extends AnyEvent = AnyEvent> {
  append(stream: string, events: Array<EventToAppend<Events>>, options?: AppendOptions): void;
  /** The checkpoint (and these writes) commit only if `stream` is at `expectedVersion`. */
  expectVersion(stream: string, expectedVersion: ExpectedVersion): void;
}

export interface ConsumerOptions<Events extends AnyEvent = AnyEvent> {
  /** Names the consumer and its checkpoint stream (`$consumer-<name>`). */
  name: string;
  /**
   * Where a consumer with no checkpoint yet starts: the first event, after the last one
   * committed now, or at a position. Ignored once it has a checkpoint. @default 'start'
   */
  from?: 'start' | 'end' | number;
  filter?: EventFilter<Events['type']>;
  /**
   * Handles one event. Its `context` writes commit with the checkpoint once it returns; if it
   * throws, nothing is written, the consumer stops and `done` rejects with the error (the
   * next run starts at this event again).
   */
  handle(event: RecordedEvent<Events>, context: ConsumerContext<Events>): Promise<void> | void;
  /** Called once, the first time the consumer has handled everything committed. */
  onCaughtUp?: () => void;
  /** A consumer of the same name already runs in this store: fail (CONSUMER_ACTIVE) or wait. @default 'fail' */
  whenActive?: 'fail' | 'wait';
  /** Aborting stops the consumer after the event it is handling (like `stop()`). */
  signal?: AbortSignal;
}

/** What a consumer needs of its store: an embedded `Store` or a network `Client`. */
export interface ConsumerHost {
  execute(command: string, args: unknown): Promise<unknown>;
  readAll(options: { fromPosition: number | 'end'; maxCount: number; direction?: Direction }): PromiseLike<RecordedEvent[]>;
  readStream(stream: string, options: { fromVersion: number; maxCount: number }): PromiseLike<StreamSlice>;
  /** Resolves when events past `fromPosition` may have come (or a while has passed), or on abort. */
  waitForEvents(fromPosition: number, signal: AbortSignal): Promise<void>;
  readonly isClosed: boolean;
}

interface Write {
  stream: string;
  events: unknown[];
  expectedVersion?: ExpectedVersion;
}

class ConsumerTransaction implements ConsumerContext {
  readonly writes: Write[] = [];
  readonly checks: AppendCheck[] = [];

  append(stream: string, events: EventToAppend[], options: AppendOptions = {}): void {
    const write: Write = { stream, events };
    if (options.expectedVersion !== undefined) write.expectedVersion = options.expectedVersion;
    this.writes.push(write);
  }

  expectVersion(stream: string, expectedVersion: ExpectedVersion): void {
    this.checks.push({ stream, expectedVersion });
  }
}

/** The consumers running in one store, by name. */
export class ConsumerRegistry {
  private readonly running = new Map<string, Promise<void>>();

  /** Claims `name`; the returned function releases it. */
  async claim(name: string, whenActive: 'fail' | 'wait'): Promise<(finished: Promise<void>) => Promise<void>> {
    for (let active = this.running.get(name); active !== undefined; active = this.running.get(name)) {
      if (whenActive === 'fail') throw txlogError('CONSUMER_ACTIVE', `a consumer named ${name} is already running in this store`, { name });
      await active.catch(() => undefined);
    }
    let release!: () => void;
    this.running.set(name, new Promise<void>((resolve) => (release = resolve)));
    return (finished) =>
      finished.then(
        () => this.release(name, release),
        () => this.release(name, release),
      );
  }

  private release(name: string, wake: () => void): void {
    this.running.delete(name);
    wake();
  }
}

export class Consumer<Events extends AnyEvent = AnyEvent> {
  readonly name: string;
  /** Settles when the consumer has stopped: resolves on stop, abort or close, rejects on a failure. */
  readonly done: Promise<void>;
  private readonly checkpointStream: string;
  private readonly controller = new AbortController();
  private positionValue: number;
  private checkpointVersion: number;
  /** Resolves once the name is free again, after `done` settled. */
  private released: Promise<void> = Promise.resolve();

  private constructor(
    private readonly host: ConsumerHost,
    private readonly options: ConsumerOptions<Events>,
    checkpoint: { position: number; version: number },
  ) {
    this.name = options.name;
    this.checkpointStream = checkpointStreamOf(options.name);
    this.positionValue = checkpoint.position;
    this.checkpointVersion = checkpoint.version;
    const signals = options.signal === undefined ? [this.controller.signal] : [this.controller.signal, options.signal];
    this.done = this.run(AbortSignal.any(signals));
    // The caller learns of a failure from `done`; an unobserved one must not crash the process.
    this.done.catch(() => undefined);
  }

  static async start<Events extends AnyEvent>(host: ConsumerHost, registry: ConsumerRegistry, options: ConsumerOptions<Events>): Promise<Consumer<Events>> {
    checkOptions(options);
    const release = await registry.claim(options.name, options.whenActive ?? 'fail');
    try {
      const checkpoint = await readCheckpoint(host, checkpointStreamOf(options.name), options.from ?? 'start');
      const consumer = new Consumer(host, options, checkpoint);
      consumer.released = release(consumer.done);
      return consumer;
    } catch (error) {
      await release(Promise.resolve());
      throw error;
    }
  }

  /** The last global position the checkpoint covers (-1: none yet). */
  get position(): number {
    return this.positionValue;
  }

  /**
   * Stops after the event being handled (its writes commit or not, as one) and waits for it;
   * the name is free for another consumer when this resolves.
   */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.released;
  }

  private async run(signal: AbortSignal): Promise<void> {
    try {
      await this.consume(signal);
    } catch (error) {
      // A store closing under a commit is a stop, not a failure: the checkpoint says where the
      // next run starts, whatever became of that commit.
      if (!this.host.isClosed) throw error;
    }
  }

  private async consume(signal: AbortSignal): Promise<void> {
    const filter = checkFilter(this.options.filter as EventFilter | undefined);
    let next = this.positionValue + 1;
    let skipped = 0;
    let caughtUp = false;
    while (!signal.aborted && !this.host.isClosed) {
      const page = await this.readPage(next);
      for (const event of page) {
        if (signal.aborted) return;
        next = event.position + 1;
        if (event.stream.startsWith(consumerStreamPrefix)) continue;
        if (filter !== undefined && !filter(event)) {
          skipped += 1;
          continue;
        }
        const transaction = new ConsumerTransaction();
        await this.options.handle(event as RecordedEvent<Events>, transaction);
        await this.commit(transaction, event.position);
        skipped = 0;
      }
      if (page.length > 0) continue;
      if (skipped > 0) {
        // Idle after events the filter passed over: record them, so a restart need not rescan.
        await this.commit(new ConsumerTransaction(), next - 1);
        skipped = 0;
        continue;
      }
      if (!caughtUp) {
        caughtUp = true;
        this.options.onCaughtUp?.();
      }
      await this.host.waitForEvents(next, signal);
    }
  }

  private async readPage(fromPosition: number): Promise<RecordedEvent[]> {
    try {
      return await this.host.readAll({ fromPosition, maxCount: consumerPageEvents });
    } catch (error) {
      if (this.host.isClosed) return [];
      throw error;
    }
  }

  /** Commits the handler's writes with the checkpoint at `position`, fenced by its version. */
  private async commit(transaction: ConsumerTransaction, position: number): Promise<void> {
    const checkpoint: Write = {
      stream: this.checkpointStream,
      events: [{ type: checkpointEventType, data: { position } }],
      expectedVersion: this.checkpointVersion,
    };
    const args = { writes: [...transaction.writes, checkpoint], checks: transaction.checks };
    let reply: AppendResult;
    try {
      reply = (await this.host.execute('append', args)) as AppendResult;
    } catch (error) {
      throw fenced(error, this.checkpointStream, this.name) ?? error;
    }
    assert(reply.stream === this.checkpointStream, 'the checkpoint is the last write of a consumer commit');
    this.checkpointVersion = reply.version;
    this.positionValue = position;
  }
}

/** The error a fenced commit becomes: another writer moved this consumer's checkpoint. */
function fenced(error: unknown, checkpointStream: string, name: string): TxlogError | undefined {
  const coded = error as { code?: unknown; details?: Record<string, unknown> };
  if (coded.code !== 'WRONG_EXPECTED_VERSION' || coded.details?.['stream'] !== checkpointStream) return undefined;
  return txlogError('CONSUMER_ACTIVE', `another consumer named ${name} moved its checkpoint; this one stops`, { name }, error);
}

async function readCheckpoint(host: ConsumerHost, stream: string, from: 'start' | 'end' | number): Promise<{ position: number; version: number }> {
  const { version } = await host.readStream(stream, { fromVersion: 0, maxCount: 0 });
  const [last] = version < 0 ? [] : (await host.readStream(stream, { fromVersion: version, maxCount: 1 })).events;
  const data = last?.data as { position?: unknown } | undefined;
  if (typeof data?.position === 'number') return { position: data.position, version };
  if (from === 'start') return { position: -1, version };
  if (from === 'end') {
    const [newest] = await host.readAll({ fromPosition: 'end', direction: 'backwards', maxCount: 1 });
    return { position: newest?.position ?? -1, version };
  }
  return { position: from - 1, version };
}

function checkOptions(options: ConsumerOptions<AnyEvent>): void {
  if (typeof options !== 'object' || options === null) throw txlogError('BAD_REQUEST', 'consumer needs { name, handle }');
  if (typeof options.name !== 'string' || options.name === '' || !options.name.isWellFormed()) {
    throw txlogError('BAD_REQUEST', 'a consumer needs a name: a non-empty string of well-formed Unicode');
  }
  if (typeof options.handle !== 'function') throw txlogError('BAD_REQUEST', 'a consumer needs a handle function');
  const from = options.from;
  if (from !== undefined && from !== 'start' && from !== 'end' && !(Number.isSafeInteger(from) && from >= 0)) {
    throw txlogError('BAD_REQUEST', "consumer from must be 'start', 'end' or a position");
  }
  if (options.whenActive !== undefined && options.whenActive !== 'fail' && options.whenActive !== 'wait') {
    throw txlogError('BAD_REQUEST', "consumer whenActive must be 'fail' or 'wait'");
  }
}

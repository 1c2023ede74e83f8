/**
 * The network client's reads, shaped as the embedded store's (`engine/reads.ts`): each read is a
 * promise of one page (one request, at most the node's `readEventsMax`) and an async iterable
 * that pages through the whole stream or log, `readPageEventsMax` events a request, so the
 * client holds one page whatever the length. Forwards and backwards, from a version or position
 * or `'end'`, with `maxCount` and (on the log) a filter the node applies. Subscriptions
 * long-poll the same pages. An `AbortSignal` abandons the request in flight: a read rejects (or
 * its iteration throws) with the signal's reason, as the store's do; a subscription ends.
 */
import type { ConsumerList } from '../engine/consumer-list.js';
import { ReadResult, checkCount, type ReadAllOptions, type ReadStreamOptions, type SubscribeOptions } from '../engine/reads.js';
import type { AnyEvent, RecordedEvent, StreamSlice } from '../engine/service.js';
import { txlogError } from '../wal/errors.js';
import { filteredReadEventsMax, readPageEventsMax, subscribeWaitMs } from './limits.js';
import type { Operation } from './protocol.js';
import { parseConsumerListAnswer, parseEventsAnswer, parseReadPageAnswer, parseStreamSliceAnswer, type ReadStart } from './read-bodies.js';

/** Sends one read request and resolves with its answer's value (the client's `call`). */
export type ReadCall = (op: Operation, body: Record<string, unknown>, signal: AbortSignal | undefined) => Promise<unknown>;

export interface ClientReadAllOptions<Types extends string = string> extends ReadAllOptions<Types> {
  /**
   * The promise form of an unfiltered read only: with no events to return, the node waits this
   * long for one before it answers (a long poll; at most 30000). @default 0 (ms)
   */
  waitMs?: number;
}

/** A request body with only the fields that have a value (msgpack would send `undefined` as nil). */
function bodyOf(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

export class ClientReads<Events extends AnyEvent = AnyEvent> {
  constructor(
    private readonly call: ReadCall,
    private readonly isClosed: () => boolean,
  ) {}

  readStream(stream: string, options: ReadStreamOptions = {}): ReadResult<StreamSlice<Events>, RecordedEvent<Events>> {
    const { fromVersion, direction, maxCount, signal } = options;
    const page = async (from: ReadStart | undefined, count: number | undefined): Promise<StreamSlice<Events>> =>
      parseStreamSliceAnswer(await this.call('readStream', bodyOf({ stream, fromVersion: from, direction, maxCount: count }), signal)) as StreamSlice<Events>;
    return new ReadResult(
      () => page(fromVersion, maxCount),
      async function* (): AsyncGenerator<RecordedEvent<Events>> {
        // Checked here as the store checks it: a count the loop below cannot compare is no read.
        if (maxCount !== undefined) checkCount(maxCount, 'maxCount');
        let from = fromVersion;
        let remaining = maxCount ?? Number.POSITIVE_INFINITY;
        while (remaining > 0) {
          const slice = await page(from, Math.min(remaining, readPageEventsMax));
          for (const event of slice.events) {
            yield event;
            remaining -= 1;
            signal?.throwIfAborted();
          }
          const last = slice.events.at(-1);
          if (last === undefined) return;
          from = direction === 'backwards' ? last.version - 1 : last.version + 1;
          // The slice says the stream's version: past it forwards, or below 0 backwards, is the end.
          if (from < 0 || from > slice.version) return;
        }
      },
    );
  }

  readAll(options: ClientReadAllOptions<Events['type']> = {}): ReadResult<Array<RecordedEvent<Events>>, RecordedEvent<Events>> {
    const { fromPosition, direction, maxCount, filter, waitMs, signal } = options;
    const iterate = (): AsyncGenerator<RecordedEvent<Events>> => this.pages(options);
    const readPage = async (): Promise<Array<RecordedEvent<Events>>> => {
      if (filter === undefined) {
        return parseEventsAnswer(await this.call('readAll', bodyOf({ fromPosition, direction, maxCount, waitMs }), signal)) as Array<RecordedEvent<Events>>;
      }
      // Filtered: the first matches, gathered page by page as the store does (bounded).
      const events: Array<RecordedEvent<Events>> = [];
      for await (const event of iterate()) {
        events.push(event);
        if (events.length >= filteredReadEventsMax) break;
      }
      return events;
    };
    return new ReadResult(readPage, iterate);
  }

  /** Every event of a read of the log, one `readAllPage` request per page. */
  private async *pages(options: ReadAllOptions<Events['type']>): AsyncGenerator<RecordedEvent<Events>> {
    const { direction, filter, signal } = options;
    const backwards = direction === 'backwards';
    if (options.maxCount !== undefined) checkCount(options.maxCount, 'maxCount');
    let from: ReadStart | undefined = options.fromPosition;
    let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (remaining > 0) {
      const body = bodyOf({ fromPosition: from, direction, maxCount: Math.min(remaining, readPageEventsMax), filter });
      const page = parseReadPageAnswer(await this.call('readAllPage', body, signal));
      for (const event of page.events as Array<RecordedEvent<Events>>) {
        yield event;
        remaining -= 1;
        signal?.throwIfAborted();
      }
      // Forwards, a page that looked at nothing is the end; backwards, one below position 0.
      if (backwards ? page.nextPosition < 0 : page.nextPosition === from) return;
      if (typeof from === 'number' && (backwards ? page.nextPosition >= from : page.nextPosition < from)) {
        throw txlogError('PROTOCOL_ERROR', `malformed answer: a page from ${from} ${direction ?? 'forwards'} went on at ${page.nextPosition}`);
      }
      from = page.nextPosition;
    }
  }

  /**
   * Events in global order from `fromPosition`, then live ones (long-polling the primary); the
   * primary applies the filter and the subscription moves past what it passed over. Ends when
   * the signal aborts (quietly, as the store's do) or the client closes.
   */
  async *subscribe(options: SubscribeOptions<Events['type']> = {}): AsyncGenerator<RecordedEvent<Events>> {
    const { signal, filter } = options;
    try {
      let next = options.fromPosition === 'end' ? await this.endPosition(signal) : (options.fromPosition ?? 0);
      let caughtUp = false;
      while (!this.isClosed() && signal?.aborted !== true) {
        const body = bodyOf({ fromPosition: next, maxCount: readPageEventsMax, waitMs: caughtUp ? subscribeWaitMs : 0, filter });
        const page = parseReadPageAnswer(await this.call('readAllPage', body, signal));
        const before = next;
        for (const event of page.events as Array<RecordedEvent<Events>>) {
          yield event;
          next = event.position + 1;
        }
        next = Math.max(next, page.nextPosition);
        if (next === before && !caughtUp) {
          caughtUp = true;
          options.onCaughtUp?.();
        }
      }
    } catch (error) {
      if (signal?.aborted === true) return;
      throw error;
    }
  }

  /** Resolves when events at `fromPosition` or later may have come, or about a second passed. */
  async waitForEvents(fromPosition: number, signal: AbortSignal | undefined): Promise<void> {
    await this.call('readAll', { fromPosition, maxCount: 1, waitMs: subscribeWaitMs }, signal).catch((error: unknown) => {
      if (signal?.aborted !== true) throw error;
    });
  }

  /** The durable consumers as the primary's applied state shows them. */
  async consumers(): Promise<ConsumerList> {
    return parseConsumerListAnswer(await this.call('consumers', {}, undefined));
  }

  /** The position the next event will take. */
  private async endPosition(signal: AbortSignal | undefined): Promise<number> {
    const page = parseReadPageAnswer(await this.call('readAllPage', { fromPosition: 'end', direction: 'backwards', maxCount: 1 }, signal));
    return (page.events[0]?.position ?? -1) + 1;
  }
}

/**
 * Reads of the embedded store: a stream or the whole log, forwards or backwards, from a version
 * or position or from the end, with a filter. Each read is both a promise (one bounded page, as
 * it always was) and an async iterable that pages through everything with bounded memory.
 * Subscriptions (catch-up, then live) live here too. Everything reads applied state only: a
 * reader never sees a commit that could still be lost.
 */
import { txlogError } from '../wal/errors.js';
import type { CommitPipeline } from './commit-pipeline.js';
import { checkStreamName } from './context.js';
import type { StoreLimits } from './options.js';
import type { RecordedEvent, StreamSlice } from './service.js';

export type Direction = 'forwards' | 'backwards';

/** Which events a filtered read or subscription delivers; an event must pass every field given. */
export interface EventFilter<Types extends string = string> {
  /** Streams whose name starts with this prefix (or with one of these). */
  streamPrefix?: string | readonly string[];
  /** Events of one of these types. */
  eventTypes?: readonly Types[];
}

export interface ReadStreamOptions {
  /**
   * First version to read: a version, `'start'` or `'end'` (the last event).
   * @default 'start' forwards, 'end' backwards
   */
  fromVersion?: number | 'start' | 'end';
  /** @default 'forwards' */
  direction?: Direction;
  /**
   * Most events to return. The promise form returns at most `readEventsMax` (store option)
   * whatever this says; iteration returns this many, or everything when omitted.
   */
  maxCount?: number;
  /** Aborting rejects the promise form (if not yet read) and makes iteration throw the reason. */
  signal?: AbortSignal;
}

export interface ReadAllOptions<Types extends string = string> {
  /**
   * First global position to read: a position, `'start'` or `'end'` (the last event).
   * @default 'start' forwards, 'end' backwards
   */
  fromPosition?: number | 'start' | 'end';
  /** @default 'forwards' */
  direction?: Direction;
  /** As for `ReadStreamOptions.maxCount`; with a filter it counts events that pass it. */
  maxCount?: number;
  filter?: EventFilter<Types>;
  signal?: AbortSignal;
}

export interface SubscribeOptions<Types extends string = string> {
  /** First global position to deliver, or `'end'`: only events committed from now on. @default 0 */
  fromPosition?: number | 'end';
  filter?: EventFilter<Types>;
  /** Called once when the subscription has delivered everything committed so far. */
  onCaughtUp?: () => void;
  /** Aborting ends the subscription: its loop exits quietly (it has no end to be short of). */
  signal?: AbortSignal;
}

export interface ReadPageOptions<Types extends string = string> {
  /** A position, `'start'` or `'end'` (the last event). @default 'start' forwards, 'end' backwards */
  fromPosition?: number | 'start' | 'end';
  /** @default 'forwards' */
  direction?: Direction;
  /** Most events to return (never more than `readEventsMax`). */
  maxCount?: number;
  filter?: EventFilter<Types>;
}

export interface ReadPage<Event = RecordedEvent> {
  events: Event[];
  /**
   * Where the next page starts: past every event this one looked at, delivered or not
   * (backwards, below them: -1 once position 0 was looked at).
   */
  nextPosition: number;
}

/**
 * A read that is both a promise of one page and an async iterable of every event. Nothing is
 * read until it is awaited or iterated; each iteration reads afresh.
 */
export class ReadResult<Page, Event> implements Promise<Page>, AsyncIterable<Event> {
  readonly [Symbol.toStringTag] = 'ReadResult';
  private promise: Promise<Page> | undefined;

  constructor(
    private readonly readPage: () => Promise<Page>,
    private readonly iterate: () => AsyncGenerator<Event>,
  ) {}

  then<Fulfilled = Page, Rejected = never>(
    onFulfilled?: ((value: Page) => Fulfilled | PromiseLike<Fulfilled>) | null,
    onRejected?: ((reason: unknown) => Rejected | PromiseLike<Rejected>) | null,
  ): Promise<Fulfilled | Rejected> {
    this.promise ??= this.readPage();
    return this.promise.then(onFulfilled, onRejected);
  }

  catch<Rejected = never>(onRejected?: ((reason: unknown) => Rejected | PromiseLike<Rejected>) | null): Promise<Page | Rejected> {
    return this.then(undefined, onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<Page> {
    return this.then().finally(onFinally);
  }

  [Symbol.asyncIterator](): AsyncGenerator<Event> {
    return this.iterate();
  }
}

/** Events read from LMDB per page while iterating or subscribing. */
const readPageEvents = 512;

interface Cursor {
  /** Next version or position to read; forwards it grows, backwards it shrinks (-1: done). */
  next: number;
  direction: Direction;
  /** Events still to deliver (Infinity: all). */
  remaining: number;
  /** Only events that pass it count and are delivered (undefined: all). */
  filter?: (event: RecordedEvent) => boolean;
}

/** The reads of one store, over whatever state the pipeline holds now (it may be rebuilt). */
export class StoreReads {
  constructor(
    private readonly pipeline: CommitPipeline,
    private readonly limits: StoreLimits,
  ) {}

  readStream(stream: string, options: ReadStreamOptions = {}): ReadResult<StreamSlice, RecordedEvent> {
    const start = (): Cursor => {
      this.pipeline.checkOpen();
      checkStreamName(stream, this.limits);
      checkSignal(options.signal);
      return this.cursor(options.fromVersion, options.direction, options.maxCount, 'fromVersion', () => this.state.streamVersion(stream));
    };
    const page = (cursor: Cursor, count: number): RecordedEvent[] => this.streamPage(stream, cursor, count);
    return new ReadResult(
      async () => {
        const cursor = start();
        const version = this.state.streamVersion(stream);
        return { version, events: page(cursor, Math.min(cursor.remaining, this.limits.readEventsMax)) };
      },
      () => this.iterate(start, page, options.signal),
    );
  }

  readAll(options: ReadAllOptions = {}): ReadResult<RecordedEvent[], RecordedEvent> {
    const start = (): Cursor => {
      this.pipeline.checkOpen();
      checkSignal(options.signal);
      const cursor = this.cursor(options.fromPosition, options.direction, options.maxCount, 'fromPosition', () => this.state.nextPosition - 1);
      const filter = checkFilter(options.filter);
      if (filter !== undefined) cursor.filter = filter;
      return cursor;
    };
    const page = (cursor: Cursor, count: number): RecordedEvent[] => this.allPage(cursor, count);
    return new ReadResult(
      async () => {
        if (options.filter === undefined) {
          const cursor = start();
          return page(cursor, Math.min(cursor.remaining, this.limits.readEventsMax));
        }
        // Filtered: the first readEventsMax matches, found page by page (bounded memory).
        const events: RecordedEvent[] = [];
        for await (const event of this.iterate(start, page, options.signal)) {
          events.push(event);
          if (events.length >= this.limits.readEventsMax) break;
        }
        return events;
      },
      () => this.iterate(start, page, options.signal),
    );
  }

  /**
   * One page of a filtered scan of the log: of the next `readEventsMax` events from
   * `fromPosition` in `direction`, those that pass `filter` (at most `maxCount`), and the
   * position the next page starts at. A network client pages (and a subscriber long-polls) with
   * it, so the node filters and the client moves past what it passed over.
   */
  readAllPage(options: ReadPageOptions = {}): ReadPage {
    this.pipeline.checkOpen();
    const cursor = this.cursor(options.fromPosition, options.direction, options.maxCount, 'fromPosition', () => this.state.nextPosition - 1);
    const maxCount = Math.min(cursor.remaining, this.limits.readEventsMax);
    const filter = checkFilter(options.filter);
    const step = cursor.direction === 'forwards' ? 1 : -1;
    const events: RecordedEvent[] = [];
    // Backwards from past the end starts at the last event, or is done at once in an empty log.
    let nextPosition = step > 0 ? cursor.next : Math.min(cursor.next, this.state.nextPosition - 1);
    for (const event of this.allPage(cursor, this.limits.readEventsMax)) {
      if (events.length >= maxCount) break;
      nextPosition = event.position + step;
      if (filter === undefined || filter(event)) events.push(event);
    }
    return { events, nextPosition };
  }

  /**
   * Every event from `fromPosition` in global order, then live ones as they are applied. The
   * subscription pulls pages from LMDB at its own pace, so a slow consumer costs no memory and
   * the switch from catch-up to live has no gap and no duplicate. Ends when the signal aborts,
   * the consumer stops, or the store closes.
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncGenerator<RecordedEvent> {
    const filter = checkFilter(options.filter);
    let next = options.fromPosition === 'end' ? this.state.nextPosition : (options.fromPosition ?? 0);
    checkCount(next, 'fromPosition');
    let caughtUp = false;
    const stopped = (): boolean => this.pipeline.isClosed || options.signal?.aborted === true;
    while (!stopped()) {
      this.pipeline.checkOpen();
      const page = this.state.readAll(next, readPageEvents);
      if (page.length > 0) {
        for (const event of page) {
          next = event.position + 1;
          if (filter !== undefined && !filter(event)) continue;
          yield event;
          if (stopped()) return;
        }
        continue;
      }
      if (!caughtUp) {
        caughtUp = true;
        options.onCaughtUp?.();
      }
      await this.pipeline.waitForApply(options.signal);
    }
  }

  /** The state with everything released applied: a read sees every commit answered before it began. */
  private get state(): CommitPipeline['state'] {
    return this.pipeline.appliedState();
  }

  private cursor(
    from: number | 'start' | 'end' | undefined,
    direction: Direction | undefined,
    maxCount: number | undefined,
    name: string,
    last: () => number,
  ): Cursor {
    if (direction !== undefined && direction !== 'forwards' && direction !== 'backwards') {
      throw txlogError('BAD_REQUEST', "direction must be 'forwards' or 'backwards'");
    }
    const resolvedDirection = direction ?? 'forwards';
    const start = from ?? (resolvedDirection === 'forwards' ? 'start' : 'end');
    if (start !== 'start' && start !== 'end') checkCount(start, name);
    const next = start === 'start' ? 0 : start === 'end' ? last() : start;
    if (maxCount !== undefined) checkCount(maxCount, 'maxCount');
    // Forwards from the end of an empty stream or log is from its first event to come.
    return { next: resolvedDirection === 'forwards' ? Math.max(next, 0) : next, direction: resolvedDirection, remaining: maxCount ?? Number.POSITIVE_INFINITY };
  }

  /** Reads up to `count` events of a stream at the cursor and moves it past them. */
  private streamPage(stream: string, cursor: Cursor, count: number): RecordedEvent[] {
    if (cursor.direction === 'forwards') {
      const events = this.state.readStream(stream, cursor.next, count).events;
      cursor.next += events.length;
      return events;
    }
    const top = Math.min(cursor.next, this.state.streamVersion(stream));
    const bottom = Math.max(0, top - count + 1);
    if (top < 0 || count <= 0) return [];
    cursor.next = bottom - 1;
    return this.state.readStream(stream, bottom, top - bottom + 1).events.reverse();
  }

  /** Reads up to `count` events of the log at the cursor and moves it past them. */
  private allPage(cursor: Cursor, count: number): RecordedEvent[] {
    if (cursor.direction === 'forwards') {
      const events = this.state.readAll(cursor.next, count);
      cursor.next += events.length;
      return events;
    }
    const top = Math.min(cursor.next, this.state.nextPosition - 1);
    const bottom = Math.max(0, top - count + 1);
    if (top < 0 || count <= 0) return [];
    cursor.next = bottom - 1;
    return this.state.readAll(bottom, top - bottom + 1).reverse();
  }

  private async *iterate(
    start: () => Cursor,
    page: (cursor: Cursor, count: number) => RecordedEvent[],
    signal: AbortSignal | undefined,
  ): AsyncGenerator<RecordedEvent> {
    const cursor = start();
    const filter = cursor.filter;
    while (cursor.remaining > 0) {
      checkSignal(signal);
      this.pipeline.checkOpen();
      const events = page(cursor, readPageEvents);
      for (const event of events) {
        if (filter !== undefined && !filter(event)) continue;
        yield event;
        cursor.remaining -= 1;
        if (cursor.remaining <= 0) return;
        checkSignal(signal);
      }
      if (events.length < readPageEvents) return;
      // A long filtered scan gives the event loop a turn between pages.
      if (filter !== undefined) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

/** The filter as a predicate, after checking its shape (undefined: everything passes). */
export function checkFilter(filter: EventFilter | undefined): ((event: RecordedEvent) => boolean) | undefined {
  if (filter === undefined) return undefined;
  if (typeof filter !== 'object' || filter === null) throw txlogError('BAD_REQUEST', 'filter must be an object');
  const prefixes = filter.streamPrefix === undefined ? undefined : typeof filter.streamPrefix === 'string' ? [filter.streamPrefix] : filter.streamPrefix;
  const types = filter.eventTypes === undefined ? undefined : new Set(filter.eventTypes);
  if (prefixes !== undefined && (!Array.isArray(prefixes) || !prefixes.every((prefix) => typeof prefix === 'string'))) {
    throw txlogError('BAD_REQUEST', 'filter.streamPrefix must be a string or an array of strings');
  }
  if (filter.eventTypes !== undefined && (!Array.isArray(filter.eventTypes) || !filter.eventTypes.every((type) => typeof type === 'string'))) {
    throw txlogError('BAD_REQUEST', 'filter.eventTypes must be an array of strings');
  }
  return (event) =>
    (prefixes === undefined || prefixes.some((prefix) => event.stream.startsWith(prefix))) && (types === undefined || types.has(event.type));
}

export function checkCount(value: unknown, name: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw txlogError('BAD_REQUEST', `${name} must be a non-negative integer`);
  }
}

function checkSignal(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

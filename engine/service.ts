/**
 * What an application writes: a service of deterministic command handlers. The same module runs
 * on every node; a handler never learns whether it runs live on a primary, on a backup
 * re-executing a commit, or under `txlog replay`.
 */
import { txlogError } from '../wal/errors.js';
import type { EventInput } from './records.js';
import type { ExpectedVersion } from './expected-version.js';

/**
 * An event as a caller writes it. A service (or a store) may name the union of its events,
 * e.g. `{ type: 'Deposited'; data: { amount: number } } | { type: 'Withdrawn'; ... }`; that
 * union then types `ctx.append`, `store.append`, every read and every subscription. Untyped
 * code gets this shape: any type name, any data.
 */
export interface AnyEvent {
  type: string;
  data?: unknown;
  /** The caller's own facts about the event; by convention `correlationId` and `causationId`. */
  metadata?: unknown;
}

/** What `append` takes for an event of the union: its fields, and an id if the caller has one. */
export type EventToAppend<Events extends AnyEvent = AnyEvent> = Events & {
  /** A UUID; drawn by the primary at commit when omitted. */
  id?: string;
  metadata?: unknown;
};

/** What every read returns for an event, besides its own type, data and metadata. */
export interface RecordedFields {
  stream: string;
  /** Version of this event in its stream, from 0. */
  version: number;
  /** Position in the global commit order, from 0, dense. */
  position: number;
  /**
   * A UUID: the caller's, or drawn by the primary at commit. An event committed before event
   * ids existed gets one derived from its stream and version (stable, the same on every node).
   */
  id: string;
  /** As written; by convention `{ correlationId, causationId, ... }` (see README). */
  metadata?: unknown;
  /**
   * When the primary assembled the commit (its wall clock, recorded in the commit record).
   * Absent for events committed before this was recorded.
   */
  createdAt?: Date;
}

/** A recorded event of the union (a union itself, so `event.type` narrows `event.data`). */
export type RecordedEvent<Events extends AnyEvent = AnyEvent> = Events & RecordedFields;

export interface StreamSlice<Events extends AnyEvent = AnyEvent> {
  /** Last version of the stream; -1 when it does not exist. */
  version: number;
  events: Array<RecordedEvent<Events>>;
}

/** What the built-in `append` command (and `store.append`) resolves with. */
export interface AppendResult {
  stream: string;
  /** Version of the last event written. */
  version: number;
  /** Global position of the last event written. */
  position: number;
}

/** What `ctx.readStream` takes (store reads take more: see `ReadStreamOptions` in reads.ts). */
export interface ContextReadOptions {
  /** First version to return. @default 0 */
  fromVersion?: number;
  /** Most events to return. @default readEventsMax (store option) */
  maxCount?: number;
}

export interface AppendOptions {
  /**
   * What the stream's head must be when the transaction commits: a version `n`, `'no_stream'`
   * (or -1), `'stream_exists'` (or `'exists'`: at least one event), `'any'` (or omitted).
   * Otherwise the transaction fails with WRONG_EXPECTED_VERSION (`details.actualVersion`).
   */
  expectedVersion?: ExpectedVersion;
}

/** What a handler may do. Everything nondeterministic goes through it. */
export interface Context<Events extends AnyEvent = AnyEvent> {
  readonly clientId: string;
  readonly requestId: number;
  readonly command: string;
  /**
   * Reads a stream. On the primary: its state now. On re-execution: as of the version the
   * primary saw (the read set), so interleaving never looks like nondeterminism.
   */
  readStream(stream: string, options?: ContextReadOptions): Promise<StreamSlice<Events>>;
  /** Buffers events; they are written atomically with the rest of the transaction at commit. */
  append(stream: string, events: Array<EventToAppend<Events>>, options?: AppendOptions): void;
  /**
   * Requires `stream` to be at `expectedVersion` when the transaction commits, without writing
   * to it: a decision made on several streams is guarded as a whole (WRONG_EXPECTED_VERSION).
   */
  expectVersion(stream: string, expectedVersion: ExpectedVersion): void;
  /**
   * Makes an external call once. `fn` gets the idempotency key `clientId:requestId:callIndex`.
   * Its result or thrown error is journaled (and replicated) before the handler sees it; a
   * re-execution gets the journaled outcome and `fn` is not called.
   */
  call<T>(name: string, fn: (idempotencyKey: string) => Promise<T> | T): Promise<T>;
  /** Wall-clock milliseconds, recorded in the commit. */
  now(): number;
  /** A float in [0, 1), recorded in the commit. */
  random(): number;
}

/**
 * A command handler. Declared as a method so that a service typed with its events is still a
 * `Service` where untyped code takes one (handler parameters are then compared both ways).
 */
export type CommandHandler<Args = unknown, Reply = unknown, Events extends AnyEvent = AnyEvent> = {
  handle(context: Context<Events>, args: Args): Promise<Reply> | Reply;
}['handle'];

/** Types only: where a service's event union is kept (never set at runtime). */
declare const eventsOfService: unique symbol;

export interface Service<Events extends AnyEvent = AnyEvent> {
  name: string;
  // Handlers take differently typed args; the store checks nothing about them beyond msgpack.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  commands: Record<string, CommandHandler<any, unknown, Events>>;
  /** Types only: lets `openStore({ service })` infer the service's events. */
  readonly [eventsOfService]?: Events;
}

/**
 * An identity helper for typing: a plain object with the same shape works too. With the
 * events named first, `defineService<Events>()({ name, commands })`, every handler's `ctx`
 * appends and reads only those events, and a store opened with the service is typed with them.
 */
export function defineService<Events extends AnyEvent>(): <S extends Service<Events>>(service: S) => S & Service<Events>;
export function defineService<S extends Service>(service: S): S;
export function defineService(service?: Service): Service | ((service: Service) => Service) {
  return service ?? ((typed: Service) => typed);
}

/** Checks a value claiming to be a service (a module's default export, say). */
export function checkService(value: unknown, source: string): Service {
  if (typeof value !== 'object' || value === null) {
    throw txlogError('BAD_REQUEST', `${source}: a service must be an object with name and commands`);
  }
  const candidate = value as Record<string, unknown>;
  const commands = candidate['commands'];
  if (typeof candidate['name'] !== 'string' || typeof commands !== 'object' || commands === null) {
    throw txlogError('BAD_REQUEST', `${source}: a service needs a string name and a commands object`);
  }
  for (const [command, handler] of Object.entries(commands)) {
    if (typeof handler !== 'function') {
      throw txlogError('BAD_REQUEST', `${source}: command ${command} is not a function`);
    }
    if (builtinCommandNames.has(command)) {
      throw txlogError('BAD_REQUEST', `${source}: command ${command} collides with a built-in command`);
    }
  }
  return value as Service;
}

export interface AppendArgs {
  stream: string;
  events: EventInput[];
  expectedVersion?: ExpectedVersion;
}

/** A stream the built-in `append` requires at a version without writing it. */
export interface AppendCheck {
  stream: string;
  expectedVersion: ExpectedVersion;
}

export interface AppendManyArgs {
  writes: AppendArgs[];
  /** Streams to check, not write: the whole append fails if one is not at its version. */
  checks?: AppendCheck[];
}

function appendChecks(context: Context, checks: unknown): void {
  if (checks === undefined || checks === null) return;
  if (!Array.isArray(checks)) throw txlogError('BAD_REQUEST', 'append checks must be an array of { stream, expectedVersion }');
  for (const check of checks) {
    if (typeof check !== 'object' || check === null) throw txlogError('BAD_REQUEST', 'each check must be an object');
    const { stream, expectedVersion } = check as Record<string, unknown>;
    if (expectedVersion === undefined) throw txlogError('BAD_REQUEST', 'each check needs an expectedVersion');
    context.expectVersion(stream as string, expectedVersion as ExpectedVersion);
  }
}

function appendWrites(context: Context, writes: unknown): void {
  if (!Array.isArray(writes) || writes.length === 0) {
    throw txlogError('BAD_REQUEST', 'append needs { stream, events } or a non-empty { writes: [...] }');
  }
  for (const write of writes) {
    if (typeof write !== 'object' || write === null) throw txlogError('BAD_REQUEST', 'each write must be an object');
    const { stream, events, expectedVersion } = write as Record<string, unknown>;
    const options: AppendOptions = {};
    // ctx.append checks the value; null (JSON's "absent") means any, as it always did.
    if (expectedVersion !== undefined && expectedVersion !== null) options.expectedVersion = expectedVersion as ExpectedVersion;
    context.append(stream as string, events as EventInput[], options);
  }
}

/**
 * Commands every store understands without a service, so `txlog serve` alone is an event
 * store. Their reply ({ stream, version, position } of the last event written) is filled in at
 * commit, once versions are assigned.
 */
export const builtinCommands: Record<string, CommandHandler> = {
  append(context, args) {
    if (typeof args !== 'object' || args === null) throw txlogError('BAD_REQUEST', 'append args must be an object');
    const record = args as Record<string, unknown>;
    appendChecks(context, record['checks']);
    appendWrites(context, record['writes'] !== undefined ? record['writes'] : [record]);
    return null;
  },
};

export const builtinCommandNames: ReadonlySet<string> = new Set(Object.keys(builtinCommands));

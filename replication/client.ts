/**
 * The client: knows every server, finds the primary (following NOT_PRIMARY hints), pipelines
 * requests with increasing request ids, and after a lost connection resends every request not
 * yet answered, in order and with the same ids, to whichever node is primary now. A resend is
 * always safe: the primary answers a committed request from its session table.
 */
import { randomUUID } from 'node:crypto';
import { TxlogError, errorFromSerialized, txlogError } from '../wal/errors.js';
import { nodePlatform, type Platform } from '../wal/platform.js';
import type { ConsumerList } from '../engine/consumer-list.js';
import type { ReadResult, ReadStreamOptions, SubscribeOptions } from '../engine/reads.js';
import type { AnyEvent, EventToAppend, RecordedEvent, StreamSlice } from '../engine/service.js';
import type { AppendResult } from '../engine/store.js';
import { Consumer, ConsumerRegistry, type AppendCheck, type ConsumerOptions, type ExpectedVersion } from '../engine/index.js';
import { LsnSlots } from '../engine/lsn-slots.js';
import { CallDeadlines, checkedDeadlineMs } from './call-deadlines.js';
import { finalError, listenForAbort, timeoutError, type Call } from './client-call.js';
import { ClientReads, type ClientReadAllOptions } from './client-reads.js';
import { dial, type Connection } from './connection.js';
import {
  clientBusyRetryDelayMs,
  clientRetryDelayMsMax,
  clientRetryDelayMsMin,
  frameBytesMaxDefault,
} from './limits.js';
import type { Message, Operation } from './protocol.js';
import { defaultNetwork } from './tls.js';
import { checkTlsFiles, loadTlsCertificates } from './tls-certificates.js';
import type { ClientOptions } from './client-options.js';
import type { Network } from './transport.js';
import type { NodeStatus } from './node.js';

export type { ClientOptions };

/**
 * Connects to a pair (or a lone node). Its events are typed by naming them,
 * `connect<Events>({ servers })`, as `openStore<Events>()` types a store: appends must be of
 * the union, reads and subscriptions narrow `data` by `type`, filters name only its types.
 */
export async function connect<Events extends AnyEvent = AnyEvent>(options: ClientOptions): Promise<Client<Events>> {
  const client = new Client<Events>(options);
  await client.ready();
  return client;
}

export class Client<Events extends AnyEvent = AnyEvent> {
  readonly clientId: string;
  private readonly servers: string[];
  private readonly secret: string;
  private readonly clusterId: string;
  private readonly deadlineMs: number;
  private readonly connectTimeoutMs: number;
  private readonly inFlightMax: number;
  private readonly network: Network;
  private readonly platform: Platform;
  private connection: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  /** Calls not yet answered, by call id (`LsnSlots`: a Map taking a key and dropping one per call keeps garbage alive). */
  private readonly calls = new LsnSlots<Call>();
  /** Each open call's deadline, on one timer (set up in the constructor: it needs the platform). */
  private readonly deadlines: CallDeadlines<Call>;
  private nextCallId = 1;
  private nextRequestId: number | undefined;
  private settlingRequestIds: Promise<void> | undefined;
  private epoch = 0;
  private hint: string | undefined;
  private serverIndex = 0;
  private closed = false;
  private consumerRegistry: ConsumerRegistry | undefined;
  private readonly reads = new ClientReads<Events>(
    (op, body, signal) => this.call(op, body, undefined, this.deadlineMs, signal),
    () => this.closed,
  );

  constructor(options: ClientOptions) {
    if (!Array.isArray(options.servers) || options.servers.length === 0) {
      throw txlogError('BAD_REQUEST', 'connect needs at least one server address');
    }
    this.servers = options.servers;
    this.clientId = options.clientId ?? randomUUID();
    this.secret = options.secret ?? '';
    this.clusterId = options.clusterId ?? 'txlog';
    this.deadlineMs = checkedDeadlineMs(options.deadlineMs ?? 10_000, 'deadlineMs');
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    this.inFlightMax = options.inFlightMax ?? 16_384;
    this.platform = options.platform ?? nodePlatform;
    this.deadlines = new CallDeadlines(this.platform.clock, (call) => this.expire(call));
    const certificates = options.tls === undefined ? undefined : loadTlsCertificates(checkTlsFiles(options.tls, 'tls'), 'client', this.platform.clock.nowMs());
    this.network = options.network ?? defaultNetwork(this.secret, this.clusterId, this.connectTimeoutMs, certificates);
    if (options.firstRequestId !== undefined) {
      if (!Number.isSafeInteger(options.firstRequestId) || options.firstRequestId < 1) {
        throw txlogError('BAD_REQUEST', 'firstRequestId must be a positive integer');
      }
      this.nextRequestId = options.firstRequestId;
    }
  }

  /**
   * Resolves once some node answered (any role: `status` and the first reads work from here).
   * Without `firstRequestId` the request ids are settled at the first `execute`, by the primary.
   */
  async ready(): Promise<void> {
    await this.call('status', {}, undefined);
  }

  /**
   * Runs a command exactly once. Resolves when the primary has it in its WAL and the backup has
   * acknowledged it. Resent across failovers with the same request id until the deadline.
   */
  execute(command: string, args?: unknown, options: { deadlineMs?: number } = {}): Promise<unknown> {
    if (options.deadlineMs !== undefined) {
      try {
        checkedDeadlineMs(options.deadlineMs, 'execute: deadlineMs');
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const send = (): Promise<unknown> => {
      const requestId = this.nextRequestId!++;
      return this.call('execute', { command, args: args ?? null, requestId }, requestId, options.deadlineMs);
    };
    if (this.nextRequestId !== undefined && this.settlingRequestIds === undefined) return send();
    // Executes made before the ids are settled wait for it and are numbered in call order.
    return this.settleRequestIds().then(send);
  }

  /** Asks the primary (only it knows every id taken) for this client's highest request id. */
  private settleRequestIds(): Promise<void> {
    this.settlingRequestIds ??= this.call('session', {}, undefined).then(
      (session) => {
        this.settlingRequestIds = undefined;
        this.nextRequestId ??= (session as { latestRequestId: number }).latestRequestId + 1;
      },
      (error: unknown) => {
        this.settlingRequestIds = undefined;
        throw error;
      },
    );
    return this.settlingRequestIds;
  }

  async append(stream: string, events: Array<EventToAppend<Events>>, options: { expectedVersion?: ExpectedVersion; checks?: AppendCheck[] } = {}): Promise<AppendResult> {
    const args: Record<string, unknown> = { stream, events };
    if (options.expectedVersion !== undefined) args['expectedVersion'] = options.expectedVersion;
    if (options.checks !== undefined) args['checks'] = options.checks;
    return (await this.execute('append', args)) as AppendResult;
  }

  /** Reads a stream from the primary as `Store.readStream` does (see `client-reads.ts`). */
  readStream(stream: string, options: ReadStreamOptions = {}): ReadResult<StreamSlice<Events>, RecordedEvent<Events>> {
    return this.reads.readStream(stream, options);
  }

  /** Reads the log from the primary, as `Store.readAll` does (with `waitMs`: a long poll). */
  readAll(options: ClientReadAllOptions<Events['type']> = {}): ReadResult<Array<RecordedEvent<Events>>, RecordedEvent<Events>> {
    return this.reads.readAll(options);
  }

  /**
   * Events in global order from `fromPosition` (or `'end'`), then live ones, long-polling the
   * primary, which applies `filter`. Ends when `signal` aborts or the client closes.
   */
  subscribe(options: SubscribeOptions<Events['type']> = {}): AsyncGenerator<RecordedEvent<Events>> {
    return this.reads.subscribe(options);
  }

  /**
   * A durable consumer over this client (see `Store.consumer`): its commits are requests of this
   * client, resent across failovers; one of a name per client, and consumers of the same name on
   * other clients are fenced by the checkpoint's expected version (CONSUMER_ACTIVE).
   */
  consumer(options: ConsumerOptions<Events>): Promise<Consumer<Events>> {
    const client = this;
    return Consumer.start(
      {
        execute: (command, args) => this.execute(command, args),
        readAll: (readOptions) => this.reads.readAll(readOptions),
        readStream: (stream, readOptions) => this.reads.readStream(stream, readOptions),
        waitForEvents: (fromPosition, signal) => this.reads.waitForEvents(fromPosition, signal),
        get isClosed() {
          return client.closed;
        },
      },
      (this.consumerRegistry ??= new ConsumerRegistry()),
      options,
    );
  }

  /** The durable consumers, their positions and lag, as the primary's state shows them. */
  consumers(): Promise<ConsumerList> {
    return this.reads.consumers();
  }

  /**
   * Makes the node this client is connected to write a backup of its store to `out`, an
   * absolute path on that node's machine; resolves with the backup's manifest.
   */
  async backup(out: string, deadlineMs = this.deadlineMs): Promise<unknown> {
    return this.call('backup', { out }, undefined, checkedDeadlineMs(deadlineMs, 'backup: deadlineMs'));
  }

  /** The status of the node this client is connected to. */
  async status(): Promise<NodeStatus> {
    return (await this.call('status', {}, undefined)) as NodeStatus;
  }

  /**
   * Sends a request and resolves with its answer. A `signal` (reads only: a write cannot be
   * taken back) abandons the call when it aborts: it rejects with the signal's reason, and an
   * answer that comes later is dropped.
   */
  private call(op: Operation, body: Record<string, unknown>, requestId: number | undefined, deadlineMs = this.deadlineMs, signal?: AbortSignal): Promise<unknown> {
    if (this.closed) return Promise.reject(txlogError('CLOSED', 'the client is closed'));
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
    if (this.calls.size >= this.inFlightMax) {
      return Promise.reject(txlogError('BUSY', `${this.inFlightMax} requests are waiting; retry later`));
    }
    return new Promise<unknown>((resolve, reject) => {
      const callId = this.nextCallId++;
      const abandon = (): void => {
        if (this.calls.get(callId) !== call) return;
        this.finish(call);
        reject(signal?.reason as Error);
      };
      const call: Call = {
        callId,
        op,
        body,
        requestId,
        ...listenForAbort(signal, abandon, resolve, reject),
        lastError: undefined,
        attempts: 0,
        deadlineMs,
      };
      this.calls.set(callId, call);
      this.deadlines.add(callId, call, deadlineMs);
      this.send(call);
    });
  }

  private expire(call: Call): void {
    if (this.calls.get(call.callId) !== call) return;
    this.calls.delete(call.callId);
    call.reject(timeoutError(call));
  }

  /**
   * Sends a call; `again` resends it on a connection that already carried it (a retry). On an
   * open connection it leaves in this turn, with no async function and await per call.
   */
  private send(call: Call, again = false): void {
    const open = this.connection;
    if (open !== undefined && !open.closed) {
      this.sendOn(open, call, again);
      return;
    }
    // connectionNow retries until every call has expired or the client closed.
    this.connectionNow().then((connection) => this.sendOn(connection, call, again), () => undefined);
  }

  private sendOn(connection: Connection, call: Call, again: boolean): void {
    if (!this.calls.has(call.callId)) return;
    // A new connection resends every open call itself (adopt); do not send this one twice.
    if (!again && call.sentOn === connection) return;
    call.sentOn = connection;
    call.attempts += 1;
    connection.send({ t: 'req', callId: call.callId, op: call.op, epoch: this.epoch, body: call.body });
  }

  /** The open connection, or a new one to the hinted primary or the next server. */
  private connectionNow(): Promise<Connection> {
    if (this.connection !== undefined && !this.connection.closed) return Promise.resolve(this.connection);
    this.connecting ??= this.connectLoop().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectLoop(): Promise<Connection> {
    let delayMs = clientRetryDelayMsMin;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw txlogError('CLOSED', 'the client is closed');
      if (attempt > 0 && this.calls.size === 0) {
        throw txlogError('NOT_PRIMARY', `no server reachable: ${String(lastError)}`, {}, lastError);
      }
      const address = this.hint ?? this.servers[this.serverIndex++ % this.servers.length]!;
      this.hint = undefined;
      try {
        const { connection } = await dial(this.network, address, {
          clusterId: this.clusterId,
          secret: this.secret,
          frameBytesMax: frameBytesMaxDefault,
          timeoutMs: this.connectTimeoutMs,
          random: this.platform.random,
          clock: this.platform.clock,
          kind: 'client',
          id: this.clientId,
        });
        if (this.closed) {
          connection.close(undefined);
          throw txlogError('CLOSED', 'the client is closed');
        }
        this.adopt(connection);
        return connection;
      } catch (error) {
        lastError = error;
        if (error instanceof TxlogError && error.code === 'UNAUTHORIZED') {
          this.failAll(error);
          throw error;
        }
      }
      if ((attempt + 1) % this.servers.length === 0) {
        await new Promise<void>((resolve) => this.platform.clock.setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, clientRetryDelayMsMax);
      }
    }
  }

  private adopt(connection: Connection): void {
    this.connection = connection;
    connection.setHandler((message) => this.onMessage(connection, message));
    connection.onClose(() => {
      if (this.connection === connection) this.connection = undefined;
      if (!this.closed) this.resendAll();
    });
    // Everything not yet answered goes again, in order, with the same ids.
    for (const call of [...this.calls.values()].sort((a, b) => a.callId - b.callId)) {
      call.sentOn = connection;
      call.attempts += 1;
      connection.send({ t: 'req', callId: call.callId, op: call.op, epoch: this.epoch, body: call.body });
    }
  }

  private resendAll(): void {
    if (this.calls.size === 0) return;
    this.connectionNow().catch(() => undefined);
  }

  private onMessage(connection: Connection, message: Message): void {
    if (message.t !== 'res') {
      if (message.t === 'error') connection.close(errorFromSerialized(message.error));
      return;
    }
    this.epoch = Math.max(this.epoch, message.epoch);
    const call = this.calls.get(message.callId);
    if (call === undefined) return; // Expired, or answered already.
    if (message.ok) {
      this.finish(call);
      call.resolve(message.value);
      return;
    }
    const error = errorFromSerialized(message.error);
    if (!error.retryable) {
      this.finish(call);
      call.reject(finalError(call, error));
      return;
    }
    call.lastError = error;
    if (error.code === 'NOT_PRIMARY') {
      // Try the hinted primary, or the next server.
      this.hint = message.primary;
      if (this.connection === connection) this.connection = undefined;
      connection.close(undefined);
      return;
    }
    // REPLICA_UNAVAILABLE, BUSY: the same request again a little later, until the deadline.
    this.platform.clock.setTimeout(() => {
      if (this.calls.has(call.callId)) this.send(call, true);
    }, clientBusyRetryDelayMs);
  }

  private finish(call: Call): void {
    this.deadlines.remove(call.callId, call.deadlineMs);
    this.calls.delete(call.callId);
  }

  private failAll(error: TxlogError): void {
    for (const call of [...this.calls.values()]) {
      this.finish(call);
      call.reject(error);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(txlogError('CLOSED', 'the client closed'));
    this.connection?.close(undefined);
  }
}

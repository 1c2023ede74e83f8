/**
 * The client: knows every server, finds the primary (following NOT_PRIMARY hints), pipelines
 * requests with increasing request ids, and after a lost connection resends every request not
 * yet answered, in order and with the same ids, to whichever node is primary now. A resend is
 * always safe: the primary answers a committed request from its session table.
 */
import { randomUUID } from 'node:crypto';
import { TxlogError, errorFromSerialized, txlogError } from '../wal/errors.js';
import { nodePlatform, type Platform } from '../wal/platform.js';
import type { EventInput } from '../engine/records.js';
import type { RecordedEvent, StreamSlice } from '../engine/service.js';
import type { AppendResult } from '../engine/store.js';
import { Consumer, ConsumerRegistry, type AppendCheck, type ConsumerOptions, type Direction, type EventFilter, type ExpectedVersion, type ReadPage } from '../engine/index.js';
import { finalError, timeoutError, type Call } from './client-call.js';
import { dial, type Connection } from './connection.js';
import {
  clientBusyRetryDelayMs,
  clientRetryDelayMsMax,
  clientRetryDelayMsMin,
  frameBytesMaxDefault,
  subscribePageEventsMax,
  subscribeWaitMs,
} from './limits.js';
import type { Message, Operation } from './protocol.js';
import { defaultNetwork } from './tls.js';
import { checkTlsFiles, loadTlsCertificates, type TlsFiles } from './tls-certificates.js';
import type { Network } from './transport.js';
import type { NodeStatus } from './node.js';

export interface ClientOptions {
  /** Every node's address; the client finds the primary among them. */
  servers: string[];
  /** This client's identity for exactly-once. @default a random UUID (a new session) */
  clientId?: string;
  /**
   * The first request id to use. @default one above the highest the primary knows for this
   * client id, committed or in flight (asked before the first `execute`), so a restarted client
   * continues its ids.
   */
  firstRequestId?: number;
  /**
   * Shared secret of the cluster: with one, links run TLS 1.3 with a key derived from it and the
   * handshake proves it (`NodeOptions.secret`). Without one (and without `tls`), plaintext on
   * loopback only.
   */
  secret?: string;
  /**
   * Certificates, for a cluster whose nodes run with them (`NodeOptions.tls`): TLS 1.3 where
   * this client presents `certFile` (nodes refuse a client without a certificate signed by
   * their CA) and checks each node's certificate against `caFile` and the host dialed. With a
   * `secret` too, the handshake proves it inside TLS. Unreadable or mismatched files are
   * `BAD_REQUEST` here, before any dial. @default none
   */
  tls?: TlsFiles;
  /** @default 'txlog' */
  clusterId?: string;
  /**
   * Per-call deadline. Past it the call fails with `TIMEOUT`: outcome unknown, the error carries
   * the request id, and resending that id later is safe. @default 10000 (ms)
   */
  deadlineMs?: number;
  /** Dial and handshake limit per attempt. @default 1000 (ms) */
  connectTimeoutMs?: number;
  /** Requests waiting for an answer at once; past it calls fail with `BUSY`. @default 16384 */
  inFlightMax?: number;
  /** @default TLS 1.3 with a key derived from `secret` when there is one, else plaintext TCP */
  network?: Network;
  platform?: Platform;
}

export async function connect(options: ClientOptions): Promise<Client> {
  const client = new Client(options);
  await client.ready();
  return client;
}

export class Client {
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
  private readonly calls = new Map<number, Call>();
  private nextCallId = 1;
  private nextRequestId: number | undefined;
  private settlingRequestIds: Promise<void> | undefined;
  private epoch = 0;
  private hint: string | undefined;
  private serverIndex = 0;
  private closed = false;
  private consumers: ConsumerRegistry | undefined;

  constructor(options: ClientOptions) {
    if (!Array.isArray(options.servers) || options.servers.length === 0) {
      throw txlogError('BAD_REQUEST', 'connect needs at least one server address');
    }
    this.servers = options.servers;
    this.clientId = options.clientId ?? randomUUID();
    this.secret = options.secret ?? '';
    this.clusterId = options.clusterId ?? 'txlog';
    this.deadlineMs = options.deadlineMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    this.inFlightMax = options.inFlightMax ?? 16_384;
    this.platform = options.platform ?? nodePlatform;
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

  async append(stream: string, events: EventInput[], options: { expectedVersion?: ExpectedVersion; checks?: AppendCheck[] } = {}): Promise<AppendResult> {
    const args: Record<string, unknown> = { stream, events };
    if (options.expectedVersion !== undefined) args['expectedVersion'] = options.expectedVersion;
    if (options.checks !== undefined) args['checks'] = options.checks;
    return (await this.execute('append', args)) as AppendResult;
  }

  async readStream(stream: string, options: { fromVersion?: number; maxCount?: number } = {}): Promise<StreamSlice> {
    return (await this.call('readStream', { stream, ...options }, undefined)) as StreamSlice;
  }

  async readAll(options: { fromPosition?: number | 'end'; direction?: Direction; maxCount?: number; waitMs?: number } = {}): Promise<RecordedEvent[]> {
    return (await this.call('readAll', { ...options }, undefined)) as RecordedEvent[];
  }

  /**
   * A durable consumer over this client (see `Store.consumer`): its commits are requests of this
   * client, resent across failovers; one of a name per client, and consumers of the same name on
   * other clients are fenced by the checkpoint's expected version (CONSUMER_ACTIVE).
   */
  consumer(options: ConsumerOptions): Promise<Consumer> {
    const client = this;
    return Consumer.start(
      {
        execute: (command, args) => this.execute(command, args),
        readAll: (readOptions) => this.readAll(readOptions),
        readStream: (stream, readOptions) => this.readStream(stream, readOptions),
        waitForEvents: async (fromPosition) => void (await this.readAll({ fromPosition, maxCount: 1, waitMs: 1000 })),
        get isClosed() {
          return client.closed;
        },
      },
      (this.consumers ??= new ConsumerRegistry()),
      options,
    );
  }

  /**
   * Events in global order from `fromPosition`, then live ones (long-polling the primary). With
   * `filter`, the primary filters (`readAllPage`) and the client moves past what it passed over.
   */
  async *subscribe(options: { fromPosition?: number; signal?: AbortSignal; onCaughtUp?: () => void; filter?: EventFilter } = {}): AsyncGenerator<RecordedEvent> {
    let next = options.fromPosition ?? 0;
    let caughtUp = false;
    while (!this.closed && options.signal?.aborted !== true) {
      const request = { fromPosition: next, maxCount: subscribePageEventsMax, waitMs: caughtUp ? subscribeWaitMs : 0 };
      const scanned: ReadPage =
        options.filter === undefined ? { events: await this.readAll(request), nextPosition: next } : ((await this.call('readAllPage', { ...request, filter: options.filter }, undefined)) as ReadPage);
      const before = next;
      for (const event of scanned.events) {
        yield event;
        next = event.position + 1;
      }
      next = Math.max(next, scanned.nextPosition);
      if (next === before && !caughtUp) {
        caughtUp = true;
        options.onCaughtUp?.();
      }
    }
  }

  /**
   * Makes the node this client is connected to write a backup of its store to `out`, an
   * absolute path on that node's machine; resolves with the backup's manifest.
   */
  async backup(out: string, deadlineMs = this.deadlineMs): Promise<unknown> {
    return this.call('backup', { out }, undefined, deadlineMs);
  }

  /** The status of the node this client is connected to. */
  async status(): Promise<NodeStatus> {
    return (await this.call('status', {}, undefined)) as NodeStatus;
  }

  private call(op: Operation, body: Record<string, unknown>, requestId: number | undefined, deadlineMs = this.deadlineMs): Promise<unknown> {
    if (this.closed) return Promise.reject(txlogError('CLOSED', 'the client is closed'));
    if (this.calls.size >= this.inFlightMax) {
      return Promise.reject(txlogError('BUSY', `${this.inFlightMax} requests are waiting; retry later`));
    }
    return new Promise<unknown>((resolve, reject) => {
      const callId = this.nextCallId++;
      const call: Call = {
        callId,
        op,
        body,
        requestId,
        resolve,
        reject,
        lastError: undefined,
        attempts: 0,
        deadline: this.platform.clock.setTimeout(() => this.expire(callId), deadlineMs),
      };
      this.calls.set(callId, call);
      void this.send(call);
    });
  }

  private expire(callId: number): void {
    const call = this.calls.get(callId);
    if (call === undefined) return;
    this.calls.delete(callId);
    call.reject(timeoutError(call));
  }

  /** Sends a call; `again` resends it on a connection that already carried it (a retry). */
  private async send(call: Call, again = false): Promise<void> {
    let connection: Connection;
    try {
      connection = await this.connectionNow();
    } catch {
      return; // connectionNow retries until every call has expired or the client closed.
    }
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
      if (this.calls.has(call.callId)) void this.send(call, true);
    }, clientBusyRetryDelayMs);
  }

  private finish(call: Call): void {
    call.deadline.cancel();
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

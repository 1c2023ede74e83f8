/**
 * Client request handling: `req {callId, op, epoch, body}` in, `res` out (answers may leave out
 * of order). Each connection is one authenticated client id, with at most
 * `requestsPerConnectionMax` requests running; the node runs at most `clientConnectionsMax` ×
 * `requestsPerConnectionMax` in all, counting those of connections closed meanwhile (a request
 * runs to its end, and one may wait long for a new primary's epoch record). Writes and reads are served by the primary only:
 * the node decides whether it may serve (and a lone in-sync backup promotes itself there);
 * everything else here is checking the body (`protocol.ts`) and calling the public `Store` API
 * (an execute through the engine port's `executeOwned`: its args came from the frame alone).
 */
import * as path from 'node:path';
import { TxlogError, txlogError } from '../wal/errors.js';
import type { Store } from '../engine/store.js';
import type { Connection } from './connection.js';
import type { NodeContext } from './context.js';
import { parseExecuteBody, type Message, type MessageOf, type Operation } from './protocol.js';
import { parseReadAllBody, parseReadAllPageBody, parseReadStreamBody } from './read-bodies.js';

/** What request handling needs from the node's role state machine. */
export interface ServingNode {
  /** A client saw a higher epoch than ours: a primary steps down. */
  observeClientEpoch(epoch: number): void;
  /** Resolves when this node may serve as primary now; rejects with NOT_PRIMARY otherwise. */
  servePrimary(): Promise<void>;
  /** `servePrimary` would resolve at once: this is a primary ready to serve. */
  servingPrimaryNow(): boolean;
  /** A primary whose backup is gone past `replicaTimeoutMs` under `onReplicaLost: 'fail'`. */
  replicaUnavailable(): boolean;
  /** The primary's client-facing address, for a NOT_PRIMARY answer. */
  primaryHint(): string | undefined;
  status(): unknown;
}

/** One client connection's requests running. */
interface ClientConnection {
  running: number;
}

export class ClientRequests {
  private readonly clients = new Map<Connection, ClientConnection>();
  /** Requests running, those of connections closed since included. */
  private running = 0;

  constructor(
    private readonly context: NodeContext,
    private readonly store: Store,
    private readonly node: ServingNode,
  ) {}

  get count(): number {
    return this.clients.size;
  }

  /** Requests running on this node, those of connections closed since included. */
  get requestsRunning(): number {
    return this.running;
  }

  /** The open connections, with the requests each has running. */
  connections(): IterableIterator<[Connection, Readonly<ClientConnection>]> {
    return this.clients.entries();
  }

  closeAll(): void {
    for (const client of [...this.clients.keys()]) client.close(undefined);
  }

  /** A client connection passed the handshake as `clientId`. */
  add(connection: Connection, clientId: string): void {
    const options = this.context.options;
    if (this.clients.size >= options.clientConnectionsMax) {
      connection.reject(txlogError('BUSY', `this node serves at most ${options.clientConnectionsMax} clients`));
      return;
    }
    const clientIdLengthMax = this.store.options.limits.clientIdLengthMax;
    if (clientId.length === 0 || clientId.length > clientIdLengthMax) {
      connection.reject(txlogError('BAD_REQUEST', `client id must be 1..${clientIdLengthMax} characters`));
      return;
    }
    const client: ClientConnection = { running: 0 };
    const requestsMax = options.clientConnectionsMax * options.requestsPerConnectionMax;
    this.clients.set(connection, client);
    connection.onClose(() => this.clients.delete(connection));
    connection.setHandler((message) => {
      if (message.t !== 'req') {
        connection.reject(txlogError('PROTOCOL_ERROR', `unexpected ${message.t} from a client`));
        return;
      }
      if (client.running >= options.requestsPerConnectionMax) {
        this.reply(connection, message.callId, txlogError('BUSY', 'too many requests in flight on this connection'));
        return;
      }
      if (this.running >= requestsMax) {
        this.reply(connection, message.callId, txlogError('BUSY', `this node runs ${requestsMax} requests already`));
        return;
      }
      client.running += 1;
      this.running += 1;
      // The answer needs the call's id and operation, not the request: what the request decoded
      // to is not kept alive by its answer while the transaction is in flight.
      const { callId, op } = message;
      this.dispatch(clientId, message).then(
        (value) => {
          client.running -= 1;
          this.running -= 1;
          this.reply(connection, callId, undefined, value);
        },
        (error: unknown) => {
          client.running -= 1;
          this.running -= 1;
          this.reply(connection, callId, this.answerFor(clientId, op, error));
        },
      );
    });
  }

  private reply(connection: Connection, callId: number, error: TxlogError | undefined, value?: unknown): void {
    const epoch = this.context.epoch;
    if (error === undefined) {
      connection.send({ t: 'res', callId, ok: true, value: value ?? null, epoch });
      return;
    }
    this.store.options.metrics.errorReturned(error.code);
    const message: Message = { t: 'res', callId, ok: false, error: error.toJSON(), epoch };
    const hint = this.node.primaryHint();
    if (error.code === 'NOT_PRIMARY' && hint !== undefined) message.primary = hint;
    connection.send(message);
  }

  /**
   * A `TxlogError` is an answer. Anything else thrown while serving a request is a bug of this
   * node's, never the request's recorded outcome (`HANDLER_FAILED` would read as final): a write
   * may or may not have committed before it struck, so the client hears `OUTCOME_UNKNOWN` and
   * resends the same request id to learn the outcome; a read or status changed nothing and gets
   * `INTERNAL_ERROR`. Either way the node logs it with its stack.
   */
  private answerFor(clientId: string, op: Operation, error: unknown): TxlogError {
    if (error instanceof TxlogError) return error;
    const thrown = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const stack = error instanceof Error && error.stack !== undefined ? `\n${error.stack}` : '';
    this.context.log(`INTERNAL ERROR (a bug) serving ${op} of client ${clientId}: ${thrown}${stack}`);
    const details = { internalError: true, op, thrown };
    if (op === 'execute') {
      return txlogError('OUTCOME_UNKNOWN', `outcome unknown, resend the same request id: an internal error of the node struck while serving it (${thrown})`, details, error);
    }
    return txlogError('INTERNAL_ERROR', `an internal error of the node struck while serving ${op} (${thrown}); nothing was changed`, details, error);
  }

  /**
   * Serves a request. A transaction on a primary ready to serve goes straight to the store: the
   * commit path makes no promise of the node's own, only the store's.
   */
  private dispatch(clientId: string, request: MessageOf<'req'>): Promise<unknown> {
    try {
      this.node.observeClientEpoch(request.epoch);
      if (request.op === 'execute' && this.node.servingPrimaryNow()) return this.executeNow(clientId, request.body);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.handle(clientId, request);
  }

  /** `execute` once this node serves as primary (`handle` has waited, or had nothing to wait for). */
  private executeNow(clientId: string, body: Record<string, unknown>): Promise<unknown> {
    try {
      if (this.node.replicaUnavailable()) {
        throw txlogError('REPLICA_UNAVAILABLE', 'no backup is in sync; the outcome is unknown, resend the same request id later');
      }
      const { command, args, requestId } = parseExecuteBody(body);
      // The args were decoded from this request's frame: nothing else holds them.
      return this.context.store.executeOwned(command, args, { clientId, requestId });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async handle(clientId: string, request: MessageOf<'req'>): Promise<unknown> {
    const body = request.body;
    switch (request.op) {
      case 'status':
        return this.node.status();
      case 'session':
        // Only the primary knows every request id taken: a lagging backup would hand a restarted
        // client ids already used, and its new requests would get the old requests' replies.
        await this.node.servePrimary();
        return { latestRequestId: this.context.store.latestRequestId(clientId) };
      case 'execute':
        await this.node.servePrimary();
        return this.executeNow(clientId, body);
      case 'readStream': {
        await this.node.servePrimary();
        const { stream, options } = parseReadStreamBody(body);
        return this.store.readStream(stream, options);
      }
      case 'backup': {
        // Any role: the node copies its own store to a path on its own machine (see cli/backup.ts).
        const out = body['out'];
        if (typeof out !== 'string' || !path.isAbsolute(out)) throw txlogError('BAD_REQUEST', 'backup needs an absolute out path');
        return this.store.backup(out);
      }
      case 'readAll': {
        await this.node.servePrimary();
        const { options, waitMs } = parseReadAllBody(body);
        let events = await this.store.readAll(options);
        if (events.length === 0 && waitMs > 0) {
          await this.store.waitForEvents(waitMs);
          events = await this.store.readAll(options);
        }
        return events;
      }
      case 'readAllPage': {
        // A page of the log (filtered or not, either way) the client iterates with, or a
        // subscription's long poll: the node filters, the client moves past the rest.
        await this.node.servePrimary();
        const { options, waitMs } = parseReadAllPageBody(body);
        let page = await this.store.readAllPage(options);
        const forwards = options.direction !== 'backwards';
        if (forwards && page.nextPosition === options.fromPosition && waitMs > 0) {
          await this.store.waitForEvents(waitMs);
          page = await this.store.readAllPage(options);
        }
        return page;
      }
      case 'consumers':
        await this.node.servePrimary();
        return this.store.consumers();
    }
  }
}

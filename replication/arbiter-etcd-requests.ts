/**
 * The arbiter's connection to etcd: the `etcd3` client (imported here on demand, nowhere else),
 * every call bounded by `requestTimeoutMs`, and the lease calls the arbiter needs (one
 * keep-alive, a lookup, a revoke). Every failure becomes a retryable `TIMEOUT` that names what
 * was asked, so the arbiter's callers handle one operating error for an etcd they cannot reach.
 */
import type { Etcd3, IOptions } from 'etcd3';
import { TxlogError, txlogError } from '../wal/errors.js';
import type { TimerHandle } from '../wal/platform.js';
import type { ResolvedArbiterOptions } from './arbiter.js';

type Policy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** gRPC call options: the deadline is wall-clock milliseconds, as gRPC wants it. */
export interface CallOptions {
  deadline: number;
}

/**
 * etcd3 calls only `execute` on its fault-handling policies (connection-pool.js). Its defaults
 * retry and open a circuit breaker for 5 s after failures, which would hide an etcd that came
 * back; our own loops retry and every request is bounded, so one attempt per endpoint suffices.
 */
function attemptsPolicy(attempts: number, isRecoverable: (error: Error) => boolean): Policy {
  const policy = {
    async execute(run: () => Promise<unknown>): Promise<unknown> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await run();
        } catch (error) {
          if (attempt >= attempts || !(error instanceof Error) || !isRecoverable(error)) throw error;
        }
      }
    },
  };
  return policy as unknown as Policy;
}

export class EtcdRequests {
  private closed = false;

  private constructor(
    private readonly options: ResolvedArbiterOptions,
    readonly client: Etcd3,
  ) {}

  static async open(options: ResolvedArbiterOptions): Promise<EtcdRequests> {
    const etcd = await import('etcd3');
    const client = new etcd.Etcd3({
      hosts: options.endpoints.map((endpoint) => `http://${endpoint}`),
      dialTimeout: options.requestTimeoutMs,
      faultHandling: {
        host: () => attemptsPolicy(1, etcd.isRecoverableError),
        global: attemptsPolicy(options.endpoints.length, etcd.isRecoverableError),
      },
      // gRPC's reconnect backoff grows to 120 s by default; an etcd that restarts must be found
      // again within a renewal or two.
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': options.requestTimeoutMs },
    });
    return new EtcdRequests(options, client);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  /**
   * Runs one etcd call bounded by `requestTimeoutMs` on our clock (and by a gRPC deadline, so
   * etcd drops it too).
   */
  async request<T>(what: string, operation: (callOptions: CallOptions) => Promise<T>): Promise<T> {
    if (this.closed) throw txlogError('CLOSED', 'the arbiter is closed');
    const timeoutMs = this.options.requestTimeoutMs;
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = this.options.clock.setTimeout(
        () => reject(txlogError('TIMEOUT', `etcd did not answer (${what}) within ${timeoutMs} ms`, { endpoints: this.options.endpoints })),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([operation({ deadline: this.options.clock.nowMs() + timeoutMs }), timeout]);
    } catch (error) {
      if (error instanceof TxlogError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw txlogError('TIMEOUT', `etcd failed (${what}): ${message}`, { endpoints: this.options.endpoints }, error);
    } finally {
      timer?.cancel();
    }
  }

  async grantLease(ttlMs: number): Promise<{ leaseId: string; grantedTtlMs: number }> {
    const grant = await this.request('lease grant', (callOptions) => this.client.leaseClient.leaseGrant({ TTL: ttlMs / 1000 }, callOptions));
    return { leaseId: grant.ID, grantedTtlMs: Number(grant.TTL) * 1000 };
  }

  /** Sends one keep-alive on its own stream and returns the TTL etcd answered (0: lease gone). */
  keepAliveOnce(leaseId: string): Promise<number> {
    return this.request('lease renewal', async (callOptions) => {
      const stream = await this.client.leaseClient.leaseKeepAlive(callOptions);
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on('data', (response) => resolve(Number(response.TTL)));
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('the keep-alive stream ended without an answer')));
          stream.write({ ID: leaseId });
        });
      } finally {
        stream.end();
      }
    });
  }

  /** What etcd says is left of a lease, in whole seconds as it counts them; 0: gone. */
  async leaseRemainingMs(leaseId: string): Promise<number> {
    const response = await this.request('lease lookup', (callOptions) => this.client.leaseClient.leaseTimeToLive({ ID: leaseId }, callOptions));
    return Math.max(0, Number(response.TTL) * 1000);
  }

  async leaseAlive(leaseId: string): Promise<boolean> {
    // A leader key without a lease was written by hand: it never expires, so it stays held.
    if (leaseId === '0') return true;
    return (await this.leaseRemainingMs(leaseId)) > 0;
  }

  /** Revokes a lease (deleting the keys bound to it); if etcd cannot be reached it runs out. */
  async revokeQuietly(leaseId: string): Promise<void> {
    try {
      await this.request('lease revoke', (callOptions) => this.client.leaseClient.leaseRevoke({ ID: leaseId }, callOptions));
    } catch {
      // Unreachable or closed: the lease runs out by itself within its TTL.
    }
  }
}

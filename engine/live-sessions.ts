/**
 * The sessions the session table holds in memory (`session-table.ts`), by client, in the order of
 * their clients' last activity (by LSN: the least recently active first, the one evicted past
 * `clientsMax`).
 *
 * The order is a list linked through the sessions themselves, and a commit updates its client's
 * session where it is and moves it to the end of the list: the map of clients neither drops nor
 * takes a key per commit. (A `Map` whose key a commit deleted and set again, to keep its
 * insertion order as the activity order, kept garbage alive: see `lsn-slots.ts`.)
 */
export interface SessionRecord {
  /** Highest request id committed by this client. */
  latest: number;
  /**
   * LSN of its last kept reply: the eviction order, and the head of its reply chain. A commit
   * whose id was already outside the window keeps nothing and leaves it as it was.
   */
  lastLsn: number;
  /**
   * Ids at or below it are expired whatever the window says: the `latest` of the tombstone the
   * client came back from (0 for a client never evicted), whose replies are gone.
   */
  floor: number;
  /** Evicted past `clientsMax`: its replies are gone, only `latest` is kept (a tombstone). */
  evicted: boolean;
}

/** A session held in memory. */
export interface LiveSession extends SessionRecord {
  readonly clientId: string;
  /** Changed by the apply under way and not stored yet (see `SessionTable.changedClients`). */
  changed: boolean;
  /** Its neighbours in activity order (undefined at either end, and once removed). */
  older: LiveSession | undefined;
  newer: LiveSession | undefined;
}

export class LiveSessions {
  private readonly byClient = new Map<string, LiveSession>();
  private oldestSession: LiveSession | undefined;
  private newestSession: LiveSession | undefined;

  get size(): number {
    return this.byClient.size;
  }

  get(clientId: string): LiveSession | undefined {
    return this.byClient.get(clientId);
  }

  /** The least recently active session, if any. */
  get oldest(): LiveSession | undefined {
    return this.oldestSession;
  }

  /** Holds a new session as the most recently active (the client must have none). */
  add(clientId: string, record: SessionRecord): LiveSession {
    const session = new HeldSession(clientId, record);
    this.byClient.set(clientId, session);
    this.append(session);
    return session;
  }

  /** The session's client was active just now: it becomes the most recently active. */
  touched(session: LiveSession): void {
    if (session === this.newestSession) return;
    this.unlink(session);
    this.append(session);
  }

  remove(session: LiveSession): void {
    this.byClient.delete(session.clientId);
    this.unlink(session);
  }

  private append(session: LiveSession): void {
    session.older = this.newestSession;
    session.newer = undefined;
    if (this.newestSession === undefined) this.oldestSession = session;
    else this.newestSession.newer = session;
    this.newestSession = session;
  }

  private unlink(session: LiveSession): void {
    if (session.older === undefined) this.oldestSession = session.newer;
    else session.older.newer = session.newer;
    if (session.newer === undefined) this.newestSession = session.older;
    else session.newer.older = session.older;
    session.older = undefined;
    session.newer = undefined;
  }
}

/**
 * A `LiveSession` made by one constructor, so that every session has the same shape: the list
 * is relinked at every commit, and stores into objects of one shape stay fast (sessions spread
 * from their records made the relinking cost about 8% of a rebuild, `rebuild-bench`).
 */
class HeldSession implements LiveSession {
  latest: number;
  lastLsn: number;
  floor: number;
  evicted: boolean;
  changed = false;
  older: LiveSession | undefined = undefined;
  newer: LiveSession | undefined = undefined;

  constructor(
    readonly clientId: string,
    record: SessionRecord,
  ) {
    this.latest = record.latest;
    this.lastLsn = record.lastLsn;
    this.floor = record.floor;
    this.evicted = record.evicted;
  }
}

/**
 * The wire protocol (`protocolVersion`): length-prefixed msgpack frames over TCP.
 *
 *   frame = [u32 BE body bytes][body: one msgpack map with a string field `t`]
 *
 * A connection opens with a mutual challenge: the server sends `hello` with a nonce; the dialer
 * answers `auth` with an HMAC-SHA256 over that nonce (never the secret) and a nonce of its own;
 * the server checks it and answers `welcome` with its own HMAC over the dialer's nonce. Every
 * later message is checked by `parseMessage` before anything acts on it: a peer or client that
 * sends garbage, an unknown type, a wrong version or an oversized frame gets `PROTOCOL_ERROR`
 * and is disconnected; nothing else on the node is affected.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';
import { assert } from '../wal/assert.js';
import { txlogError, type SerializedError } from '../wal/errors.js';
import { packPlain } from '../wal/plain-msgpack.js';
import { handshakeFieldBytesMax, messageStringLengthMax, peerAddressesMax } from './limits.js';

/**
 * Both ends speak exactly this version and refuse any other at the handshake (connection.ts),
 * with a message that names both: a change to what a message or a body may hold or means
 * bumps it. 2: `synced`. 3: reads from `'end'` and backwards on streams too, `readAllPage` both
 * ways (what the client pages with), `consumers`.
 */
export const protocolVersion = 3;
export const nonceBytes = 32;
assert(nonceBytes <= handshakeFieldBytesMax, 'a nonce must fit in a handshake field');

const packr = new Packr({ useRecords: false, moreTypes: false });

/** A frame starts with its body's length, a u32. */
const frameLengthBytes = 4;

export function encodeMessage(message: Message): Buffer {
  // The body is packed after four bytes left free, where its length goes: the body (a batch of
  // records, say) is not copied into a frame of its own. msgpackr's bytes, written by
  // `plain-msgpack.ts` (faster in a busy node; msgpackr for what it does not write itself).
  const frame = packPlain(message, packr, frameLengthBytes);
  frame.writeUInt32BE(frame.length - frameLengthBytes, 0);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. Throws PROTOCOL_ERROR on a length above `frameBytesMax`
 * (before buffering it) so a hostile length cannot make us allocate.
 */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  constructor(private readonly frameBytesMax: number) {}

  push(chunk: Buffer): Buffer[] {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    const bodies: Buffer[] = [];
    for (;;) {
      if (this.bufferedBytes < frameLengthBytes) break;
      const head = this.peek(frameLengthBytes);
      const length = head.readUInt32BE(0);
      if (length > this.frameBytesMax) {
        throw txlogError('PROTOCOL_ERROR', `frame of ${length} bytes exceeds the limit of ${this.frameBytesMax}`);
      }
      if (this.bufferedBytes < frameLengthBytes + length) break;
      const all = this.take(frameLengthBytes + length);
      bodies.push(all.subarray(frameLengthBytes));
    }
    return bodies;
  }

  private peek(bytes: number): Buffer {
    if (this.buffered[0]!.length >= bytes) return this.buffered[0]!;
    return Buffer.concat(this.buffered).subarray(0, bytes);
  }

  private take(bytes: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const taken = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return taken;
  }
}

export type Role = 'primary' | 'backup' | 'waiting';
export type ConnectionKind = 'client' | 'peer';

export interface PeerState {
  nodeId: string;
  role: Role;
  configuredRole: 'primary' | 'backup';
  epoch: number;
  lastLsn: number;
  lastEpoch: number;
  /** A backup that has caught up with its primary's live stream. */
  inSync: boolean;
  /** Client-facing addresses of this node, for NOT_PRIMARY hints. */
  addresses: string[];
}

export type Operation = 'execute' | 'readStream' | 'readAll' | 'status' | 'session' | 'backup' | 'readAllPage' | 'consumers';

export type Message =
  | { t: 'hello'; protocol: number; clusterId: string; nodeId: string; nonce: Uint8Array }
  | { t: 'auth'; protocol: number; clusterId: string; kind: ConnectionKind; id: string; proof: Uint8Array; nonce: Uint8Array }
  | { t: 'welcome'; nodeId: string; proof: Uint8Array }
  | { t: 'error'; error: SerializedError }
  | { t: 'req'; callId: number; op: Operation; epoch: number; body: Record<string, unknown> }
  | { t: 'res'; callId: number; ok: boolean; value?: unknown; error?: SerializedError; epoch: number; primary?: string }
  | { t: 'peer'; state: PeerState }
  | { t: 'join'; lastLsn: number; lastEpoch: number; epoch: number }
  | { t: 'truncate'; afterLsn: number; epoch: number }
  | { t: 'records'; epoch: number; firstLsn: number; frames: Uint8Array[] }
  | { t: 'ack'; epoch: number; receivedLsn: number; durableLsn: number }
  | { t: 'heartbeat'; epoch: number; lastLsn: number }
  /** Primary to backup: from `lsn` on you get the live stream. */
  | { t: 'live'; epoch: number; lsn: number }
  /**
   * Primary to backup: from here on every commit I release waits for your acknowledgement (I no
   * longer commit alone); holding `lsn` makes you in sync, and so able to take over.
   */
  | { t: 'synced'; epoch: number; lsn: number };

/** The message of type `T`. */
export type MessageOf<T extends Message['t']> = Extract<Message, { t: T }>;

function field<T>(record: Record<string, unknown>, name: string, check: (value: unknown) => value is T, what: string): T {
  const value = record[name];
  if (!check(value)) throw txlogError('PROTOCOL_ERROR', `message field ${name} must be ${what}`);
  return value;
}

const isString = (value: unknown): value is string => typeof value === 'string' && value.length <= messageStringLengthMax;
const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const isBytes = (value: unknown): value is Uint8Array => value instanceof Uint8Array && value.length <= handshakeFieldBytesMax;
const isBoolean = (value: unknown): value is boolean => typeof value === 'boolean';
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
const operations: readonly string[] = ['execute', 'readStream', 'readAll', 'status', 'session', 'backup', 'readAllPage', 'consumers'];
const roles: readonly string[] = ['primary', 'backup', 'waiting'];

function parsePeerState(value: unknown): PeerState {
  if (!isObject(value)) throw txlogError('PROTOCOL_ERROR', 'peer state must be a map');
  const role = field(value, 'role', isString, 'a role');
  const configuredRole = field(value, 'configuredRole', isString, 'a role');
  if (!roles.includes(role) || (configuredRole !== 'primary' && configuredRole !== 'backup')) {
    throw txlogError('PROTOCOL_ERROR', 'unknown role');
  }
  const addresses = value['addresses'];
  if (!Array.isArray(addresses) || addresses.length > peerAddressesMax || !addresses.every(isString)) {
    throw txlogError('PROTOCOL_ERROR', 'addresses must be a list of strings');
  }
  return {
    nodeId: field(value, 'nodeId', isString, 'a string'),
    role: role as Role,
    configuredRole,
    epoch: field(value, 'epoch', isCount, 'a count'),
    lastLsn: field(value, 'lastLsn', isCount, 'a count'),
    lastEpoch: field(value, 'lastEpoch', isCount, 'a count'),
    inSync: field(value, 'inSync', isBoolean, 'a boolean'),
    addresses: addresses as string[],
  };
}

function parseError(value: unknown): SerializedError {
  if (!isObject(value)) throw txlogError('PROTOCOL_ERROR', 'error must be a map');
  const details = value['details'];
  return {
    code: field(value, 'code', isString, 'a string') as SerializedError['code'],
    message: field(value, 'message', isString, 'a string'),
    details: isObject(details) ? details : {},
  };
}

/** Decodes and validates one frame body. Throws PROTOCOL_ERROR for anything malformed. */
export function parseMessage(body: Buffer): Message {
  let decoded: unknown;
  try {
    decoded = packr.unpack(body);
  } catch (error) {
    throw txlogError('PROTOCOL_ERROR', 'frame body is not msgpack', {}, error);
  }
  if (!isObject(decoded)) throw txlogError('PROTOCOL_ERROR', 'message must be a map');
  const type = decoded['t'];
  switch (type) {
    case 'hello':
      return {
        t: 'hello',
        protocol: field(decoded, 'protocol', isCount, 'a count'),
        clusterId: field(decoded, 'clusterId', isString, 'a string'),
        nodeId: field(decoded, 'nodeId', isString, 'a string'),
        nonce: field(decoded, 'nonce', isBytes, 'bytes'),
      };
    case 'auth': {
      const kind = field(decoded, 'kind', isString, 'a string');
      if (kind !== 'client' && kind !== 'peer') throw txlogError('PROTOCOL_ERROR', 'auth kind must be client or peer');
      return {
        t: 'auth',
        protocol: field(decoded, 'protocol', isCount, 'a count'),
        clusterId: field(decoded, 'clusterId', isString, 'a string'),
        kind,
        id: field(decoded, 'id', isString, 'a string'),
        proof: field(decoded, 'proof', isBytes, 'bytes'),
        nonce: field(decoded, 'nonce', isBytes, 'bytes'),
      };
    }
    case 'welcome':
      return { t: 'welcome', nodeId: field(decoded, 'nodeId', isString, 'a string'), proof: field(decoded, 'proof', isBytes, 'bytes') };
    case 'error':
      return { t: 'error', error: parseError(decoded['error']) };
    case 'req': {
      const op = field(decoded, 'op', isString, 'a string');
      if (!operations.includes(op)) throw txlogError('PROTOCOL_ERROR', `unknown operation ${op}`);
      return {
        t: 'req',
        callId: field(decoded, 'callId', isCount, 'a count'),
        op: op as Operation,
        epoch: field(decoded, 'epoch', isCount, 'a count'),
        body: field(decoded, 'body', isObject, 'a map'),
      };
    }
    case 'res': {
      const message: Message = {
        t: 'res',
        callId: field(decoded, 'callId', isCount, 'a count'),
        ok: field(decoded, 'ok', isBoolean, 'a boolean'),
        epoch: field(decoded, 'epoch', isCount, 'a count'),
      };
      if (decoded['value'] !== undefined) message.value = decoded['value'];
      if (decoded['error'] !== undefined) message.error = parseError(decoded['error']);
      if (decoded['primary'] !== undefined) message.primary = field(decoded, 'primary', isString, 'a string');
      return message;
    }
    case 'peer':
      return { t: 'peer', state: parsePeerState(decoded['state']) };
    case 'join':
      return {
        t: 'join',
        lastLsn: field(decoded, 'lastLsn', isCount, 'a count'),
        lastEpoch: field(decoded, 'lastEpoch', isCount, 'a count'),
        epoch: field(decoded, 'epoch', isCount, 'a count'),
      };
    case 'truncate':
      return {
        t: 'truncate',
        afterLsn: field(decoded, 'afterLsn', isCount, 'a count'),
        epoch: field(decoded, 'epoch', isCount, 'a count'),
      };
    case 'records': {
      const frames = decoded['frames'];
      if (!Array.isArray(frames) || !frames.every((frame) => frame instanceof Uint8Array)) {
        throw txlogError('PROTOCOL_ERROR', 'records must carry a list of frames');
      }
      return {
        t: 'records',
        epoch: field(decoded, 'epoch', isCount, 'a count'),
        firstLsn: field(decoded, 'firstLsn', isCount, 'a count'),
        frames: frames as Uint8Array[],
      };
    }
    case 'ack':
      return {
        t: 'ack',
        epoch: field(decoded, 'epoch', isCount, 'a count'),
        receivedLsn: field(decoded, 'receivedLsn', isCount, 'a count'),
        durableLsn: field(decoded, 'durableLsn', isCount, 'a count'),
      };
    case 'heartbeat':
      return {
        t: 'heartbeat',
        epoch: field(decoded, 'epoch', isCount, 'a count'),
        lastLsn: field(decoded, 'lastLsn', isCount, 'a count'),
      };
    case 'live':
    case 'synced':
      return {
        t: type,
        epoch: field(decoded, 'epoch', isCount, 'a count'),
        lsn: field(decoded, 'lsn', isCount, 'a count'),
      };
    default:
      throw txlogError('PROTOCOL_ERROR', `unknown message type ${String(type)}`);
  }
}

// ---------------------------------------------------------------- request bodies
//
// `parseMessage` checks that a request's body is a map; what it must hold depends on the
// operation, and is checked here (the reads' bodies, both ways, in read-bodies.ts) when the
// node acts on it (after it knows it may serve it, so a backup answers NOT_PRIMARY before it
// looks at the body). Only the shape is checked: the store checks values against its limits and
// answers BAD_REQUEST itself.

export interface ExecuteRequest {
  command: string;
  args: unknown;
  requestId: number;
}

function badRequest(message: string): never {
  throw txlogError('BAD_REQUEST', message);
}

export function parseExecuteBody(body: Record<string, unknown>): ExecuteRequest {
  const requestId = body['requestId'];
  if (typeof requestId !== 'number') badRequest('execute needs a requestId');
  const command = body['command'];
  if (typeof command !== 'string') badRequest('execute needs a command name (a string)');
  return { command, args: body['args'], requestId };
}

/** The proof that the sender knows the shared secret, bound to the nonce and the sender's role. */
export function authProof(secret: string, nonce: Uint8Array, clusterId: string, side: string): Buffer {
  return createHmac('sha256', secret).update(`txlog-auth-v1\u0000${clusterId}\u0000${side}\u0000`).update(nonce).digest();
}

export function proofMatches(expected: Buffer, received: Uint8Array): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

/** Parses `host:port` (IPv6 as `[::1]:port`). */
export function parseAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw txlogError('BAD_REQUEST', `address ${address} is not host:port`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Proves the wire protocol's pure parts on their valid and invalid space:
 * - `FrameDecoder` reassembles frames split across chunks at every byte boundary, returns
 *   several frames from one chunk, and refuses a length above the limit with PROTOCOL_ERROR as
 *   soon as the 4 length bytes are in, before buffering the body (limit itself passes);
 * - `parseMessage` round-trips every message type and refuses bytes that are not msgpack, a
 *   value that is not a map, an unknown type, a missing or wrongly typed field, an unknown
 *   operation, role or connection kind, and oversized strings or nonces;
 * - `authProof` is bound to secret, nonce, cluster and side; `proofMatches` compares safely
 *   (different lengths are a mismatch, not a throw);
 * - `parseAddress` accepts host:port and [v6]:port and refuses everything else with BAD_REQUEST;
 * - the request body of `execute` is narrowed field by field: a missing or wrongly typed field
 *   is BAD_REQUEST (the reads' bodies: read-bodies.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import {
  FrameDecoder,
  authProof,
  encodeMessage,
  isLoopbackHost,
  parseAddress,
  parseExecuteBody,
  parseMessage,
  proofMatches,
  protocolVersion,
  type Message,
  type PeerState,
} from '../../replication/protocol.js';
import { TxlogError } from '../../wal/errors.js';
import { thrownError } from '../helpers/wal.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const body = (value: unknown): Buffer => packr.pack(value);
const nonce = new Uint8Array(32).fill(7);

const peerState: PeerState = {
  nodeId: 'A',
  role: 'primary',
  configuredRole: 'primary',
  epoch: 3,
  lastLsn: 10,
  lastEpoch: 3,
  inSync: true,
  addresses: ['127.0.0.1:7001'],
};

const samples: Message[] = [
  { t: 'hello', protocol: protocolVersion, clusterId: 'txlog', nodeId: 'A', nonce },
  { t: 'auth', protocol: protocolVersion, clusterId: 'txlog', kind: 'client', id: 'c1', proof: nonce, nonce },
  { t: 'welcome', nodeId: 'A', proof: nonce },
  { t: 'error', error: { code: 'BUSY', message: 'busy', details: {} } },
  { t: 'req', callId: 1, op: 'execute', epoch: 2, body: { command: 'append', requestId: 1 } },
  { t: 'res', callId: 1, ok: true, value: { x: 1 }, epoch: 2 },
  { t: 'res', callId: 2, ok: false, error: { code: 'NOT_PRIMARY', message: 'no', details: {} }, epoch: 2, primary: '127.0.0.1:1' },
  { t: 'peer', state: { ...peerState } },
  { t: 'join', lastLsn: 5, lastEpoch: 1, epoch: 2 },
  { t: 'truncate', afterLsn: 4, epoch: 2 },
  { t: 'records', epoch: 2, firstLsn: 5, frames: [new Uint8Array([1, 2, 3]), new Uint8Array(0)] },
  { t: 'ack', epoch: 2, receivedLsn: 6, durableLsn: 5 },
  { t: 'heartbeat', epoch: 2, lastLsn: 6 },
  { t: 'live', epoch: 2, lsn: 6 },
];

function frameBody(frame: Buffer): Buffer {
  return frame.subarray(4);
}

/** Byte fields come back as Buffers: compare contents, not classes. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, plain(inner)]));
  return value;
}

function codeOf(action: () => unknown): string {
  return thrownError(action).code;
}

describe('FrameDecoder', () => {
  it('reassembles a frame split at every byte boundary', () => {
    const frame = encodeMessage(samples[4]!);
    for (let cut = 0; cut <= frame.length; cut++) {
      const decoder = new FrameDecoder(1024);
      const first = decoder.push(frame.subarray(0, cut));
      const second = decoder.push(frame.subarray(cut));
      const bodies = [...first, ...second];
      expect(bodies).toHaveLength(1);
      expect(plain(parseMessage(bodies[0]!))).toEqual(plain(samples[4]));
    }
  });

  it('reassembles frames fed one byte at a time', () => {
    const frames = Buffer.concat(samples.map((message) => encodeMessage(message)));
    const decoder = new FrameDecoder(1024);
    const bodies: Buffer[] = [];
    for (let index = 0; index < frames.length; index++) bodies.push(...decoder.push(frames.subarray(index, index + 1)));
    expect(plain(bodies.map((bodyBytes) => parseMessage(bodyBytes)))).toEqual(plain(samples));
  });

  it('returns every frame of a chunk holding several, and keeps a partial tail for later', () => {
    const frames = samples.map((message) => encodeMessage(message));
    const all = Buffer.concat(frames);
    const decoder = new FrameDecoder(1024);
    const firstBodies = decoder.push(all.subarray(0, all.length - 3));
    expect(firstBodies).toHaveLength(samples.length - 1);
    const rest = decoder.push(all.subarray(all.length - 3));
    expect(rest).toHaveLength(1);
    expect(plain([...firstBodies, ...rest].map((bodyBytes) => parseMessage(bodyBytes)))).toEqual(plain(samples));
  });

  it('accepts a frame of exactly the limit and an empty frame body', () => {
    const decoder = new FrameDecoder(10);
    const exact = Buffer.alloc(14);
    exact.writeUInt32BE(10, 0);
    const empty = Buffer.alloc(4);
    const bodies = decoder.push(Buffer.concat([exact, empty]));
    expect(bodies.map((bodyBytes) => bodyBytes.length)).toEqual([10, 0]);
  });

  it('refuses a length above the limit with PROTOCOL_ERROR before the body arrives', () => {
    const decoder = new FrameDecoder(10);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(11, 0);
    expect(codeOf(() => decoder.push(head))).toBe('PROTOCOL_ERROR');
    const hostile = new FrameDecoder(16 * 1024 * 1024);
    expect(codeOf(() => hostile.push(Buffer.from([0xff, 0xff, 0xff, 0xff])))).toBe('PROTOCOL_ERROR');
  });

  it('refuses an oversized length split across chunks once its fourth byte arrives', () => {
    const decoder = new FrameDecoder(1000);
    expect(decoder.push(Buffer.from([0x7f, 0xff]))).toEqual([]);
    expect(decoder.push(Buffer.from([0xff]))).toEqual([]);
    expect(codeOf(() => decoder.push(Buffer.from([0xff])))).toBe('PROTOCOL_ERROR');
  });
});

describe('parseMessage', () => {
  it('round-trips every message type', () => {
    for (const message of samples) expect(plain(parseMessage(frameBody(encodeMessage(message))))).toEqual(plain(message));
  });

  it('refuses bytes that are not msgpack', () => {
    expect(codeOf(() => parseMessage(Buffer.from([0xc1])))).toBe('PROTOCOL_ERROR'); // 0xc1 is never used
    expect(codeOf(() => parseMessage(Buffer.from([0x85, 0xa1])))).toBe('PROTOCOL_ERROR'); // truncated map
    expect(codeOf(() => parseMessage(Buffer.alloc(0)))).toBe('PROTOCOL_ERROR');
  });

  it('refuses values that are not a map', () => {
    for (const value of [1, 'req', null, true, [1, 2], ['t', 'req'], new Uint8Array([1])]) {
      expect(codeOf(() => parseMessage(body(value)))).toBe('PROTOCOL_ERROR');
    }
  });

  it('refuses an unknown or missing type', () => {
    expect(codeOf(() => parseMessage(body({ t: 'shutdown' })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ callId: 1 })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 7 })))).toBe('PROTOCOL_ERROR');
  });

  it('refuses each field missing or of the wrong type, for every message type', () => {
    const wrongValues: unknown[] = [undefined, 'x', -1, 1.5, null, [], {}, true];
    for (const message of samples) {
      for (const [name, good] of Object.entries(message)) {
        if (name === 't') continue;
        for (const wrong of wrongValues) {
          if (typeof good === typeof wrong && !(good instanceof Uint8Array) && !Array.isArray(good) && typeof good !== 'object') {
            // Same primitive type (e.g. another count): only out-of-range values must be refused.
            if (typeof good === 'number' && typeof wrong === 'number' && Number.isSafeInteger(wrong) && wrong >= 0) continue;
            if (typeof good === 'string' || typeof good === 'boolean') continue;
          }
          // `value` of a res is free-form, and optional fields may be absent.
          if (message.t === 'res' && (name === 'value' || ((name === 'primary' || name === 'error') && wrong === undefined))) continue;
          if (message.t === 'error' && name === 'error' && isMapLike(wrong)) continue; // checked below with its own fields
          if (message.t === 'req' && name === 'body' && isMapLike(wrong)) continue;
          if (Array.isArray(good) && Array.isArray(wrong)) continue; // an empty list is a valid list
          const broken: Record<string, unknown> = { ...message, [name]: wrong };
          if (wrong === undefined) delete broken[name];
          let code: string;
          try {
            parseMessage(body(broken));
            code = 'accepted';
          } catch (error) {
            code = error instanceof TxlogError ? error.code : String(error);
          }
          expect(code, `${message.t}.${name} = ${JSON.stringify(wrong)}`).toBe('PROTOCOL_ERROR');
        }
      }
    }
  });

  it('refuses an unknown operation, role, configured role or connection kind', () => {
    expect(codeOf(() => parseMessage(body({ ...samples[4], op: 'drop' })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'peer', state: { ...peerState, role: 'king' } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'peer', state: { ...peerState, configuredRole: 'waiting' } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ ...samples[1], kind: 'server' })))).toBe('PROTOCOL_ERROR');
  });

  it('refuses peer states with bad addresses, and error maps without code or message', () => {
    expect(codeOf(() => parseMessage(body({ t: 'peer', state: { ...peerState, addresses: 'x' } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'peer', state: { ...peerState, addresses: [1] } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'peer', state: { ...peerState, addresses: Array(17).fill('a:1') } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'peer', state: 'x' })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'error', error: { message: 'm' } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'error', error: { code: 'X' } })))).toBe('PROTOCOL_ERROR');
    expect(codeOf(() => parseMessage(body({ t: 'records', epoch: 1, firstLsn: 1, frames: ['not bytes'] })))).toBe('PROTOCOL_ERROR');
  });

  it('refuses strings and nonces past their limits (limit itself passes)', () => {
    const longest = 'x'.repeat(4096);
    expect(parseMessage(body({ ...samples[0], nodeId: longest }))).toMatchObject({ nodeId: longest });
    expect(codeOf(() => parseMessage(body({ ...samples[0], nodeId: `${longest}x` })))).toBe('PROTOCOL_ERROR');
    expect(parseMessage(body({ ...samples[0], nonce: new Uint8Array(1024) }))).toMatchObject({ t: 'hello' });
    expect(codeOf(() => parseMessage(body({ ...samples[0], nonce: new Uint8Array(1025) })))).toBe('PROTOCOL_ERROR');
  });
});

function isMapLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

describe('authProof and proofMatches', () => {
  const base = authProof('secret', nonce, 'txlog', 'client');

  it('is 32 bytes, stable, and matches itself', () => {
    expect(base).toHaveLength(32);
    expect(authProof('secret', nonce, 'txlog', 'client').equals(base)).toBe(true);
    expect(proofMatches(base, new Uint8Array(base))).toBe(true);
  });

  it('changes with the secret, the nonce, the cluster and the side', () => {
    const otherNonce = new Uint8Array(32).fill(8);
    const variants = [
      authProof('secret2', nonce, 'txlog', 'client'),
      authProof('', nonce, 'txlog', 'client'),
      authProof('secret', otherNonce, 'txlog', 'client'),
      authProof('secret', nonce, 'other', 'client'),
      authProof('secret', nonce, 'txlog', 'peer'),
      authProof('secret', nonce, 'txlog', 'server'),
      // The separators keep fields apart: moving a character across a boundary changes it.
      authProof('secret', nonce, 'txlo', 'gclient'),
    ];
    for (const variant of variants) expect(proofMatches(base, variant)).toBe(false);
  });

  it('treats a proof of another length (or none) as a mismatch, without throwing', () => {
    expect(proofMatches(base, base.subarray(0, 31))).toBe(false);
    expect(proofMatches(base, new Uint8Array(0))).toBe(false);
    expect(proofMatches(base, Buffer.concat([base, Buffer.from([0])]))).toBe(false);
  });
});

describe('parseAddress', () => {
  it('parses IPv4, names and bracketed IPv6', () => {
    expect(parseAddress('127.0.0.1:7001')).toEqual({ host: '127.0.0.1', port: 7001 });
    expect(parseAddress('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseAddress('[::1]:65535')).toEqual({ host: '::1', port: 65_535 });
  });

  it('refuses what is not host:port with BAD_REQUEST', () => {
    for (const bad of ['', '127.0.0.1', ':7001', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:-1', '127.0.0.1:abc', '::1:7001', '[::1]', 'a:1:2', '127.0.0.1:123456']) {
      expect(codeOf(() => parseAddress(bad)), bad).toBe('BAD_REQUEST');
    }
  });

  it('knows loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '10.0.0.1', '::', 'example.com', '128.0.0.1']) expect(isLoopbackHost(host)).toBe(false);
  });
});

describe('request bodies', () => {
  it('narrows an execute body and refuses one without a numeric requestId or a string command', () => {
    expect(parseExecuteBody({ command: 'deposit', args: { amount: 1 }, requestId: 3 })).toEqual({ command: 'deposit', args: { amount: 1 }, requestId: 3 });
    for (const bad of [{ command: 'deposit' }, { command: 'deposit', requestId: '3' }, { requestId: 3 }, { command: 7, requestId: 3 }, { command: null, requestId: 3 }]) {
      expect(codeOf(() => parseExecuteBody(bad)), JSON.stringify(bad)).toBe('BAD_REQUEST');
    }
  });
});

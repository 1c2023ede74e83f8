/**
 * Proves the read operations' bodies on their valid and invalid space (replication/read-bodies.ts):
 * - requests: `readStream`, `readAll` and `readAllPage` bodies are narrowed field by field;
 *   absent options stay absent; a start may be a count, `'start'` or `'end'` and nothing else; a
 *   direction only forwards or backwards; a filter only a map; a `waitMs` that is not a number
 *   means no wait and one past `readWaitMsMax` is cut to it; anything else is BAD_REQUEST;
 * - answers: events, stream slices, pages and consumer lists pass through when well formed
 *   (a `createdAt` date included); an event without a position, version, stream, type or id, a
 *   slice or page without its mark, a mark below -1, or a consumer without a lag is
 *   PROTOCOL_ERROR.
 */
import { describe, expect, it } from 'vitest';
import { readWaitMsMax } from '../../replication/limits.js';
import {
  parseConsumerListAnswer,
  parseEventsAnswer,
  parseReadAllBody,
  parseReadAllPageBody,
  parseReadPageAnswer,
  parseReadStreamBody,
  parseStreamSliceAnswer,
} from '../../replication/read-bodies.js';
import { thrownError } from '../helpers/wal.js';

const codeOf = (action: () => unknown): string => thrownError(action).code;

describe('read requests', () => {
  it('narrows a readStream body, keeping absent options absent', () => {
    expect(parseReadStreamBody({ stream: 's' })).toEqual({ stream: 's', options: {} });
    expect(parseReadStreamBody({ stream: 's', fromVersion: 2, maxCount: 5 })).toEqual({ stream: 's', options: { fromVersion: 2, maxCount: 5 } });
    expect(parseReadStreamBody({ stream: 's', fromVersion: 'end', direction: 'backwards' })).toEqual({ stream: 's', options: { fromVersion: 'end', direction: 'backwards' } });
    for (const bad of [{}, { stream: 1 }, { stream: 's', fromVersion: '2' }, { stream: 's', fromVersion: 'last' }, { stream: 's', maxCount: null }, { stream: 's', direction: 'up' }]) {
      expect(codeOf(() => parseReadStreamBody(bad)), JSON.stringify(bad)).toBe('BAD_REQUEST');
    }
  });

  it('narrows a readAll body and bounds its wait', () => {
    expect(parseReadAllBody({})).toEqual({ options: {}, waitMs: 0 });
    expect(parseReadAllBody({ fromPosition: 4, maxCount: 2, waitMs: 100 })).toEqual({ options: { fromPosition: 4, maxCount: 2 }, waitMs: 100 });
    expect(parseReadAllBody({ fromPosition: 'start', direction: 'forwards' })).toEqual({ options: { fromPosition: 'start', direction: 'forwards' }, waitMs: 0 });
    expect(parseReadAllBody({ waitMs: 'long' }).waitMs).toBe(0);
    expect(parseReadAllBody({ waitMs: readWaitMsMax + 1 }).waitMs).toBe(readWaitMsMax);
    for (const bad of [{ fromPosition: '4' }, { direction: 1 }, { maxCount: 'all' }]) {
      expect(codeOf(() => parseReadAllBody(bad)), JSON.stringify(bad)).toBe('BAD_REQUEST');
    }
  });

  it('narrows a readAllPage body with its direction and filter', () => {
    expect(parseReadAllPageBody({ fromPosition: 'end', direction: 'backwards', maxCount: 3, filter: { eventTypes: ['A'] } })).toEqual({
      options: { fromPosition: 'end', direction: 'backwards', maxCount: 3, filter: { eventTypes: ['A'] } },
      waitMs: 0,
    });
    expect(parseReadAllPageBody({ filter: null })).toEqual({ options: {}, waitMs: 0 });
    for (const bad of [{ filter: 'A' }, { filter: ['A'] }, { fromPosition: -0.5 + 'x' }, { direction: 'sideways' }]) {
      expect(codeOf(() => parseReadAllPageBody(bad)), JSON.stringify(bad)).toBe('BAD_REQUEST');
    }
  });
});

const event = { stream: 's', version: 0, position: 3, type: 'A', id: 'id-1', data: { n: 1 }, createdAt: new Date(5) };

describe('read answers', () => {
  it('passes well-formed answers through', () => {
    expect(parseEventsAnswer([event])).toEqual([event]);
    expect(parseStreamSliceAnswer({ version: -1, events: [] })).toEqual({ version: -1, events: [] });
    expect(parseReadPageAnswer({ events: [event], nextPosition: -1 })).toEqual({ events: [event], nextPosition: -1 });
    const list = { lastPosition: 9, consumers: [{ name: 'c', position: 4, checkpointVersion: 2, lag: 3, updatedAtMs: 7 }, { name: 'd', position: -1, checkpointVersion: 0, lag: 9 }] };
    expect(parseConsumerListAnswer(list)).toEqual(list);
  });

  it('refuses malformed answers with PROTOCOL_ERROR', () => {
    const badEvents: unknown[] = [
      null,
      [null],
      [{ ...event, position: undefined }],
      [{ ...event, version: -1 }],
      [{ ...event, stream: 1 }],
      [{ ...event, type: undefined }],
      [{ ...event, id: 3 }],
      [{ ...event, createdAt: 'yesterday' }],
    ];
    for (const bad of badEvents) expect(codeOf(() => parseEventsAnswer(bad)), JSON.stringify(bad)).toBe('PROTOCOL_ERROR');
    for (const bad of [null, [], { events: [] }, { version: -2, events: [] }, { version: 1, events: 'x' }]) {
      expect(codeOf(() => parseStreamSliceAnswer(bad)), JSON.stringify(bad)).toBe('PROTOCOL_ERROR');
    }
    for (const bad of [{ events: [] }, { events: [], nextPosition: 1.5 }, { nextPosition: 0 }]) {
      expect(codeOf(() => parseReadPageAnswer(bad)), JSON.stringify(bad)).toBe('PROTOCOL_ERROR');
    }
    for (const bad of [{}, { lastPosition: 0, consumers: [{ name: 'c', position: 0, checkpointVersion: 0 }] }, { lastPosition: 0, consumers: [{ name: 'c', position: 0, checkpointVersion: 0, lag: 0, updatedAtMs: 'now' }] }]) {
      expect(codeOf(() => parseConsumerListAnswer(bad)), JSON.stringify(bad)).toBe('PROTOCOL_ERROR');
    }
  });
});

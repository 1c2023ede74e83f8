/**
 * The bodies of the read operations, both ways: what a node accepts in a `readStream`,
 * `readAll` or `readAllPage` request, and what a client accepts in their answers (and in a
 * `consumers` answer). `parseMessage` (protocol.ts) has already checked that a body is a map;
 * these check what it holds. A request's values are checked for shape only (the store checks
 * them against its limits and answers BAD_REQUEST itself); an answer that is not what the
 * operation returns is PROTOCOL_ERROR, so a broken or hostile node cannot hand a caller
 * events without a position or a page that never moves on.
 */
import { txlogError } from '../wal/errors.js';
import type { ConsumerList, ConsumerStatus } from '../engine/consumer-list.js';
import type { Direction, ReadPage } from '../engine/reads.js';
import type { RecordedEvent, StreamSlice } from '../engine/service.js';
import { readWaitMsMax } from './limits.js';

/** Where a read starts: a version or position, or the first or last one. */
export type ReadStart = number | 'start' | 'end';

export interface ReadStreamRequest {
  stream: string;
  options: { fromVersion?: ReadStart; direction?: Direction; maxCount?: number };
}

export interface ReadAllRequest {
  options: { fromPosition?: ReadStart; direction?: Direction; maxCount?: number };
  /** How long to wait for new events when there are none; 0 answers at once. */
  waitMs: number;
}

export interface ReadAllPageRequest {
  options: { fromPosition?: ReadStart; direction?: Direction; maxCount?: number; filter?: Record<string, unknown> };
  /** As for `ReadAllRequest.waitMs`; only a forwards page waits. */
  waitMs: number;
}

function badRequest(message: string): never {
  throw txlogError('BAD_REQUEST', message);
}

/** An optional count: absent, or a number (the store checks its range). */
function optionalCount(body: Record<string, unknown>, name: string): number | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number') badRequest(`${name} must be a non-negative integer`);
  return value;
}

function optionalStart(body: Record<string, unknown>, name: string): ReadStart | undefined {
  const value = body[name];
  if (value === 'start' || value === 'end') return value;
  return optionalCount(body, name);
}

function optionalDirection(body: Record<string, unknown>): Direction | undefined {
  const direction = body['direction'];
  if (direction === undefined || direction === 'forwards' || direction === 'backwards') return direction;
  return badRequest('direction must be forwards or backwards');
}

/** The options of a read: each one present only if the body has it. */
function readOptions(body: Record<string, unknown>, startName: string): { start?: ReadStart; direction?: Direction; maxCount?: number } {
  const options: { start?: ReadStart; direction?: Direction; maxCount?: number } = {};
  const start = optionalStart(body, startName);
  const direction = optionalDirection(body);
  const maxCount = optionalCount(body, 'maxCount');
  if (start !== undefined) options.start = start;
  if (direction !== undefined) options.direction = direction;
  if (maxCount !== undefined) options.maxCount = maxCount;
  return options;
}

export function parseReadStreamBody(body: Record<string, unknown>): ReadStreamRequest {
  const stream = body['stream'];
  if (typeof stream !== 'string') badRequest('readStream needs a stream name (a string)');
  const { start, ...rest } = readOptions(body, 'fromVersion');
  return { stream, options: start === undefined ? rest : { fromVersion: start, ...rest } };
}

/** A `waitMs` that is not a number means no wait; a longer one is cut to `readWaitMsMax`. */
export function parseReadAllBody(body: Record<string, unknown>): ReadAllRequest {
  const { start, ...rest } = readOptions(body, 'fromPosition');
  return { options: start === undefined ? rest : { fromPosition: start, ...rest }, waitMs: waitMsOf(body) };
}

/** A page of the log, filtered or not: the store checks the filter's fields. */
export function parseReadAllPageBody(body: Record<string, unknown>): ReadAllPageRequest {
  const { options, waitMs } = parseReadAllBody(body);
  const page: ReadAllPageRequest['options'] = options;
  const filter = body['filter'];
  if (filter !== undefined && filter !== null) {
    if (typeof filter !== 'object' || Array.isArray(filter)) badRequest('filter must be an object');
    page.filter = filter as Record<string, unknown>;
  }
  return { options: page, waitMs };
}

function waitMsOf(body: Record<string, unknown>): number {
  const waitMs = body['waitMs'];
  return Math.min(typeof waitMs === 'number' && waitMs >= 0 ? waitMs : 0, readWaitMsMax);
}

// ---------------------------------------------------------------- answers (client side)

function malformed(what: string): never {
  throw txlogError('PROTOCOL_ERROR', `malformed answer: ${what}`);
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
/** A version or position, or -1 for none. */
const isMark = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= -1;
const isCount = (value: unknown): value is number => isMark(value) && value >= 0;

function parseEvent(value: unknown): RecordedEvent {
  if (!isRecord(value)) malformed('an event must be a map');
  const { stream, version, position, type, id, createdAt } = value;
  if (typeof stream !== 'string' || typeof type !== 'string' || typeof id !== 'string') malformed('an event needs a stream, a type and an id');
  if (!isCount(version) || !isCount(position)) malformed('an event needs a version and a position');
  if (createdAt !== undefined && !(createdAt instanceof Date)) malformed('createdAt must be a date');
  return value as unknown as RecordedEvent;
}

export function parseEventsAnswer(value: unknown): RecordedEvent[] {
  if (!Array.isArray(value)) malformed('events must be a list');
  return value.map(parseEvent);
}

export function parseStreamSliceAnswer(value: unknown): StreamSlice {
  if (!isRecord(value) || !isMark(value['version'])) malformed('a stream slice needs a version');
  return { version: value['version'], events: parseEventsAnswer(value['events']) };
}

export function parseReadPageAnswer(value: unknown): ReadPage {
  if (!isRecord(value) || !isMark(value['nextPosition'])) malformed('a page needs its next position');
  return { events: parseEventsAnswer(value['events']), nextPosition: value['nextPosition'] };
}

function parseConsumerStatus(value: unknown): ConsumerStatus {
  if (!isRecord(value)) malformed('a consumer must be a map');
  const { name, position, checkpointVersion, lag, updatedAtMs } = value;
  if (typeof name !== 'string' || !isMark(position) || !isCount(checkpointVersion) || !isCount(lag)) malformed('a consumer needs a name, a position, a version and a lag');
  const status: ConsumerStatus = { name, position, checkpointVersion, lag };
  if (updatedAtMs !== undefined) {
    if (!isCount(updatedAtMs)) malformed('updatedAtMs must be a count');
    status.updatedAtMs = updatedAtMs;
  }
  return status;
}

export function parseConsumerListAnswer(value: unknown): ConsumerList {
  if (!isRecord(value) || !isMark(value['lastPosition']) || !Array.isArray(value['consumers'])) malformed('a consumer list needs a last position and a list');
  return { lastPosition: value['lastPosition'], consumers: value['consumers'].map(parseConsumerStatus) };
}

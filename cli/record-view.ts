/**
 * How one WAL record is shown by `txlog inspect --records`: a JSON object (the contract in
 * DESIGN.md, "Public interface") or a line an operator reads, and the `--stream`/`--client`
 * filters. Pure functions of the frame and its decoded payload.
 */
import { decodePayload, framePayload } from '../wal/format.js';
import type { ScannedFrame } from '../wal/segment-walker.js';
import { recordTypeName, recordTypes } from '../engine/records.js';

/** A record read from a segment, its payload decoded. */
export interface RecordView {
  lsn: number;
  epoch: number;
  type: number;
  segment: string;
  offset: number;
  size: number;
  /** The decoded payload; undefined when `payloadError` says why it could not be decoded. */
  payload: unknown;
  payloadError?: string;
}

export function viewRecord(frame: ScannedFrame, segment: string): RecordView {
  const view: RecordView = {
    lsn: frame.lsn,
    epoch: frame.epoch,
    type: frame.type,
    segment,
    offset: frame.offset,
    size: frame.frameBytes,
    payload: undefined,
  };
  try {
    view.payload = decodePayload(framePayload(frame.frame));
  } catch (error) {
    // The checksum held, so these are the bytes the writer wrote; show the rest of the record.
    view.payloadError = `payload is not valid msgpack: ${error instanceof Error ? error.message : String(error)}`;
  }
  return view;
}

export interface RecordFilter {
  /** Only commit records that write to this stream. */
  stream?: string;
  /** Only commit and journal records of this client. */
  clientId?: string;
}

export function matchesFilter(view: RecordView, filter: RecordFilter): boolean {
  const fields = payloadFields(view);
  if (filter.clientId !== undefined && fields?.['clientId'] !== filter.clientId) return false;
  if (filter.stream !== undefined) {
    if (view.type !== recordTypes.commit) return false;
    const writes = fields?.['events'];
    if (!Array.isArray(writes)) return false;
    return writes.some((write: unknown) => isObject(write) && write['stream'] === filter.stream);
  }
  return true;
}

const frameKeys = new Set(['lsn', 'epoch', 'type', 'segment', 'offset', 'size']);

/**
 * The JSON object for `--records --json`: the frame's fields, then the payload's fields
 * flattened in. A payload that is not a map, or a record of an unknown type, goes under
 * `payload`. A payload field named like a frame field (an epoch record's `epoch`) is left out
 * when equal to it and kept under `payload` when not, so nothing is lost or overwritten.
 */
export function recordJson(view: RecordView): Record<string, unknown> {
  const json: Record<string, unknown> = {
    lsn: view.lsn,
    epoch: view.epoch,
    type: recordTypeName(view.type),
    segment: view.segment,
    offset: view.offset,
    size: view.size,
  };
  if (view.payloadError !== undefined) {
    json['payloadError'] = view.payloadError;
    return json;
  }
  const fields = payloadFields(view);
  if (fields === undefined) {
    json['payload'] = jsonSafe(view.payload);
    return json;
  }
  const clashing: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (!frameKeys.has(key)) json[key] = jsonSafe(value);
    else if (value !== json[key]) clashing[key] = jsonSafe(value);
  }
  if (Object.keys(clashing).length > 0) json['payload'] = clashing;
  return json;
}

/** The payload as a field map, for the record types the engine defines. */
function payloadFields(view: RecordView): Record<string, unknown> | undefined {
  const known = view.type === recordTypes.commit || view.type === recordTypes.journal || view.type === recordTypes.epoch;
  return known && isObject(view.payload) ? view.payload : undefined;
}

/** One line: LSN, epoch, type, frame bytes, then what says most about the record. */
export function recordLine(view: RecordView): string[] {
  return [String(view.lsn), String(view.epoch), recordTypeName(view.type), String(view.size), recordDetail(view)];
}

export const recordLineHeadings = ['LSN', 'EPOCH', 'TYPE', 'BYTES', 'DETAIL'];

function recordDetail(view: RecordView): string {
  if (view.payloadError !== undefined) return view.payloadError;
  const fields = payloadFields(view);
  if (fields === undefined) return `payload ${short(view.payload)}`;
  const client = `client=${text(fields['clientId'])} request=${text(fields['requestId'])}`;
  switch (view.type) {
    case recordTypes.commit: {
      const outcome = fields['error'] !== undefined ? `error=${errorCode(fields['error'])}` : 'ok';
      return `${client} command=${text(fields['command'])} streams=${streamsOf(fields['events'])} ${outcome}`;
    }
    case recordTypes.journal: {
      const outcome = fields['error'] !== undefined ? `error=${errorCode(fields['error'])}` : 'ok';
      return `${client} call=${text(fields['callIndex'])} name=${text(fields['name'])} ${outcome}`;
    }
    default:
      return `epoch=${text(fields['epoch'])} fromLsn=${text(fields['fromLsn'])} node=${text(fields['nodeId'])}`;
  }
}

function streamsOf(writes: unknown): string {
  if (!Array.isArray(writes) || writes.length === 0) return '-';
  return writes.map((write: unknown) => (isObject(write) ? text(write['stream']) : '?')).join(',');
}

function errorCode(error: unknown): string {
  return isObject(error) ? text(error['code']) : text(error);
}

function text(value: unknown): string {
  if (value === undefined) return '-';
  return typeof value === 'string' ? value : short(value);
}

const detailCharactersMax = 80;

function short(value: unknown): string {
  const json = JSON.stringify(jsonSafe(value)) ?? 'undefined';
  return json.length > detailCharactersMax ? `${json.slice(0, detailCharactersMax - 3)}...` : json;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Deeper than this, a decoded payload is shown as a marker (msgpack allows any nesting). */
const jsonDepthMax = 64;

/**
 * What msgpack can decode but JSON cannot carry, made explicit: binary as
 * `{ "$binary": base64 }`, integers beyond 2^53 as decimal strings, maps as objects, dates as
 * ISO strings.
 */
export function jsonSafe(value: unknown, depth = 0): unknown {
  if (depth > jsonDepthMax) return '[nested too deep]';
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return { $binary: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Array.isArray(value)) return value.map((item: unknown) => jsonSafe(item, depth + 1));
  if (value instanceof Map) {
    const object: Record<string, unknown> = {};
    for (const [key, item] of value) object[String(key)] = jsonSafe(item, depth + 1);
    return object;
  }
  if (typeof value === 'object' && value !== null) {
    const object: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) object[key] = jsonSafe(item, depth + 1);
    return object;
  }
  return value;
}

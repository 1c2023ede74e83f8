/**
 * What `txlog inspect` was asked to do, once its arguments are parsed (`inspect.ts`): the mode
 * and what that mode needs. Each mode's file (`inspect-report.ts`, `inspect-records.ts`) takes
 * its own part of it, so the modes and the parser do not import each other.
 */
export type InspectRequest = ReportRequest | RecordsRequest;

/** The summary and `--verify`. */
export interface ReportRequest {
  mode: 'summary' | 'verify';
  dir: string;
  json: boolean;
  strict: boolean;
}

/** `--records`. */
export interface RecordsRequest {
  mode: 'records';
  dir: string;
  json: boolean;
  strict: boolean;
  fromLsn: number;
  /** Infinity when no --limit was given. */
  limit: number;
  stream?: string;
  clientId?: string;
}

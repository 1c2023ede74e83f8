/** Loading a service module named on the command line (`--service FILE`). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { txlogError } from '../wal/errors.js';
import { checkService, type Service } from '../engine/service.js';

/** Imports FILE (an ESM module) and checks that its default export is a service. */
export async function loadService(file: string): Promise<Service> {
  const absolute = path.resolve(file);
  if (!fs.existsSync(absolute)) throw txlogError('NOT_FOUND', `no service module at ${absolute}`);
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    throw txlogError('BAD_REQUEST', `cannot load the service module ${absolute}: ${String(error)}`, {}, error);
  }
  return checkService(module['default'], absolute);
}

/** The shared secret from --secret-file, else TXLOG_SECRET, else none (loopback only). */
export function readSecret(file: string | undefined): string | undefined {
  if (file !== undefined) {
    try {
      const secret = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      if (secret.length === 0) throw txlogError('USAGE', `the secret file ${file} is empty`);
      return secret;
    } catch (error) {
      if (error instanceof Error && error.name === 'TxlogError') throw error;
      throw txlogError('NOT_FOUND', `cannot read the secret file ${file}: ${String(error)}`);
    }
  }
  const fromEnvironment = process.env['TXLOG_SECRET'];
  return fromEnvironment === undefined || fromEnvironment === '' ? undefined : fromEnvironment;
}

export function splitList(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
}

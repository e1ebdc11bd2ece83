import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { parseSettings, type Settings } from './settings.ts';

/**
 * Reads `.env` from `cwd` when present (values already in the environment win), then validates.
 * The only place in aggjobs that reads `process.env`.
 */
export function loadSettings(cwd: string = process.cwd(), env: NodeJS.ProcessEnv = process.env): Settings {
  const file = resolve(cwd, '.env');
  const fromFile = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
  return parseSettings({ ...fromFile, ...env });
}

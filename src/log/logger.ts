import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/index.ts';

export type { Logger };

/**
 * JSON lines to stdout. In a terminal during development the lines are made readable with
 * pino-pretty when it is installed (a dev dependency); production always gets plain JSON.
 */
export function createLogger(level: LogLevel, options: { pretty?: boolean; name?: string } = {}): Logger {
  const base = { level, name: options.name ?? 'aggjobs', redact: ['password', '*.password', 'url', '*.url'] };
  if (options.pretty === true) {
    try {
      return pino({
        ...base,
        transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss' } },
      });
    } catch {
      // pino-pretty is absent in a production install: plain JSON it is.
    }
  }
  return pino(base);
}

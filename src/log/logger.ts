import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/index.ts';

export type { Logger };

/** One log line as a run keeps it (the dashboard's run page). */
export interface LogLine {
  time: string;
  level: string;
  msg: string;
  /** The line's own fields (the first argument when it is an object), JSON-safe. */
  data?: Record<string, unknown>;
}

const levelNames: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const levelValues: Record<string, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};
/** Fields every line has; what is left are the line's own. */
const common = new Set([
  'time',
  'level',
  'msg',
  'pid',
  'hostname',
  'name',
  'worker',
  'task',
  'runId',
  'attempt',
]);

/** A pino JSON line as a kept LogLine. */
function toLine(json: string): LogLine | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const data = Object.fromEntries(Object.entries(parsed).filter(([k]) => !common.has(k)));
  return {
    time: new Date(typeof parsed.time === 'number' ? parsed.time : Date.now()).toISOString(),
    level: levelNames[Number(parsed.level)] ?? String(parsed.level),
    msg: typeof parsed.msg === 'string' ? parsed.msg : '',
    ...(Object.keys(data).length > 0 ? { data } : {}),
  };
}

/**
 * JSON lines to stdout. In a terminal during development the lines are made readable with
 * pino-pretty when it is installed (a dev dependency); production always gets plain JSON.
 */
export function createLogger(
  level: LogLevel,
  options: { pretty?: boolean; name?: string; onLine?: (line: LogLine) => void } = {},
): Logger {
  const base = { level, name: options.name ?? 'aggjobs', redact: ['password', '*.password', 'url', '*.url'] };
  const onLine = options.onLine;
  if (onLine !== undefined) {
    // Two destinations: stdout at the configured level, and `onLine` (a run's kept lines) at info
    // or finer, so the run page has its lines even when the worker's log is quieter. Redaction
    // happens before either sees the line.
    const keep = Math.min(levelValues[level] ?? 30, 30);
    const streams: pino.StreamEntry[] = [
      { level: levelNames[keep] as pino.Level, stream: { write: (json: string) => void emit(json, onLine) } },
    ];
    if (level !== 'silent') streams.push({ level, stream: process.stdout });
    return pino(
      { ...base, level: levelNames[Math.min(keep, levelValues[level] ?? 30)] ?? 'info' },
      pino.multistream(streams),
    );
  }
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

function emit(json: string, onLine: (line: LogLine) => void): void {
  const line = toLine(json);
  if (line !== undefined) onLine(line);
}

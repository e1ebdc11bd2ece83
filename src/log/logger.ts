import { pino, type Logger } from 'pino';
import { createSecretScrubber, type LogLevel, type SecretScrubber, type Settings } from '../config/index.ts';
import { prettyStream } from './pretty-stream.ts';

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

/** A pino JSON line as a kept LogLine, with the run it belongs to (its `runId` field) if any. */
function toLine(json: string): { line: LogLine; runId: string | undefined } | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const data = Object.fromEntries(Object.entries(parsed).filter(([k]) => !common.has(k)));
  const line: LogLine = {
    time: new Date(typeof parsed.time === 'number' ? parsed.time : Date.now()).toISOString(),
    level: levelNames[Number(parsed.level)] ?? String(parsed.level),
    msg: typeof parsed.msg === 'string' ? parsed.msg : '',
    ...(Object.keys(data).length > 0 ? { data } : {}),
  };
  return { line, runId: typeof parsed.runId === 'string' ? parsed.runId : undefined };
}

/** The format of the log: LOG_FORMAT when set, else pretty when stdout is a terminal, else JSON. */
export function resolveLogFormat(
  format: Settings['logFormat'],
  stdout: { isTTY?: boolean } = process.stdout,
): NonNullable<Settings['logFormat']> {
  return format ?? (stdout.isTTY === true ? 'pretty' : 'json');
}

/**
 * Lines to stdout: JSON (default), or with `format: 'pretty'` human lines (coloured in a terminal)
 * written by a small formatter (pretty-stream.ts), so a production install needs no pino-pretty.
 */
export function createLogger(
  level: LogLevel,
  options: {
    format?: Settings['logFormat'];
    name?: string;
    /** Each line at info or finer, with the `runId` field of the line (a run's logger has one). */
    onLine?: (line: LogLine, runId: string | undefined) => void;
    /** Hides secrets in every line (message, fields, errors); settingsScrubber(settings) knows the most. */
    scrub?: SecretScrubber;
  } = {},
): Logger {
  const scrub = options.scrub ?? createSecretScrubber();
  const base = {
    level,
    name: options.name ?? 'aggjobs',
    hooks: { streamWrite: (json: string) => scrubLine(json, scrub) },
  };
  const onLine = options.onLine;
  const stdout = options.format === 'pretty' ? prettyStream(process.stdout) : process.stdout;
  if (onLine !== undefined) {
    // Two destinations: stdout at the configured level, and `onLine` (a run's kept lines) at info
    // or finer, so the run page has its lines even when the worker's log is quieter. Both get the
    // scrubbed line.
    const keep = Math.min(levelValues[level] ?? 30, 30);
    const streams: pino.StreamEntry[] = [
      { level: levelNames[keep] as pino.Level, stream: { write: (json: string) => void emit(json, onLine) } },
    ];
    if (level !== 'silent') streams.push({ level, stream: stdout });
    return pino(
      { ...base, level: levelNames[Math.min(keep, levelValues[level] ?? 30)] ?? 'info' },
      pino.multistream(streams),
    );
  }
  return options.format === 'pretty' ? pino(base, stdout) : pino(base);
}

/** A JSON line with its secrets hidden; the very same text when it has none. */
function scrubLine(json: string, scrub: SecretScrubber): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return scrub.text(json);
  }
  const scrubbed = JSON.stringify(scrub.value(parsed));
  return scrubbed === JSON.stringify(parsed) ? json : `${scrubbed}\n`;
}

function emit(json: string, onLine: (line: LogLine, runId: string | undefined) => void): void {
  const parsed = toLine(json);
  if (parsed !== undefined) onLine(parsed.line, parsed.runId);
}

/** Lines a run keeps for its run page: the first this many, then one line saying where the rest are. */
export const MAX_RUN_LINES = 200;

/** Adds `line` to a run's kept lines, up to MAX_RUN_LINES. */
export function keepRunLine(lines: LogLine[], line: LogLine): void {
  if (lines.length < MAX_RUN_LINES) lines.push(line);
  else if (lines.length === MAX_RUN_LINES) {
    lines.push({ time: line.time, level: 'warn', msg: `… more lines in the worker's log (runId)` });
  }
}

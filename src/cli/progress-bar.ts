import { compactNumber } from '../format/index.ts';

/** A progress display for long loads (seed, backfill); dependency-free. */
export interface ProgressBar {
  /** `done` units of `total` are finished. */
  update(done: number): void;
  /** Draws the final state and ends the line. */
  finish(): void;
}

export interface ProgressBarOptions {
  label: string;
  total: number;
  /** Default: standard error, so the bar never mixes with a command's output. */
  stream?: NodeJS.WriteStream;
  /** For tests: a clock in milliseconds. */
  now?: () => number;
}

const WIDTH = 30;
/** A terminal is redrawn at most this often (ms). */
const REDRAW_MS = 100;

/** 75 → "1m15s", 4000 → "1h06m". */
export function shortDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line: label, bar, percentage, done/total, rate per second and time left (or taken). */
export function progressLine(
  label: string,
  done: number,
  total: number,
  elapsedMs: number,
  finished: boolean,
): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.round(fraction * WIDTH);
  const seconds = elapsedMs / 1000;
  const rate = seconds > 0 ? done / seconds : 0;
  const time = finished
    ? `in ${shortDuration(seconds)}`
    : `ETA ${rate > 0 ? shortDuration((total - done) / rate) : '?'}`;
  return (
    `${label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` +
    `${compactNumber(done)}/${compactNumber(total)} ${compactNumber(rate)}/s ${time}`
  );
}

/**
 * A progress bar. On a terminal it redraws one line in place (\r); elsewhere (a log file, CI) it
 * writes a plain line each time another 10 % is done, and one at the end.
 */
export function createProgressBar(options: ProgressBarOptions): ProgressBar {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? (() => performance.now());
  const tty = stream.isTTY === true;
  const started = now();
  let done = 0;
  let lastDraw = -Infinity;
  let lastDecile = 0;
  let finished = false;
  const line = (end: boolean): string =>
    progressLine(options.label, done, options.total, now() - started, end);
  return {
    update(value: number): void {
      if (finished) return;
      done = value;
      if (tty) {
        if (now() - lastDraw < REDRAW_MS) return;
        lastDraw = now();
        stream.write(`\r${line(false)}\x1b[K`);
        return;
      }
      const decile = options.total > 0 ? Math.floor((10 * done) / options.total) : 10;
      if (decile > lastDecile && decile < 10) {
        lastDecile = decile;
        stream.write(`${line(false)}\n`);
      }
    },
    finish(): void {
      if (finished) return;
      finished = true;
      stream.write(tty ? `\r${line(true)}\x1b[K\n` : `${line(true)}\n`);
    },
  };
}

/** Level number → label and ANSI colour of a pretty line. */
const levels: Record<number, { label: string; colour: string }> = {
  10: { label: 'TRACE', colour: '90' },
  20: { label: 'DEBUG', colour: '36' },
  30: { label: 'INFO ', colour: '32' },
  40: { label: 'WARN ', colour: '33' },
  50: { label: 'ERROR', colour: '31' },
  60: { label: 'FATAL', colour: '35' },
};
/** Fields shown in the line's head, or not at all; the rest follow the message as key=value. */
const hidden = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'name', 'v']);

function field(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as a human one: `12:03:04 INFO  worker: message key=value`, coloured by level
 * when `colours` is on; an error's stack on the lines after. A line that is not JSON passes as is.
 */
export function formatPretty(json: string, colours: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const paint = (code: string, text: string): string => (colours ? `\x1b[${code}m${text}\x1b[0m` : text);
  const time = new Date(typeof entry.time === 'number' ? entry.time : Date.now());
  const clock = [time.getHours(), time.getMinutes(), time.getSeconds()]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
  const level = levels[Number(entry.level)] ?? { label: String(entry.level), colour: '0' };
  const name = typeof entry.name === 'string' ? `${paint('1', entry.name)}: ` : '';
  let stack = '';
  const rest = Object.entries(entry)
    .filter(([key]) => !hidden.has(key))
    .map(([key, value]) => {
      if (key === 'err' && typeof value === 'object' && value !== null && 'stack' in value) {
        stack = `\n${paint('90', String(value.stack))}`;
        return `err=${field('message' in value ? value.message : value)}`;
      }
      return `${key}=${field(value)}`;
    });
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  const tail = rest.length > 0 ? ` ${paint('90', rest.join(' '))}` : '';
  return `${paint('90', clock)} ${paint(level.colour, level.label)} ${name}${msg}${tail}${stack}\n`;
}

/** A pino destination that writes pretty lines to `out`. */
export function prettyStream(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  colours = out.isTTY === true,
): { write(json: string): void } {
  return { write: (json) => void out.write(formatPretty(json, colours)) };
}

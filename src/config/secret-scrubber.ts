import { passwordSpans, redact } from './redact.ts';
import type { Settings } from './settings.ts';

/**
 * Removes secrets from anything aggjobs shows or writes: log lines (message, fields, an error's
 * message and stack) and the dashboard's answers alike. A task's error may quote a connection
 * string, a result may echo a setting. Hidden: every password in a URL or a `…password=` parameter
 * (redact.ts, linear in the text), the known secrets wherever they appear, and the whole value of
 * a field whose name says it is a credential.
 */
export interface SecretScrubber {
  text(value: string): string;
  /** A JSON value with every string scrubbed and every credential field's string hidden. */
  value<T>(value: T): T;
}

const SECRET_NAME = /password|passwd|secret|token/i;

/** Whether a field or setting named so holds a credential (shown as set or not, never its value). */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** The passwords in `url` as written and decoded (`p%40ss` is `p@ss` to the server). */
function passwordsOf(url: string): string[] {
  return passwordSpans(url).flatMap(([start, end]) => {
    const written = url.slice(start, end);
    try {
      return [written, decodeURIComponent(written)];
    } catch {
      return [written];
    }
  });
}

export function createSecretScrubber(
  known: { urls?: ReadonlyArray<string | undefined>; secrets?: ReadonlyArray<string | undefined> } = {},
): SecretScrubber {
  const secrets = [
    ...(known.urls ?? []).flatMap((u) => (u === undefined ? [] : passwordsOf(u))),
    ...(known.secrets ?? []),
  ]
    .filter((s): s is string => s !== undefined && s.length >= 4)
    // Longest first, so a secret containing another is replaced whole.
    .sort((a, b) => b.length - a.length);
  const text = (value: string): string => {
    let out = redact(value);
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  };
  const walk = (value: unknown, key = ''): unknown => {
    if (typeof value === 'string') return key !== '' && isSecretName(key) ? '***' : text(value);
    if (Array.isArray(value)) return value.map((v) => walk(v));
    if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]));
    }
    return value;
  };
  return { text, value: <T>(value: T) => walk(value) as T };
}

/** The scrubber of a process running with `settings`: its URLs' passwords and the dashboard's credentials. */
export function settingsScrubber(
  settings: Settings,
  urls: ReadonlyArray<string | undefined> = [],
): SecretScrubber {
  return createSecretScrubber({
    urls: [settings.databaseUrl, settings.brokerUrl, settings.resultBackendUrl, ...urls],
    secrets: [settings.dashboardPassword, settings.dashboardReadonlyPassword, settings.dashboardToken],
  });
}

import { redactUrlPasswords } from './url-passwords.ts';

/**
 * Removes secrets from anything the dashboard sends out: a task's error may quote a connection
 * string, a result may echo a setting. Known secrets (the database and broker passwords, the
 * dashboard's credentials) are replaced wherever they appear, and so is the password of any URL.
 */
export interface SecretScrubber {
  text(value: string): string;
  /** A JSON value with every string scrubbed. */
  value<T>(value: T): T;
}

function passwordOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password === '' ? undefined : password;
  } catch {
    return undefined;
  }
}

export function createSecretScrubber(sources: {
  urls: ReadonlyArray<string | undefined>;
  secrets: ReadonlyArray<string | undefined>;
}): SecretScrubber {
  const secrets = [...sources.urls.map(passwordOf), ...sources.secrets]
    .filter((s): s is string => s !== undefined && s.length >= 4)
    // Longest first, so a secret containing another is replaced whole.
    .sort((a, b) => b.length - a.length);
  const text = (value: string): string => {
    let out = redactUrlPasswords(value);
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    }
    return value;
  };
  return { text, value: <T>(value: T) => walk(value) as T };
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError, type Settings } from '../../config/index.ts';

export type Role = 'admin' | 'readonly';

/** The settings the dashboard's auth reads (DASHBOARD_USER, _PASSWORD, _TOKEN, _READONLY_USER, _READONLY_PASSWORD). */
export type DashboardAuthSettings = Pick<
  Settings,
  | 'appEnv'
  | 'dashboardUser'
  | 'dashboardPassword'
  | 'dashboardToken'
  | 'dashboardReadonlyUser'
  | 'dashboardReadonlyPassword'
>;

export interface Credentials {
  readonly users: ReadonlyArray<{ readonly name: string; readonly password: string; readonly role: Role }>;
  readonly tokens: ReadonlyArray<{ readonly token: string; readonly role: Role }>;
}

export function credentialsFrom(settings: DashboardAuthSettings): Credentials {
  const users: Array<{ name: string; password: string; role: Role }> = [];
  if (settings.dashboardUser !== undefined && settings.dashboardPassword !== undefined) {
    users.push({ name: settings.dashboardUser, password: settings.dashboardPassword, role: 'admin' });
  }
  if (settings.dashboardReadonlyUser !== undefined && settings.dashboardReadonlyPassword !== undefined) {
    users.push({
      name: settings.dashboardReadonlyUser,
      password: settings.dashboardReadonlyPassword,
      role: 'readonly',
    });
  }
  const tokens =
    settings.dashboardToken === undefined ? [] : [{ token: settings.dashboardToken, role: 'admin' as const }];
  return { users, tokens };
}

export function authEnabled(credentials: Credentials): boolean {
  return credentials.users.length > 0 || credentials.tokens.length > 0;
}

/**
 * In production the dashboard must not run open: throws ConfigError (exit code 2 from the CLI) when
 * no admin credentials are configured.
 */
export function assertCredentialsForEnv(settings: DashboardAuthSettings): void {
  if (settings.appEnv !== 'production') return;
  if (settings.dashboardUser === undefined || settings.dashboardPassword === undefined) {
    throw new ConfigError(
      'DASHBOARD_USER',
      'set, with DASHBOARD_PASSWORD, when APP_ENV=production (the dashboard refuses to run without credentials)',
      '',
    );
  }
}

/**
 * Equality that takes the same time whatever the inputs: both sides are hashed first, so the
 * comparison covers equal lengths and leaks neither the length nor a matching prefix.
 */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/** The role of a user/password pair, or undefined. Every user is compared (no early exit). */
export function checkPassword(credentials: Credentials, name: string, password: string): Role | undefined {
  let role: Role | undefined;
  for (const user of credentials.users) {
    const nameOk = safeEqual(user.name, name);
    const passwordOk = safeEqual(user.password, password);
    if (nameOk && passwordOk && role === undefined) role = user.role;
  }
  return role;
}

export function checkToken(credentials: Credentials, token: string): Role | undefined {
  let role: Role | undefined;
  for (const t of credentials.tokens) {
    if (safeEqual(t.token, token) && role === undefined) role = t.role;
  }
  return role;
}

import type { Settings } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import type { Logger } from '../log/index.ts';
import type { Control, Runtime } from '../runtime/index.ts';
import type { Role } from './auth/index.ts';

/** What the dashboard is given: it opens nothing itself, so tests pass their own. */
export interface DashboardDeps {
  pool: Pool;
  settings: Settings;
  runtime: Runtime;
  /** Default: createControl(runtime). */
  control?: Control;
  logger: Logger;
  /** The clock of the login brake, in milliseconds. Default: Date.now (tests pass their own). */
  clock?: () => number;
}

export interface AuthInfo {
  role: Role;
  via: 'basic' | 'bearer' | 'none';
  user: string | undefined;
}

/** Hono's environment of every route: who is asking, and the page's CSRF token. */
export interface DashboardEnv {
  Variables: {
    auth: AuthInfo;
    csrfToken: string;
  };
}

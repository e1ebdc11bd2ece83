import { EmbeddedPostgresError, SqlState, sqlStateOf } from '../db/index.ts';
import { PortInUseError } from '../web/index.ts';
import { OperationalError } from './operational.error.ts';

/** Error codes of a connection that never got to PostgreSQL (node's net/dns errors). */
const unreachable = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNRESET',
]);

/**
 * The error a database probe or query threw, as one line that says what happened and what to do,
 * or undefined when it is not a connection problem. `where` names the database (no secrets).
 */
export function explainDatabaseError(error: unknown, where: string): OperationalError | undefined {
  const code = sqlStateOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (code !== undefined && unreachable.has(code)) {
    return new OperationalError(
      `cannot reach ${where} (${code}): start PostgreSQL, or set DATABASE_URL to a server that runs`,
      { cause: error },
    );
  }
  if (code === SqlState.invalidCatalogName) {
    return new OperationalError(
      `${message} (${where}): create it (createdb <name>), or fix the database name in DATABASE_URL`,
      { cause: error },
    );
  }
  if (code === '28P01' || code === '28000') {
    return new OperationalError(`${message} (${where}): fix the user or password in DATABASE_URL`, {
      cause: error,
    });
  }
  if (code === SqlState.cannotConnectNow || code === SqlState.adminShutdown) {
    return new OperationalError(`${message} (${where}): wait for PostgreSQL to be up, then try again`, {
      cause: error,
    });
  }
  return undefined;
}

/**
 * What the program prints for an expected failure (one line, exit 1 or 2), or undefined for an
 * unexpected one (which keeps its stack).
 */
export function explainFailure(error: unknown): { message: string; exitCode: 1 | 2 } | undefined {
  if (error instanceof OperationalError || error instanceof EmbeddedPostgresError) {
    return { message: error.message, exitCode: 1 };
  }
  // Choosing another port is a configuration change, like a bad option: 2.
  if (error instanceof PortInUseError) return { message: error.message, exitCode: 2 };
  const db = explainDatabaseError(error, 'PostgreSQL');
  if (db !== undefined) return { message: db.message, exitCode: 1 };
  return undefined;
}

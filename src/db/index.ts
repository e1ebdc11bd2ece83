export {
  aggjobsTypes,
  createPool,
  hearConnectionErrors,
  releaseClient,
  sessionStyles,
  sessionStylesHook,
  type Pool,
  type PoolClient,
  type Queryable,
} from './pool.ts';
export { withTransaction, inTransaction } from './transaction.ts';
export {
  migrate,
  migrationStatus,
  pendingMigrations,
  describePending,
  readMigrations,
  MigrationMismatchError,
  type Migration,
} from './migrator.ts';
export {
  startEmbeddedPostgres,
  findRunningEmbeddedPostgres,
  type EmbeddedDatabase,
} from './embedded-postgres.ts';
export { EmbeddedPostgresError } from './embedded-layout.ts';
export { connectDatabase, type Database } from './connect.ts';
export { SqlState, sqlStateOf } from './sqlstate.ts';
export { oldestOpenTransaction } from './oldest-transaction.ts';

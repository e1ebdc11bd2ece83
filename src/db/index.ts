export {
  aggjobsTypes,
  createPool,
  releaseClient,
  type Pool,
  type PoolClient,
  type Queryable,
  type PoolOptions,
} from './pool.ts';
export { withTransaction, inTransaction, type IsolationLevel } from './transaction.ts';
export {
  migrate,
  migrationStatus,
  readMigrations,
  migrationsDir,
  MigrationMismatchError,
  type Migration,
  type MigrationStatus,
} from './migrator.ts';
export {
  startEmbeddedPostgres,
  findRunningEmbeddedPostgres,
  type EmbeddedDatabase,
} from './embedded-postgres.ts';
export { EmbeddedPostgresError } from './embedded-layout.ts';
export { connectDatabase, type Database } from './connect.ts';
export { SqlState, sqlStateOf } from './sqlstate.ts';
export { oldestOpenTransaction, type OpenTransaction } from './oldest-transaction.ts';

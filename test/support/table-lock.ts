import pg from 'pg';

/**
 * Holds ACCESS EXCLUSIVE on tables from a session of its own, in an open transaction, as another
 * application's long transaction would: `hold` takes the lock, `release` (in afterEach) ends it.
 */
export function tableLock(url: () => string): {
  hold(table: string): Promise<void>;
  release(): Promise<void>;
} {
  let holder: pg.Client | undefined;
  return {
    async hold(table) {
      holder = new pg.Client({ connectionString: url() });
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    },
    async release() {
      await holder?.query('ROLLBACK');
      await holder?.end();
      holder = undefined;
    },
  };
}

import { Command } from 'commander';
import { migrationStatus } from '../../db/index.ts';
import { prepareDatabase } from '../../rollups/index.ts';
import { openContext } from '../context.ts';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply pending database migrations, then install the rollups and views')
    .option('--status', 'list applied and pending migrations, change nothing')
    .action(async (options: { status?: boolean }) => {
      const ctx = await openContext({
        name: 'migrate',
        logLevel: options.status === true ? 'warn' : undefined,
      });
      try {
        if (options.status === true) {
          for (const m of await migrationStatus(ctx.db.pool)) {
            const state = m.appliedAt === undefined ? 'pending' : `applied ${m.appliedAt.toISOString()}`;
            process.stdout.write(`${String(m.version).padStart(6, '0')}  ${m.name.padEnd(32)} ${state}\n`);
          }
          return;
        }
        const { applied, viewsCreated, partitionsCreated } = await prepareDatabase(
          ctx.db.pool,
          ctx.settings,
          {
            onApply: (m) => ctx.logger.info(`applying migration ${m.version} ${m.name}`),
          },
        );
        ctx.logger.info(
          applied.length === 0 ? 'database is up to date' : `applied ${applied.length} migration(s)`,
        );
        if (viewsCreated.length > 0) ctx.logger.info(`created materialized views ${viewsCreated.join(', ')}`);
        if (partitionsCreated.length > 0)
          ctx.logger.info(
            `created ${partitionsCreated.length} partition(s) ahead of time (PARTITION_LEAD_DAYS=${ctx.settings.partitionLeadDays}): ${partitionsCreated.join(', ')}`,
          );
      } finally {
        await ctx.close();
      }
    });
}

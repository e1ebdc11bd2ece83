import { Command } from 'commander';
import type { Settings } from '../../config/index.ts';
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
        const prepared = await prepareDatabase(ctx.db.pool, ctx.settings, {
          onApply: (m) => ctx.logger.info(`applying migration ${m.version} ${m.name}`),
        });
        for (const line of preparedLines(prepared, ctx.settings)) ctx.logger.info(line);
      } finally {
        await ctx.close();
      }
    });
}

/** What `aggjobs migrate` (and `aggjobs start`) say it did: sources, migrations, views, partitions. */
export function preparedLines(
  prepared: Awaited<ReturnType<typeof prepareDatabase>>,
  settings: Pick<Settings, 'sourcePartitions' | 'partitionLeadDays'>,
): string[] {
  const { applied, viewsCreated, sourcesCreated, partitionsCreated } = prepared;
  return [
    ...sourcesCreated.map(
      (s) =>
        `created ${s.table} partitioned by ${settings.sourcePartitions} (SOURCE_PARTITIONS) with ${s.partitions.length} partition(s), ${s.partitions[0]} to ${s.partitions.at(-1)}`,
    ),
    applied.length === 0 ? 'database is up to date' : `applied ${applied.length} migration(s)`,
    ...(viewsCreated.length > 0 ? [`created materialized views ${viewsCreated.join(', ')}`] : []),
    ...(partitionsCreated.length > 0
      ? [
          `created ${partitionsCreated.length} partition(s) ahead of time (PARTITION_LEAD_DAYS=${settings.partitionLeadDays}): ${partitionsCreated.join(', ')}`,
        ]
      : []),
  ];
}

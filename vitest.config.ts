import { configDefaults, defineConfig } from 'vitest/config';

// Files left out of this run (comma-separated globs), for a CI that runs them in another pass:
// .ci/run runs the fresh-clone test outside its network namespace (its npm install needs the
// registry) and counts every test file on disk that ran in neither pass as failed.
const excluded = (process.env.TEST_EXCLUDE ?? '').split(',').filter((glob) => glob !== '');

export default defineConfig({
  test: {
    // Once for the whole run, before any project's files: the `aggjobs` command the tests spawn.
    globalSetup: ['test/support/build-cli.ts'],
    reporters:
      process.env.CI === 'true'
        ? ['default', ['json', { outputFile: process.env.TEST_JSON_FILE ?? 'test-results/vitest.json' }]]
        : ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...excluded],
          // With the integration files, in one pool of two (a group's projects must share maxWorkers):
          // vitest takes a group's files project by project, so the unit files fill the last slots.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/distributed/**', ...excluded],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Two cores: two files at a time keeps PostgreSQL responsive for the timing-sensitive tests.
          maxWorkers: 2,
          // With the unit tests (vitest needs an order for projects with their own maxWorkers).
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          // On a Citus cluster (coordinator + 2 workers) that the global setup starts for the run;
          // where Citus is not installed every file fails with one line saying how to install it.
          name: 'distributed',
          include: ['test/distributed/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...excluded],
          globalSetup: ['test/distributed/cluster-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // One file at a time: the files share one cluster, and concurrent node registrations in
          // several of its databases fail.
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});

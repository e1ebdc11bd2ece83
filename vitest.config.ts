import { configDefaults, defineConfig } from 'vitest/config';

// Files left out of this run (comma-separated globs), for a CI that runs them in another pass:
// .ci/run runs the fresh-clone test outside its network namespace (its npm install needs the
// registry) and counts every test file on disk that ran in neither pass as failed.
const excluded = (process.env.TEST_EXCLUDE ?? '').split(',').filter((glob) => glob !== '');

export default defineConfig({
  test: {
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
          sequence: { groupOrder: 0 },
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
          // Runs after the unit tests (vitest needs an order for projects with their own maxWorkers),
          // together with the distributed project.
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
          // With the integration files, two files at a time in all (vitest runs projects of one
          // group together only when they have the same maxWorkers): the files share one cluster,
          // each in a database of its own, created one at a time (createCitusDatabase); node-down
          // starts a cluster of its own.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});

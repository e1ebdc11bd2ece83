import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: process.env.CI === 'true' ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/distributed/**'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Two cores: two files at a time keeps PostgreSQL responsive for the timing-sensitive tests.
          maxWorkers: 2,
          // Runs after the unit tests (vitest needs an order for projects with their own maxWorkers).
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          // On a Citus cluster (coordinator + 2 workers) that the global setup starts for the run;
          // where Citus is not installed every file fails with one line saying how to install it.
          name: 'distributed',
          include: ['test/distributed/**/*.test.ts'],
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

import { defineConfig } from 'vitest/config';

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
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Two cores: two files at a time keeps PostgreSQL responsive for the timing-sensitive tests.
          maxWorkers: 2,
          // Runs after the unit tests (vitest needs an order for projects with their own maxWorkers).
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});

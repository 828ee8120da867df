import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The dashboard's component tests (test/ui/*.test.tsx) compile JSX for preact, as ui/vite.config.ts does.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  test: {
    include: ['engine/**/*.test.ts', 'server/**/*.test.ts', 'loadgen/**/*.test.ts', 'test/**/*.test.ts', 'test/**/*.test.tsx'],
    exclude: ['node_modules/**', 'dist/**', 'ui/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The project's own Kafka broker (kafka/kafka.mjs), started once for the run.
    globalSetup: ['test/kafka/global-setup.ts'],
  },
});

import { defineConfig } from 'vitest/config';

/**
 * `npm run test:soak`: the long reliability runs (test/reliability/*.soak.ts), apart from `npm test`.
 * One file at a time: they load the shared broker and the machine's cores.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.soak.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/kafka/global-setup.ts'],
  },
});

import { defineConfig } from 'vite';

// Preact without @preact/preset-vite (it needs babel): Vite 8's oxc transform compiles JSX to
// preact's automatic runtime, and the preact/compat aliases are not needed (no React libraries).
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No source maps in the served bundle: the server keeps ui/dist in memory.
    sourcemap: false,
    reportCompressedSize: false,
    rolldownOptions: {
      output: {
        // Libraries in their own chunk, so the size report separates our code from preact/uplot
        // and a UI change does not invalidate the cached vendor file.
        codeSplitting: { groups: [{ name: 'vendor', test: /node_modules/ }] },
      },
    },
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8080', '/dashboard-ws': { target: 'ws://127.0.0.1:8080', ws: true } } },
});

/**
 * Test-only fault hook, preloaded into the engine process with `node --import <this file>`
 * (reliability scenarios 2, 5 and 9). It changes nothing until asked, and the engine's code is not
 * touched: the preload runs in the main thread and in every Piscina worker thread.
 *
 * The test writes a JSON command to the file named by RTA_TEST_HOOK_FILE:
 * - {"stall": ms}, then SIGUSR2: the main thread busy-waits that long (an event-loop stall: no
 *   Kafka polls, no timers, no HTTP);
 * - {"worker": "throw" | "exit" | "oom", "id": n} (no signal needed): the next time a worker thread is inside
 *   ShardRuntime.processBatch (between its first and last event, not in the commit), it throws,
 *   calls process.exit(1), or allocates until V8 stops the thread (ERR_WORKER_OUT_OF_MEMORY; run
 *   the engine with --max-old-space-size to keep that quick). One worker fires, once per id.
 *
 * How "inside a batch" is found without editing the engine: while armed, the worker's
 * Map.prototype.get (which the batch loop calls per message and the operators per event) counts
 * down a random number of calls and then looks at the stack. Each firing is logged on stderr as
 * one line starting with "[fault-hook]".
 */
import fs from 'node:fs';
import { isMainThread, threadId } from 'node:worker_threads';

if (isMainThread) {
  process.on('SIGUSR2', () => {
    const file = process.env.RTA_TEST_HOOK_FILE;
    if (!file) return;
    const cmd = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof cmd.stall === 'number') {
      process.stderr.write(`[fault-hook] main thread stalls ${cmd.stall} ms\n`);
      const until = Date.now() + cmd.stall;
      while (Date.now() < until) { /* the stall */ }
      process.stderr.write(`[fault-hook] main thread stall of ${cmd.stall} ms over\n`);
    }
  });
} else {
  // Piscina workers wait for tasks with Atomics.wait (their event loop does not turn between
  // tasks), so a worker polls the command file itself, from the hooked Map.prototype.get, at most
  // every 50 ms. A command fires once: the worker that fires claims it with an exclusive file.
  const file = process.env.RTA_TEST_HOOK_FILE;
  let calls = 0;
  let lastPoll = 0;
  let seenMtime = 0;
  let armed = null;
  let countdown = 0;
  const claimed = (id) => fs.existsSync(`${file}.fired-${id}`);
  const poll = () => {
    const now = Date.now();
    if (now - lastPoll < 50) return;
    lastPoll = now;
    let st;
    try {
      st = fs.statSync(file);
    } catch {
      return;
    }
    if (st.mtimeMs === seenMtime) return;
    seenMtime = st.mtimeMs;
    const cmd = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (cmd.worker && !claimed(cmd.id)) {
      armed = cmd;
      countdown = 1 + Math.floor(Math.random() * 20_000);
    }
  };
  const get = Map.prototype.get;
  Map.prototype.get = function (key) {
    if (file && (++calls & 4095) === 0) poll();
    if (armed !== null && --countdown <= 0) {
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 40;
      const stack = new Error().stack ?? '';
      Error.stackTraceLimit = limit;
      if (stack.includes('processBatch') && !/ShardRuntime\.commit|\.commit \(/.test(stack)) {
        const { worker: fault, id } = armed;
        armed = null;
        try {
          fs.closeSync(fs.openSync(`${file}.fired-${id}`, 'wx'));
        } catch {
          return get.call(this, key); // another worker fired it
        }
        const where = stack.split('\n').slice(2, 5).map((s) => s.trim()).join(' < ');
        process.stderr.write(`[fault-hook] worker ${threadId} ${fault} inside a batch (in ShardRuntime.processBatch, not its commit) at ${where}\n`);
        if (fault === 'exit') process.exit(1);
        if (fault === 'oom') {
          const hog = [];
          for (;;) hog.push(new Array(1 << 20).fill(1.5));
        }
        throw new Error(`injected fault (fault-hook) inside a batch in worker ${threadId}`);
      }
    }
    return get.call(this, key);
  };
}

/**
 * Asynchronous LMDB writes (lmdb-js `put`, `transaction`) whose failure must not crash the process.
 *
 * When an asynchronous commit fails (a full disk: ENOSPC), lmdb-js 3.5 rejects the caller's
 * promise with "Commit failed (see commitError for details)", and also rejects two promises the
 * caller never sees, so Node's default `--unhandled-rejections=throw` ends the process even though
 * the caller handled its own failure:
 * - `error.commitError`, the real cause, which nothing attaches a handler to (lmdb-js issue #368);
 * - with event-turn batching (lmdb-js's default), the promise of the batch's opening write, which
 *   write.js drops (`writeBatchStart()` in its queued task).
 * Seen in CI: the engine died when the disk filled while it stored a critical alert's notification
 * mark. So environments written asynchronously open with ASYNC_WRITE_OPTIONS, and every
 * asynchronous write goes through `settled`.
 */
export const ASYNC_WRITE_OPTIONS = { eventTurnBatching: false } as const;

/** An LMDB write that failed; `cause` is LMDB's own error (its `code` is the errno, 28 for ENOSPC). */
export class LmdbWriteError extends Error {
  readonly code: string | number | undefined;
  constructor(what: string, cause: unknown) {
    super(`${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'LmdbWriteError';
    this.code = (cause as { code?: string | number } | null)?.code;
  }
}

/**
 * Awaits an asynchronous LMDB write. On failure it handles lmdb-js's `commitError` promise and
 * rejects with an LmdbWriteError that carries the real cause (for instance "No space left on device").
 */
export async function settled<T>(what: string, write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (e) {
    const commitError = (e as { commitError?: Promise<unknown> } | null)?.commitError;
    let cause: unknown = e;
    if (commitError && typeof commitError.then === 'function') {
      cause = await commitError.then(() => e, (real: unknown) => real);
    }
    throw new LmdbWriteError(what, cause);
  }
}

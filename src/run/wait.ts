// Waiting for a condition with a deadline, on the injected clock.

import type { RunDeps } from "./types.js";

/**
 * Polls `check` until it returns a value (not undefined) or `timeoutMs` passes.
 * Errors thrown by `check` count as "not yet" and the last one is returned for messages.
 */
export async function pollUntil<T>(
  deps: Pick<RunDeps, "now" | "sleep">,
  opts: { timeoutMs: number; intervalMs: number; signal?: AbortSignal },
  check: () => Promise<T | undefined>,
): Promise<{ value: T } | { timedOut: true; lastError: unknown }> {
  const deadline = deps.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return { value };
    } catch (err) {
      lastError = err;
    }
    if (opts.signal?.aborted || deps.now() >= deadline) return { timedOut: true, lastError };
    await deps.sleep(Math.min(opts.intervalMs, Math.max(0, deadline - deps.now())));
  }
}

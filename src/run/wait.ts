// Waiting for a condition with a deadline, on the injected clock.

import { DefragError } from "../core/errors.js";
import type { Clock } from "../core/ports.js";

/**
 * Polls `check` until it returns a value (not undefined) or `timeoutMs` passes. The first checks
 * come quickly (from `firstIntervalMs`, doubling up to `intervalMs`): a member is usually healthy
 * again, or leadership moved, within a few tens of milliseconds, and the run waits for nothing else.
 * A DefragError thrown by `check` counts as "not yet" and the last one is returned for messages;
 * anything else is a bug and is thrown at once rather than retried.
 */
export async function pollUntil<T>(
  clock: Pick<Clock, "now" | "sleep">,
  opts: { timeoutMs: number; intervalMs: number; firstIntervalMs?: number },
  check: () => Promise<T | undefined>,
): Promise<{ value: T } | { timedOut: true; lastError: unknown }> {
  const deadline = clock.now() + opts.timeoutMs;
  let interval = Math.min(opts.firstIntervalMs ?? opts.intervalMs, opts.intervalMs);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return { value };
    } catch (err) {
      if (DefragError.from(err).kind === "internal") throw err;
      lastError = err;
    }
    if (clock.now() >= deadline) return { timedOut: true, lastError };
    await clock.sleep(Math.min(interval, Math.max(0, deadline - clock.now())));
    interval = Math.min(interval * 2, opts.intervalMs);
  }
}

/** Where the checks that watch the cluster change start: health, leadership, catching up. */
export const FIRST_POLL_MS = 50;

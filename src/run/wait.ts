// Waiting for a condition with a deadline, on the injected clock.

import { DefragError } from "../core/errors.js";
import type { Clock } from "../core/ports.js";

/**
 * Polls `check` until it returns a value (not undefined) or `timeoutMs` passes.
 * A DefragError thrown by `check` counts as "not yet" and the last one is returned for
 * messages; anything else is a bug and is thrown at once rather than retried.
 */
export async function pollUntil<T>(
  clock: Pick<Clock, "now" | "sleep">,
  opts: { timeoutMs: number; intervalMs: number },
  check: () => Promise<T | undefined>,
): Promise<{ value: T } | { timedOut: true; lastError: unknown }> {
  const deadline = clock.now() + opts.timeoutMs;
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
    await clock.sleep(Math.min(opts.intervalMs, Math.max(0, deadline - clock.now())));
  }
}

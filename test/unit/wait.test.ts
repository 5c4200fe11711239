// Waiting for a condition with a deadline on the injected clock: when the checks come.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import { pollUntil } from "../../src/run/wait.js";

/** A clock that only moves when slept on. */
function fakeClock() {
  let now = 0;
  return {
    clock: {
      now: () => now,
      sleep: (ms: number) => {
        now += ms;
        return Promise.resolve();
      },
    },
    at: () => now,
  };
}

describe("pollUntil", () => {
  it("checks quickly at first, then no more often than the interval", async () => {
    const { clock, at } = fakeClock();
    const checks: number[] = [];
    const r = await pollUntil(clock, { timeoutMs: 5_000, intervalMs: 500, firstIntervalMs: 50 }, () => {
      checks.push(at());
      return Promise.resolve(checks.length === 7 ? "done" : undefined);
    });
    assert.deepEqual(r, { value: "done" });
    assert.deepEqual(checks, [0, 50, 150, 350, 750, 1250, 1750]);
  });

  it("without a first interval, every check an interval apart; gives up at the deadline with the last error", async () => {
    const { clock } = fakeClock();
    let n = 0;
    const r = await pollUntil(clock, { timeoutMs: 1_000, intervalMs: 400 }, () => {
      n += 1;
      return Promise.reject(new DefragError("timeout", `check ${n} did not answer`));
    });
    assert.ok("timedOut" in r);
    assert.equal(n, 4, "at 0, 400, 800 and the deadline");
    assert.match((r.lastError as Error).message, /check 4 did not answer/);
  });

  it("a bug is thrown at once, not retried", async () => {
    const { clock } = fakeClock();
    await assert.rejects(
      pollUntil(clock, { timeoutMs: 1_000, intervalMs: 100 }, () => Promise.reject(new TypeError("oops"))),
      /oops/,
    );
  });
});

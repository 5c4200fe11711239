import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createLogger } from "../../src/report/logger.js";
import { createReporter } from "../../src/report/reporter.js";

describe("progress reporter", () => {
  it("logs a heartbeat line without a terminal", () => {
    const lines: string[] = [];
    const reporter = createReporter(
      createLogger({ format: "text", sink: { write: (s: string) => lines.push(s) } }),
      {
        live: undefined,
      },
    );
    reporter.heartbeat("10.0.0.2", 61_000);
    assert.match(
      lines[0] ?? "",
      /INFO {2}10\.0\.0\.2: still defragmenting after 1m1s {2}node=10\.0\.0\.2 elapsedMs=61000/,
    );
  });

  it("on a terminal, redraws one live line and clears it before the next log line", () => {
    const logs: string[] = [];
    const live: string[] = [];
    const reporter = createReporter(
      createLogger({ format: "text", sink: { write: (s: string) => logs.push(s) } }),
      {
        live: { write: (s: string) => live.push(s) },
      },
    );
    reporter.heartbeat("10.0.0.2", 1000);
    reporter.heartbeat("10.0.0.2", 2000);
    reporter.info("done");
    assert.deepEqual(live, [
      "\r\x1b[K10.0.0.2: defragmenting... 1.0s",
      "\r\x1b[K10.0.0.2: defragmenting... 2.0s",
      "\r\x1b[K",
    ]);
    assert.equal(logs.length, 1, "heartbeats are not logged on a terminal");
  });
});

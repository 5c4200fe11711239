import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createLogger } from "../../src/report/logger.js";

function capture(format: "text" | "json") {
  const lines: string[] = [];
  const logger = createLogger({ format, sink: { write: (s: string) => lines.push(s) }, runId: "r1" });
  return { logger, lines };
}

describe("logger", () => {
  it("writes JSON lines with level, time, message and fields", () => {
    const { logger, lines } = capture("json");
    logger.warn("member is slow", { node: "10.0.0.2", elapsedMs: 1200 });
    assert.equal(lines.length, 1);
    const record = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
    assert.equal(record.level, "warn");
    assert.equal(record.msg, "member is slow");
    assert.equal(record.node, "10.0.0.2");
    assert.equal(record.elapsedMs, 1200);
    assert.equal(record.runId, "r1");
    assert.match(String(record.time), /^\d{4}-\d\d-\d\dT/);
  });

  it("renders text lines for people", () => {
    const { logger, lines } = capture("text");
    logger.info("defragmented", { node: "10.0.0.2", reclaimed: "12.0 MiB" });
    assert.match(lines[0] ?? "", /^\S+Z INFO {2}defragmented {2}node=10\.0\.0\.2 reclaimed="12\.0 MiB"\n$/);
  });

  it("never prints key material, at any depth", () => {
    const { logger, lines } = capture("json");
    const secret = "LS0tLS1CRUdJTiBFRDI1NTE5IFBSSVZBVEUgS0VZLS0tLS0=";
    logger.info("config", {
      key: secret,
      context: { crt: secret, ca: secret, keyPem: secret },
      TALOS_KEY: secret,
    });
    assert.equal(lines.join("").includes(secret), false);
    assert.match(lines[0] ?? "", /\[redacted\]/);
  });

  it("debug is off by default", () => {
    const { logger, lines } = capture("json");
    logger.debug("noise");
    assert.equal(lines.length, 0);
  });
});

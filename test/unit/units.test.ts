import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  formatBytes,
  formatDuration,
  formatMemberId,
  parseBytes,
  parseDuration,
} from "../../src/core/units.js";

describe("units", () => {
  it("formats bytes in IEC units", () => {
    const cases: [number, string][] = [
      [0, "0 B"],
      [1023, "1023 B"],
      [1536, "1.5 KiB"],
      [80.1 * 1024 * 1024, "80.1 MiB"],
      [2 * 1024 ** 3, "2.0 GiB"],
      [-2048, "-2.0 KiB"],
    ];
    for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, `${bytes}`);
  });

  it("parses byte sizes with SI and IEC suffixes, rejects nonsense", () => {
    const cases: [string, number | undefined][] = [
      ["2147483648", 2147483648],
      ["2GiB", 2 * 1024 ** 3],
      ["4GB", 4e9],
      ["512Mi", 512 * 1024 ** 2],
      ["1.5 KiB", 1536],
      ["", undefined],
      ["lots", undefined],
      ["2 parsecs", undefined],
      ["-1GiB", undefined],
    ];
    for (const [text, bytes] of cases) assert.equal(parseBytes(text), bytes, JSON.stringify(text));
  });

  it("parses Go-style durations, rejects nonsense", () => {
    const cases: [string, number | undefined][] = [
      ["15m", 900_000],
      ["90s", 90_000],
      ["1h30m", 5_400_000],
      ["250ms", 250],
      ["30", undefined],
      ["0", 0],
      ["1.5s", 1500],
      ["", undefined],
      ["soon", undefined],
      ["5x", undefined],
      ["10s later", undefined],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, JSON.stringify(text));
  });

  it("formats durations for people", () => {
    assert.equal(formatDuration(850), "850ms");
    assert.equal(formatDuration(12_340), "12.3s");
    assert.equal(formatDuration(93_500), "1m34s");
    assert.equal(formatDuration(3_723_000), "1h2m");
  });

  it("prints member ids as 16 hex digits", () => {
    assert.equal(formatMemberId(10276657743932975437n), "8e9e05c52164694d");
    assert.equal(formatMemberId(0x1fn), "000000000000001f");
  });
});

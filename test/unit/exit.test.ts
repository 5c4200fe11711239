// Exit codes are the CronJob's and the operator's contract (README, Exit codes).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  exitCodeFor,
  exitCodeForCommandLine,
  exitCodeForRun,
  exitCodeForStatus,
} from "../../src/cli/exit.js";
import type { ErrorKind } from "../../src/core/errors.js";
import type { RunResultKind } from "../../src/core/result.js";

describe("exit codes", () => {
  it("from an error's kind: configuration 2, refusal 3, the rest 1", () => {
    const codes: Record<ErrorKind, number> = {
      config: 2,
      tls: 2,
      refused: 3,
      unreachable: 1,
      permission: 1,
      "not-control-plane": 1,
      timeout: 1,
      etcd: 1,
      aborted: 1,
      internal: 1,
    };
    for (const [kind, code] of Object.entries(codes))
      assert.equal(exitCodeFor(kind as ErrorKind), code, kind);
  });

  it("from a run's result", () => {
    const codes: Record<RunResultKind, number> = {
      success: 0,
      "nothing-to-do": 0,
      "dry-run": 0,
      failed: 1,
      "alarm-raised": 1,
      refused: 3,
    };
    for (const [result, code] of Object.entries(codes))
      assert.equal(exitCodeForRun(result as RunResultKind), code, result);
  });

  it("status: 1 when any member could not be read; the command line: help 0, misuse 2", () => {
    assert.equal(exitCodeForStatus(0), 0);
    assert.equal(exitCodeForStatus(1), 1);
    assert.equal(exitCodeForCommandLine(true), 0);
    assert.equal(exitCodeForCommandLine(false), 2);
  });
});

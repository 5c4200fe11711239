// The machine status resource's spec as Talos encodes it (MachineStatusSpec: stage = 1, status = 2
// {ready = 1, unmet_conditions = 2 [{name = 1, reason = 2}]}), written out byte by byte.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import { lifecycleOf } from "../../src/talos/machine-status.js";

describe("machine status (talosctl get machinestatus)", () => {
  it("UPGRADING, reported ready with an unmet condition: not the working stage", () => {
    const bytes = Uint8Array.from([
      0x08,
      0x08, // stage: MACHINE_STAGE_UPGRADING (8)
      0x12,
      0x0a, // status, 10 bytes
      0x08,
      0x01, //   ready: true
      0x12,
      0x06,
      0x0a,
      0x01,
      0x61,
      0x12,
      0x01,
      0x62, //   unmet_conditions: {name "a", reason "b"}
    ]);
    assert.deepEqual(lifecycleOf(bytes, "10.0.0.1"), {
      stage: "UPGRADING",
      working: false,
      ready: true,
      unmet: ["a: b"],
    });
  });

  it("RUNNING and ready", () => {
    assert.deepEqual(lifecycleOf(Uint8Array.from([0x08, 0x04, 0x12, 0x02, 0x08, 0x01]), "n"), {
      stage: "RUNNING",
      working: true,
      ready: true,
      unmet: [],
    });
  });

  it("a stage this tool does not know is named by its number and is not the working stage", () => {
    assert.deepEqual(lifecycleOf(Uint8Array.from([0x08, 0x09]), "n"), {
      stage: "stage 9",
      working: false,
      ready: false,
      unmet: [],
    });
  });

  it("bytes that do not decode: an error naming the node", () => {
    assert.throws(
      () => lifecycleOf(Uint8Array.from([0x12, 0x0a, 0x08]), "10.0.0.9"),
      (err: unknown) =>
        err instanceof DefragError && err.node === "10.0.0.9" && /does not decode/.test(err.message),
    );
  });
});

// The run's small pure steps: the credential check before the first change, the
// results and their arithmetic, and the questions asked of an error.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { Permissions } from "../../src/core/backend.js";
import {
  DefragError,
  failsEverywhere,
  mayStillBeDefragmenting,
  type ErrorKind,
} from "../../src/core/errors.js";
import { compileRule } from "../../src/core/rule.js";
import { makePlan } from "../../src/core/plan.js";
import { preflight } from "../../src/run/preflight.js";
import { reclaimedBytes } from "../../src/core/result.js";
import { Results } from "../../src/run/results.js";
import { MiB } from "../harness/units.js";
import { three, view } from "./fixtures.js";

const all: Permissions = { defragment: { allowed: true }, moveLeadership: { allowed: true } };
const noMove: Permissions = {
  ...all,
  moveLeadership: { allowed: false, reason: "moving leadership needs role X" },
};
const noDefrag: Permissions = {
  ...all,
  defragment: { allowed: false, reason: "defragmenting needs role Y" },
};

function plan(rule: string) {
  return makePlan(view(three), {
    rule: compileRule(rule),
    quota: () => 2048 * MiB,
    minIntervalMs: 0,
    lastDefragmentAgoMs: () => undefined,
  });
}

describe("preflight", () => {
  const cases: [string, string, Permissions, "auto" | "always" | "never", RegExp | undefined][] = [
    ["everything allowed", "true", all, "always", undefined],
    ["nothing to do needs no permission", "false", noDefrag, "always", undefined],
    ["defragment denied", "true", noDefrag, "auto", /^defragmenting needs role Y$/],
    ["leader move denied, auto: in place", "true", noMove, "auto", undefined],
    ["leader move denied, never: not needed", "true", noMove, "never", undefined],
    [
      "leader move denied, always",
      "true",
      noMove,
      "always",
      /^--move-leader always: moving leadership needs role X; use --move-leader auto or never$/,
    ],
    ["always, but the leader is not in the plan", "!isLeader", noMove, "always", undefined],
  ];
  for (const [name, rule, permissions, moveLeader, expected] of cases) {
    it(name, () => {
      const failures = preflight(plan(rule), permissions, moveLeader);
      if (expected === undefined) assert.deepEqual(failures, []);
      else {
        const [only, ...rest] = failures;
        assert.ok(only && rest.length === 0, JSON.stringify(failures));
        assert.equal(only.gate, "permission");
        assert.match(only.message, expected);
      }
    });
  }
});

describe("results", () => {
  it("counts reclaimed bytes only for defragmented members with both sizes", () => {
    const sizes = { before: { dbSize: 100, dbSizeInUse: 10 }, after: { dbSize: 30, dbSizeInUse: 10 } };
    assert.equal(reclaimedBytes({ action: "defragmented", ...sizes }), 70);
    assert.equal(reclaimedBytes({ action: "failed", ...sizes }), 0);
    assert.equal(reclaimedBytes({ action: "defragmented", before: sizes.before }), 0);
  });

  it("finishes with every result added, the total reclaimed and the duration on the given clock", () => {
    let now = 1_000;
    const results = new Results(() => now);
    const member = (node: string, action: "defragmented" | "skipped") => ({
      node,
      memberId: "01",
      name: node,
      action,
      reason: "",
      isLeader: false,
      notes: [],
      before: { dbSize: 100, dbSizeInUse: 40 },
      after: { dbSize: 40, dbSizeInUse: 40 },
    });
    results.add(member("a", "defragmented"));
    results.add(member("b", "skipped"));
    results.add(member("c", "defragmented"));
    now = 4_500;
    const r = results.finish("success", { alarmsDisarmed: ["NOSPACE on 01"] });
    assert.equal(results.defragmented, 2);
    assert.deepEqual(
      r.members.map((m) => m.node),
      ["a", "b", "c"],
    );
    assert.equal(r.reclaimedBytes, 120);
    assert.equal(r.durationMs, 3_500);
    assert.equal(r.startedAt.getTime(), 1_000);
    assert.deepEqual(r.alarmsDisarmed, ["NOSPACE on 01"]);
    assert.equal(r.error, undefined);
  });
});

describe("error questions", () => {
  const kinds: [ErrorKind, boolean, boolean][] = [
    // kind, may the member still be defragmenting?, the same through any endpoint?
    ["timeout", true, false],
    ["unreachable", true, false],
    ["aborted", true, true],
    ["tls", true, true],
    ["etcd", false, false],
    ["not-control-plane", false, false],
    ["permission", false, true],
    ["config", false, true],
    ["refused", false, true],
    ["internal", false, true],
  ];
  for (const [kind, inDoubt, everywhere] of kinds) {
    it(kind, () => {
      const e = new DefragError(kind, "x");
      assert.equal(mayStillBeDefragmenting(e), inDoubt);
      assert.equal(failsEverywhere(e), everywhere);
    });
  }

  it("anything that is not a DefragError is a bug, and says so", () => {
    const e = DefragError.from(new TypeError("x is not a function"));
    assert.equal(e.kind, "internal");
    assert.match(e.describe(), /^internal error: x is not a function \(this is a bug in talos-etcd-defrag/);
    assert.equal(DefragError.from(e), e);
  });
});

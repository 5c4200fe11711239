import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { makePlan } from "../../src/core/plan.js";
import { DEFAULT_QUOTA_BYTES, DEFAULT_RULE, compileRule } from "../../src/core/rule.js";
import { MiB } from "../harness/units.js";
import { view } from "./fixtures.js";

const opts = {
  rule: compileRule(DEFAULT_RULE),
  quota: () => DEFAULT_QUOTA_BYTES,
  minIntervalMs: 3_600_000,
  lastDefragmentAgoMs: () => undefined,
};

describe("plan", () => {
  it("followers by free space (most first), the leader last, each with a reason", () => {
    const v = view(
      [
        { id: 1n, node: "10.0.0.1", status: { dbSize: 400 * MiB, dbSizeInUse: 100 * MiB } },
        { id: 2n, node: "10.0.0.2", status: { dbSize: 300 * MiB, dbSizeInUse: 100 * MiB } },
        { id: 3n, node: "10.0.0.3", status: { dbSize: 500 * MiB, dbSizeInUse: 100 * MiB } },
        { id: 4n, node: "10.0.0.4", status: { dbSize: 80 * MiB, dbSizeInUse: 68 * MiB } },
      ],
      { leader: 1n },
    );
    const plan = makePlan(v, opts);
    assert.deepEqual(
      plan.map((p) => [p.node, p.defragment, p.isLeader]),
      [
        ["10.0.0.3", true, false],
        ["10.0.0.2", true, false],
        ["10.0.0.4", false, false],
        ["10.0.0.1", true, true],
      ],
    );
    assert.equal(plan[0]?.reason, "400.0 MiB free of 500.0 MiB (80%), rule true");
    assert.equal(plan[2]?.reason, "12.0 MiB free of 80.0 MiB (15%), rule false");
  });

  it("learners are listed and skipped; members that did not answer are not planned", () => {
    const v = view([
      { id: 1n, node: "10.0.0.1", status: { dbSize: 400 * MiB, dbSizeInUse: 100 * MiB } },
      { id: 2n, node: "10.0.0.2", learner: true, status: { dbSize: 400 * MiB, dbSizeInUse: 100 * MiB } },
      { id: 3n, node: "10.0.0.3", error: "down" },
    ]);
    const plan = makePlan(v, opts);
    assert.deepEqual(
      plan.map((p) => [p.node, p.defragment, p.reason]),
      [
        ["10.0.0.2", false, "learner (not a voting member): skipped"],
        ["10.0.0.1", true, "300.0 MiB free of 400.0 MiB (75%), rule true"],
      ],
    );
  });

  it("a member its log shows defragmented less than --min-interval ago is skipped, whatever the rule says", () => {
    const v = view(
      [
        { id: 1n, node: "10.0.0.1", status: { dbSize: 400 * MiB, dbSizeInUse: 100 * MiB } },
        { id: 2n, node: "10.0.0.2", status: { dbSize: 400 * MiB, dbSizeInUse: 100 * MiB } },
        { id: 3n, node: "10.0.0.3", status: { dbSize: 400 * MiB, dbSizeInUse: 100 * MiB } },
      ],
      { alarms: [{ memberId: 2n, alarm: "NOSPACE" }] },
    );
    const ago: Record<string, number> = { "10.0.0.1": 125_000, "10.0.0.2": 3_600_000 };
    const withLog = { ...opts, rule: compileRule("true"), lastDefragmentAgoMs: (n: string) => ago[n] };
    assert.deepEqual(
      makePlan(v, withLog).map((p) => [p.node, p.defragment, p.reason]),
      [
        // Exactly the interval ago: due again. No defragment in its log: the rule decides.
        ["10.0.0.2", true, "300.0 MiB free of 400.0 MiB (75%), NOSPACE alarm raised, rule true"],
        ["10.0.0.3", true, "300.0 MiB free of 400.0 MiB (75%), NOSPACE alarm raised, rule true"],
        [
          "10.0.0.1",
          false,
          "300.0 MiB free of 400.0 MiB (75%), defragmented 2m5s ago (its etcd log), less than --min-interval 1h0m: skipped whatever the rule says",
        ],
      ],
    );
    // 0 turns it off.
    assert.ok(makePlan(v, { ...withLog, minIntervalMs: 0 }).every((p) => p.defragment));
  });

  it("a NOSPACE alarm makes every member's rule see nospace", () => {
    const v = view(
      [
        { id: 1n, node: "10.0.0.1" },
        { id: 2n, node: "10.0.0.2" },
      ],
      { alarms: [{ memberId: 2n, alarm: "NOSPACE" }] },
    );
    const plan = makePlan(v, opts);
    assert.ok(plan.every((p) => p.defragment));
    assert.match(plan[0]?.reason ?? "", /NOSPACE alarm raised, rule true$/);
  });
});

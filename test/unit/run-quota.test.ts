// Each member's own quota in the run: read once from its configuration (Backend.memberConfig),
// used by the rule and the NOSPACE check per member; --quota-bytes overrides it and says so; a
// configuration that cannot be read falls back to etcd's default with one warning; a quota
// that does not parse refuses the run before anything is touched.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import { compileRule } from "../../src/core/rule.js";
import { runDefrag } from "../../src/run/run.js";
import type { RunReporter } from "../../src/core/ports.js";
import type { RunOptions } from "../../src/run/types.js";
import { SimCluster, type SimMember } from "./sim-backend.js";
import { recordingReporter, simOptions } from "./sim-run.js";

import { MiB } from "../harness/units.js";

const GiB = 1024 * MiB;

function options(over: Partial<RunOptions> = {}): RunOptions {
  // Only a member above 30% of its own quota.
  return simOptions({ rule: compileRule("dbQuotaUsage > 0.3"), pauseMs: 0, ...over });
}

function reporter(lines: string[]): RunReporter {
  return recordingReporter(lines, { levels: true });
}

/** Three members of 1 GiB each (half in use); member 1 leads. */
function cluster(quotas: (number | undefined)[]): SimCluster {
  const members: SimMember[] = quotas.map((q, i) => ({
    id: BigInt(i + 1),
    node: `10.0.0.${i + 1}`,
    dbSize: 1 * GiB,
    inUse: 512 * MiB,
    defragMs: 1000,
    config: { ...(q !== undefined ? { quotaBytes: q } : {}), startupDefrag: [] },
  }));
  return new SimCluster(members);
}

async function run(sim: SimCluster, over: Partial<RunOptions> = {}) {
  const lines: string[] = [];
  const result = await runDefrag(sim, options(over), {
    clock: sim.clock,
    signal: new AbortController().signal,
    reporter: reporter(lines),
  });
  return { result, lines };
}

describe("the run and each member's quota", () => {
  it("the rule sees each member's own quota (8 GiB: 12.5%, not over 30%; unset: etcd's 2 GiB, 50%)", async () => {
    const sim = cluster([8 * GiB, undefined, 2 * GiB]);
    const { result, lines } = await run(sim, { dryRun: true });
    assert.equal(result.result, "dry-run");
    const action = (node: string) => result.members.find((m) => m.node === node)?.action;
    assert.equal(action("10.0.0.1"), "skipped");
    assert.equal(action("10.0.0.2"), "would-defragment");
    assert.equal(action("10.0.0.3"), "would-defragment");
    assert.ok(
      lines.some((l) =>
        /etcd quota: 10\.0\.0\.1 8\.0 GiB \(quota-backend-bytes in its etcd spec\), 10\.0\.0\.2 2\.0 GiB \(etcd's default: quota-backend-bytes not set\)/.test(
          l,
        ),
      ),
      lines.join("\n"),
    );
    assert.equal(sim.calls.filter((c) => c.startsWith("MemberConfig")).length, 3, "read once per member");
  });

  it("--quota-bytes overrides every member's quota, says so, and reads no configuration", async () => {
    const sim = cluster([8 * GiB, 8 * GiB, 8 * GiB]);
    const { result, lines } = await run(sim, { dryRun: true, quotaBytes: 2 * GiB });
    assert.deepEqual(
      result.members.map((m) => m.action),
      ["would-defragment", "would-defragment", "would-defragment"],
    );
    assert.ok(lines.some((l) => /2\.0 GiB for every member, from --quota-bytes \(overrides/.test(l)));
    assert.equal(sim.calls.filter((c) => c.startsWith("MemberConfig")).length, 0);
  });

  it("a configuration that cannot be read: etcd's default, with exactly one warning", async () => {
    const sim = cluster([8 * GiB, 8 * GiB, 8 * GiB]);
    sim.unreadableConfigs.add("10.0.0.1");
    sim.unreadableConfigs.add("10.0.0.2");
    const { result, lines } = await run(sim, { dryRun: true });
    const warnings = lines.filter((l) => l.startsWith("WARN") && /configuration/.test(l));
    assert.equal(warnings.length, 1, lines.join("\n"));
    assert.match(
      warnings[0] ?? "",
      /cannot read etcd's configuration on 10\.0\.0\.1, 10\.0\.0\.2 \(State\.Get was denied\): assuming etcd's default quota of 2\.0 GiB there; run with --quota-bytes/,
    );
    assert.deepEqual(
      result.members.map((m) => [m.node, m.action]),
      [
        ["10.0.0.2", "would-defragment"],
        ["10.0.0.3", "skipped"],
        ["10.0.0.1", "would-defragment"],
      ],
    );
  });

  it("a quota that does not parse refuses the run, naming the member; nothing is defragmented", async () => {
    const sim = cluster([8 * GiB, 8 * GiB, 8 * GiB]);
    sim.memberConfig = (node: string) =>
      node === "10.0.0.2"
        ? Promise.reject(
            new DefragError(
              "config",
              `etcd's quota-backend-bytes on ${node} is "8GiB", which is not a byte count`,
              {
                node,
              },
            ),
          )
        : Promise.resolve({ quotaBytes: 8 * GiB, startupDefrag: [] });
    const { result } = await run(sim);
    assert.equal(result.result, "refused");
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["member-config", "10.0.0.2"]],
    );
    assert.match(result.error?.message ?? "", /10\.0\.0\.2.*"8GiB", which is not a byte count/);
    assert.deepEqual(sim.windows, [], "nothing defragmented");
  });

  it("NOSPACE is disarmed against each member's own quota", async () => {
    // 1 GiB each, all over 80% of a 1 GiB quota but under 80% of 8 GiB: nothing to defragment by the rule.
    const armed = cluster([8 * GiB, 8 * GiB, 8 * GiB]);
    armed.alarms_ = [{ memberId: 1n, alarm: "NOSPACE" }];
    const ok = await run(armed, { rule: compileRule("false") });
    assert.deepEqual(ok.result.alarmsDisarmed, ["NOSPACE on 0000000000000001"]);

    const small = cluster([8 * GiB, 1 * GiB, 8 * GiB]);
    small.alarms_ = [{ memberId: 1n, alarm: "NOSPACE" }];
    const kept = await run(small, { rule: compileRule("false") });
    assert.equal(kept.result.result, "alarm-raised");
    assert.ok(
      kept.lines.some((l) => /NOSPACE stays armed: 10\.0\.0\.2 is at 1\.0 GiB of a 1\.0 GiB quota/.test(l)),
    );
  });
});

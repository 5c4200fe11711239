import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import {
  DEFAULT_RULE,
  RULE_PRESETS,
  compileRule,
  ruleVariables,
  type RuleInput,
} from "../../src/core/rule.js";
import { GiB, MiB } from "../harness/units.js";

function input(over: Partial<RuleInput>): RuleInput {
  return {
    dbSize: 100 * MiB,
    dbSizeInUse: 100 * MiB,
    dbQuota: 2 * GiB,
    isLeader: false,
    nospace: false,
    ...over,
  };
}

describe("defrag rule", () => {
  it("the default rule: enough free space and fragmented, or near quota, or NOSPACE", () => {
    const rule = compileRule(DEFAULT_RULE);
    const cases: [string, Partial<RuleInput>, boolean][] = [
      ["unfragmented", {}, false],
      ["300 MiB file, 100 MiB used", { dbSize: 300 * MiB, dbSizeInUse: 100 * MiB }, true],
      ["free 100 MiB but only 40% fragmented", { dbSize: 250 * MiB, dbSizeInUse: 150 * MiB }, false],
      ["60% fragmented but only 60 MiB free", { dbSize: 100 * MiB, dbSizeInUse: 40 * MiB }, false],
      ["exactly 100 MiB free and 50%", { dbSize: 200 * MiB, dbSizeInUse: 100 * MiB }, true],
      ["80% of quota even unfragmented", { dbSize: 1.6 * GiB, dbSizeInUse: 1.6 * GiB }, true],
      ["79% of quota", { dbSize: 0.79 * 2 * GiB, dbSizeInUse: 0.79 * 2 * GiB }, false],
      ["NOSPACE", { nospace: true }, true],
      ["quota counts: 1 GiB of a 1.2 GiB quota", { dbSize: GiB, dbSizeInUse: GiB, dbQuota: 1.2 * GiB }, true],
    ];
    for (const [name, over, want] of cases) assert.equal(rule.evaluate(input(over)), want, name);
  });

  it("@fragmentation-alert is etcd's etcdDatabaseHighFragmentationRatio alert, NOSPACE besides", () => {
    const rule = compileRule("@fragmentation-alert");
    assert.equal(rule.preset, "fragmentation-alert");
    assert.equal(rule.source, RULE_PRESETS["fragmentation-alert"]);
    // etcd's contrib/mixin alert, as PromQL computes it on the two gauges.
    const alert = (dbSize: number, inUse: number) => inUse / dbSize < 0.5 && inUse > 104857600;
    for (const dbSize of [64 * MiB, 150 * MiB, 201 * MiB, 202 * MiB, 250 * MiB, 1 * GiB, 3 * GiB]) {
      for (const share of [0.1, 0.3, 0.49, 0.4999, 0.5, 0.5001, 0.51, 0.7, 1]) {
        const inUse = Math.round(dbSize * share);
        assert.equal(
          rule.evaluate(input({ dbSize, dbSizeInUse: inUse })),
          alert(dbSize, inUse),
          `dbSize ${dbSize}, in use ${inUse}`,
        );
      }
    }
    // The boundaries: exactly half in use, exactly 100 MiB in use, are not the alert.
    assert.equal(rule.evaluate(input({ dbSize: 400 * MiB, dbSizeInUse: 200 * MiB })), false);
    assert.equal(rule.evaluate(input({ dbSize: 300 * MiB, dbSizeInUse: 100 * MiB })), false);
    assert.equal(rule.evaluate(input({ dbSize: 300 * MiB, dbSizeInUse: 100 * MiB + 1 })), true);
    // NOSPACE always; near the quota alone, unlike the default rule, not (the alert does not fire).
    assert.equal(rule.evaluate(input({ nospace: true })), true);
    assert.equal(rule.evaluate(input({ dbSize: 1.9 * GiB, dbSizeInUse: 1.8 * GiB })), false);
    assert.equal(compileRule("@default").source, DEFAULT_RULE);
    assert.equal(compileRule(" @default ").preset, "default");
  });

  it("an unknown preset is exit 2 naming the presets", () => {
    assert.throws(
      () => compileRule("@hourly"),
      (err: unknown) =>
        err instanceof DefragError &&
        err.kind === "config" &&
        err.message === '--rule "@hourly" is not a preset' &&
        /^the presets: @default, @fragmentation-alert; or write a CEL expression/.test(err.hint ?? ""),
    );
  });

  it("computes the variables from one member's numbers", () => {
    const v = ruleVariables(input({ dbSize: 200 * MiB, dbSizeInUse: 50 * MiB, isLeader: true }));
    assert.equal(v.dbSizeFree, BigInt(150 * MiB));
    assert.equal(v.fragmentation, 0.75);
    assert.equal(v.dbQuotaUsage, (200 * MiB) / (2 * GiB));
    assert.equal(v.isLeader, true);
    assert.equal(ruleVariables(input({ dbSize: 0, dbSizeInUse: 0 })).fragmentation, 0, "empty file: no NaN");
  });

  it("`true` defragments every member; custom rules see every variable", () => {
    assert.equal(compileRule("true").evaluate(input({})), true);
    const rule = compileRule(
      "isLeader && dbSizeFree > 10 * KiB && dbQuota == 2 * GiB && dbSizeInUse < dbSize",
    );
    assert.equal(rule.evaluate(input({ isLeader: true, dbSizeInUse: 99 * MiB })), true);
    assert.equal(rule.evaluate(input({ isLeader: false, dbSizeInUse: 99 * MiB })), false);
  });

  it("rejects a rule that does not compile, is not boolean, or fails on sample values", () => {
    const bad: [string, RegExp][] = [
      ["", /--rule is empty/],
      ["dbSize >", /does not compile/],
      ["dbSize", /is of type int, not bool/],
      ["fragmentation * 2.0", /is of type double, not bool/],
      ["unknownVar > 1", /does not compile: .*unknownVar/],
      ['dbSize > "big"', /does not compile/],
      ["dbSize / 0 > 1", /fails on sample values/],
    ];
    for (const [source, message] of bad) {
      assert.throws(
        () => compileRule(source),
        (err: unknown) => err instanceof DefragError && err.kind === "config" && message.test(err.message),
        source,
      );
    }
  });

  it("an int divided by an int, both involving size variables, is exit 2 with the corrected rule", () => {
    const HINT =
      "dbSize, dbSizeInUse, dbSizeFree and dbQuota are ints; fragmentation and dbQuotaUsage are ratios as doubles";
    const cases: [string, string][] = [
      [
        "dbSizeInUse / dbSize < 0.5",
        `--rule "dbSizeInUse / dbSize < 0.5" divides int by int in dbSizeInUse / dbSize, which truncates (a ratio of two sizes is 0 or 1); write --rule 'double(dbSizeInUse) / double(dbSize) < 0.5'`,
      ],
      [
        "(dbSize - dbSizeInUse) / dbSize > 0",
        `--rule "(dbSize - dbSizeInUse) / dbSize > 0" divides int by int in (dbSize - dbSizeInUse) / dbSize, which truncates (a ratio of two sizes is 0 or 1); write --rule '(double(dbSize - dbSizeInUse)) / double(dbSize) > 0'`,
      ],
      [
        "isLeader || dbSize / dbQuota >= 1 || dbSizeFree / dbSize > 0",
        `--rule "isLeader || dbSize / dbQuota >= 1 || dbSizeFree / dbSize > 0" divides int by int in dbSize / dbQuota, which truncates (a ratio of two sizes is 0 or 1); write --rule 'isLeader || double(dbSize) / double(dbQuota) >= 1 || double(dbSizeFree) / double(dbSize) > 0'`,
      ],
      [
        // Wrapping in double() afterwards does not help: the division has already truncated.
        "double(dbSizeFree / dbSize) > 0.3",
        `--rule "double(dbSizeFree / dbSize) > 0.3" divides int by int in dbSizeFree / dbSize, which truncates (a ratio of two sizes is 0 or 1); write --rule 'double(double(dbSizeFree) / double(dbSize)) > 0.3'`,
      ],
      [
        // The correction would divide a double by an int, which CEL rejects: say how instead.
        "dbSizeFree / dbSize / 2 > 0",
        `--rule "dbSizeFree / dbSize / 2 > 0" divides int by int in dbSizeFree / dbSize, which truncates (a ratio of two sizes is 0 or 1): convert both sides, as in double(dbSizeFree) / double(dbSize)`,
      ],
    ];
    for (const [source, message] of cases) {
      assert.throws(
        () => compileRule(source),
        (err: unknown) => {
          assert.ok(err instanceof DefragError);
          assert.equal(err.kind, "config");
          assert.equal(err.message, message);
          assert.equal(err.hint, HINT);
          return true;
        },
        source,
      );
      const corrected = /write --rule '(.*)'$/.exec(message)?.[1];
      if (corrected !== undefined) {
        const rule = compileRule(corrected);
        assert.equal(rule.evaluate(input({ dbSize: 100 * MiB, dbSizeInUse: 30 * MiB })), true, corrected);
      }
    }
  });

  it("int divisions that are meant: by a constant or a literal, and the default rule", () => {
    for (const source of [
      DEFAULT_RULE,
      "dbSize / MiB >= 100",
      "dbSizeFree / 2 > dbSizeInUse",
      "dbQuota / GiB >= 2",
      "fragmentation >= 0.5",
      "double(dbSizeInUse) / double(dbSize) < 0.5",
    ]) {
      assert.doesNotThrow(() => compileRule(source), source);
    }
  });
});

// A member's configuration from its etcd flags: the quota as etcd parses it, and the
// start-up defragment judged against the member's etcd version.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import {
  acceptedStartupDefragFlags,
  effectiveQuota,
  ETCD_DEFAULT_QUOTA_BYTES,
  memberConfigFromFlags,
  parseQuotaBytes,
  startupDefragCell,
  startupDefragReport,
  STARTUP_DEFRAG_FLAG,
  STARTUP_DEFRAG_FLAG_EXPERIMENTAL,
} from "../../src/core/member-config.js";
import { TALOS_WORDS } from "../../src/talos/words.js";

const GiB = 1024 ** 3;

describe("parseQuotaBytes: etcd's int64 flag (Go's ParseInt, base 0)", () => {
  const cases: [string, number | undefined][] = [
    ["4294967296", 4 * GiB],
    [" 8589934592 ", 8 * GiB],
    ["0", 0],
    ["-1", -1],
    ["+1024", 1024],
    ["0x100000000", 4 * GiB],
    ["4_294_967_296", 4 * GiB],
    ["010", 8], // a leading 0 is octal in Go's base 0
    ["0o10", 8],
    ["0b101", 5],
    ["4GiB", undefined], // etcd takes no unit
    ["4e9", undefined],
    ["lots", undefined],
    ["", undefined],
    ["1__0", undefined],
    ["10_", undefined],
    ["0x", undefined],
    ["9223372036854775808", undefined], // above int64
  ];
  for (const [text, want] of cases) {
    it(`${JSON.stringify(text)} → ${String(want)}`, () => {
      assert.equal(parseQuotaBytes(text), want);
    });
  }
});

describe("memberConfigFromFlags", () => {
  it("no flags: no quota (etcd's 2 GiB default applies), no start-up defragment", () => {
    const c = memberConfigFromFlags({}, "10.0.0.1", TALOS_WORDS.configWhere);
    assert.deepEqual(c, { startupDefrag: [] });
    assert.equal(effectiveQuota(c), ETCD_DEFAULT_QUOTA_BYTES);
    assert.equal(ETCD_DEFAULT_QUOTA_BYTES, 2 * GiB);
  });

  it("quota-backend-bytes set; a repeated flag's last value wins, as with Go's flag package", () => {
    assert.equal(
      memberConfigFromFlags({ "quota-backend-bytes": ["8589934592"] }, "n", TALOS_WORDS.configWhere)
        .quotaBytes,
      8 * GiB,
    );
    assert.equal(
      memberConfigFromFlags({ "quota-backend-bytes": ["1", "4294967296"] }, "n", TALOS_WORDS.configWhere)
        .quotaBytes,
      4 * GiB,
    );
  });

  it("0 means etcd's default", () => {
    const c = memberConfigFromFlags({ "quota-backend-bytes": ["0"] }, "n", TALOS_WORDS.configWhere);
    assert.equal(c.quotaBytes, undefined);
    assert.equal(effectiveQuota(c), 2 * GiB);
  });

  it("a quota that does not parse rejects with kind config, naming the member and the value", () => {
    assert.throws(
      () => memberConfigFromFlags({ "quota-backend-bytes": ["8GiB"] }, "10.0.0.2", TALOS_WORDS.configWhere),
      (e: unknown) =>
        e instanceof DefragError &&
        e.kind === "config" &&
        e.node === "10.0.0.2" &&
        /quota-backend-bytes on 10\.0\.0\.2 is "8GiB", which is not a byte count/.test(e.message),
    );
  });

  it("a negative quota (switched off) rejects too: no share of it can be judged", () => {
    assert.throws(
      () => memberConfigFromFlags({ "quota-backend-bytes": ["-1"] }, "10.0.0.3", TALOS_WORDS.configWhere),
      (e: unknown) => e instanceof DefragError && e.kind === "config" && /switched off/.test(e.message),
    );
  });

  it("collects both start-up defragment spellings as set", () => {
    const c = memberConfigFromFlags(
      {
        [STARTUP_DEFRAG_FLAG_EXPERIMENTAL]: ["100"],
        [STARTUP_DEFRAG_FLAG]: ["200"],
        "listen-metrics-urls": ["http://0.0.0.0:2381"],
      },
      "n",
      TALOS_WORDS.configWhere,
    );
    assert.deepEqual(c.startupDefrag, [
      { flag: STARTUP_DEFRAG_FLAG_EXPERIMENTAL, value: "100" },
      { flag: STARTUP_DEFRAG_FLAG, value: "200" },
    ]);
  });
});

describe("acceptedStartupDefragFlags: by etcd version", () => {
  const cases: [string, string[] | undefined][] = [
    ["3.4.34", []],
    ["3.5.21", [STARTUP_DEFRAG_FLAG_EXPERIMENTAL]],
    ["3.6.4", [STARTUP_DEFRAG_FLAG, STARTUP_DEFRAG_FLAG_EXPERIMENTAL]],
    ["v3.6.16", [STARTUP_DEFRAG_FLAG, STARTUP_DEFRAG_FLAG_EXPERIMENTAL]],
    ["3.7.3", [STARTUP_DEFRAG_FLAG]],
    ["4.0.0", [STARTUP_DEFRAG_FLAG]],
    ["", undefined],
    ["unknown", undefined],
  ];
  for (const [version, want] of cases) {
    it(JSON.stringify(version), () => {
      assert.deepEqual(acceptedStartupDefragFlags(version), want);
    });
  }
});

describe("startupDefragReport: what status says, per version and spelling", () => {
  const exp = (value: string) => ({ flag: STARTUP_DEFRAG_FLAG_EXPERIMENTAL, value }) as const;
  const cur = (value: string) => ({ flag: STARTUP_DEFRAG_FLAG, value }) as const;
  const cases: {
    name: string;
    version: string;
    settings: ReturnType<typeof exp | typeof cur>[];
    configured: boolean;
    threshold?: number;
    flag?: string;
    warnings: RegExp[];
  }[] = [
    {
      name: "not set, 3.6",
      version: "3.6.16",
      settings: [],
      configured: false,
      flag: STARTUP_DEFRAG_FLAG,
      warnings: [],
    },
    {
      name: "not set, 3.5: named by the experimental flag",
      version: "3.5.22",
      settings: [],
      configured: false,
      flag: STARTUP_DEFRAG_FLAG_EXPERIMENTAL,
      warnings: [],
    },
    {
      name: "3.5 experimental",
      version: "3.5.22",
      settings: [exp("100")],
      configured: true,
      threshold: 100,
      flag: STARTUP_DEFRAG_FLAG_EXPERIMENTAL,
      warnings: [],
    },
    {
      name: "3.5 new spelling: not accepted yet",
      version: "3.5.22",
      settings: [cur("100")],
      configured: false,
      warnings: [
        /etcd 3\.5\.22 does not accept it yet.*spell it --experimental-bootstrap-defrag-threshold-megabytes/,
      ],
    },
    {
      name: "3.6 new spelling",
      version: "3.6.16",
      settings: [cur("512")],
      configured: true,
      threshold: 512,
      warnings: [],
    },
    {
      name: "3.6 experimental: accepted, deprecated",
      version: "3.6.16",
      settings: [exp("100")],
      configured: true,
      threshold: 100,
      warnings: [
        /deprecated in etcd 3\.6\.16 and removed in 3\.7,.*spell it --bootstrap-defrag-threshold-megabytes/,
      ],
    },
    {
      name: "3.6 both: etcd refuses to start with both",
      version: "3.6.16",
      settings: [exp("100"), cur("200")],
      configured: true,
      threshold: 200,
      warnings: [/etcd 3\.6 refuses to start with both/],
    },
    {
      name: "3.7 experimental: no longer accepted",
      version: "3.7.3",
      settings: [exp("100")],
      configured: false,
      flag: STARTUP_DEFRAG_FLAG,
      warnings: [
        /etcd 3\.7\.3 no longer accepts it \(removed in 3\.7: etcd does not start with it\); spell it --bootstrap-defrag-threshold-megabytes/,
      ],
    },
    {
      name: "3.4: no start-up defragment at all",
      version: "3.4.23",
      settings: [exp("100")],
      configured: false,
      warnings: [/etcd 3\.4\.23 has no start-up defragment \(3\.5 added it\): etcd does not start with it/],
    },
    {
      name: "3.7 new spelling",
      version: "3.7.3",
      settings: [cur("100")],
      configured: true,
      threshold: 100,
      warnings: [],
    },
    { name: "0 switches it off", version: "3.6.16", settings: [cur("0")], configured: false, warnings: [] },
    {
      name: "a value that is not a number",
      version: "3.6.16",
      settings: [cur("lots")],
      configured: false,
      warnings: [/--bootstrap-defrag-threshold-megabytes=lots is not a number of megabytes/],
    },
    {
      name: "an unknown version: reported as configured, with a warning",
      version: "weird",
      settings: [cur("100")],
      configured: true,
      threshold: 100,
      warnings: [/etcd version "weird" is unknown/],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = startupDefragReport(c.settings, c.version, "10.0.0.1", TALOS_WORDS.configWhere);
      assert.equal(r.configured, c.configured);
      assert.equal(r.thresholdMegabytes, c.threshold);
      if (c.flag !== undefined) assert.equal(r.flag, c.flag);
      assert.equal(r.warnings.length, c.warnings.length, r.warnings.join("\n"));
      c.warnings.forEach((re, i) => {
        assert.match(r.warnings[i] ?? "", re);
        assert.match(r.warnings[i] ?? "", /^10\.0\.0\.1: /, "each warning names the member");
      });
    });
  }

  it("the table cell", () => {
    assert.equal(startupDefragCell({ configured: false, warnings: [] }), "off");
    assert.equal(
      startupDefragCell({ configured: true, thresholdMegabytes: 100, warnings: [] }),
      "above 100.0 MiB free",
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { affectedWarning, judgeEtcdVersion, parseEtcdVersion } from "../../src/core/etcd-versions.js";
import { TALOS_WORDS } from "../../src/talos/words.js";

describe("etcd versions: the snapshot/defragment bug (fixed in 3.4.38, 3.5.23 and 3.6.5)", () => {
  // [version as a member reports it, verdict, the fixed versions named, the Talos release named]
  const cases: [string, "affected" | "fixed" | "unknown", string?, RegExp?][] = [
    ["3.3.27", "affected", "3.4.38, 3.5.23 and 3.6.5", /1\.10\.9.*1\.11\.3/],
    ["3.4.23", "affected", "3.4.38", /not by a Talos release/], // Debian's
    ["3.4.37", "affected", "3.4.38", /not by a Talos release/],
    ["3.4.38-rc.0", "affected", "3.4.38", /not by a Talos release/],
    ["3.4.38", "fixed"], // etcd PR 20659, CHANGELOG-3.4 v3.4.38
    ["3.4.45", "fixed"],
    ["3.5.0-alpha.0", "affected", "3.5.23", /Talos 1\.10\.9/],
    ["3.5.0", "affected", "3.5.23", /Talos 1\.10\.9 and later \(etcd 3\.5\.26\)/],
    ["3.5.21", "affected", "3.5.23", /Talos 1\.10\.9/], // Talos 1.10.0-1.10.8
    ["3.5.22", "affected", "3.5.23", /Talos 1\.10\.9/],
    ["3.5.23-rc.0", "affected", "3.5.23", /Talos 1\.10\.9/], // a pre-release comes before its release
    ["3.5.23", "fixed"],
    ["3.5.26", "fixed"], // Talos 1.10.9
    ["3.6.0-alpha.0", "affected", "3.6.5", /Talos 1\.11\.3 and later/],
    ["3.6.0", "affected", "3.6.5", /Talos 1\.11\.3 and later/],
    ["3.6.4", "affected", "3.6.5", /Talos 1\.11\.3 and later/], // Talos 1.11.0-1.11.2
    ["v3.6.4", "affected", "3.6.5", /Talos 1\.11\.3/],
    ["3.6.5", "fixed"], // Talos 1.11.3
    ["3.6.16", "fixed"],
    ["3.7.0-rc.0", "fixed"],
    ["3.7.3", "fixed"], // Talos 1.14
    ["3.10.0", "fixed"],
    ["", "unknown"],
    ["  ", "unknown"],
    ["3.6", "unknown"],
    ["3.6.x", "unknown"],
    ["three.six.four", "unknown"],
    ["2.3.8", "unknown"],
    ["4.0.0", "unknown"],
  ];
  for (const [text, kind, fixedIn, talos] of cases) {
    it(`${JSON.stringify(text)}: ${kind}`, () => {
      const verdict = judgeEtcdVersion(text);
      assert.equal(verdict.kind, kind);
      if (verdict.kind === "affected") {
        assert.equal(verdict.fixedIn, fixedIn);
        assert.match(TALOS_WORDS.fixedEtcd(verdict.fixedIn), talos ?? /^$/);
      }
    });
  }

  it("parses release and pre-release versions, with or without a v", () => {
    assert.deepEqual(parseEtcdVersion("3.6.16"), { major: 3, minor: 6, patch: 16, prerelease: "" });
    assert.deepEqual(parseEtcdVersion("v3.7.0-rc.0"), { major: 3, minor: 7, patch: 0, prerelease: "rc.0" });
    assert.deepEqual(parseEtcdVersion(" 3.6.4 "), parseEtcdVersion("3.6.4"));
    assert.equal(parseEtcdVersion("3.6.4.1"), undefined);
    assert.equal(parseEtcdVersion("etcd 3.6.4"), undefined);
  });

  it("the warning names the member, its version, the fixed versions and the Talos release", () => {
    const verdict = judgeEtcdVersion("3.6.4");
    assert.ok(verdict.kind === "affected");
    assert.equal(
      affectedWarning("cp-2 (0000000000000002)", verdict, "3.6.4", TALOS_WORDS.fixedEtcd),
      "member cp-2 (0000000000000002) runs etcd 3.6.4, which can corrupt its data when a raft snapshot is applied while it defragments (etcd PRs 20650, 20653 and 20659); fixed in etcd 3.6.5, shipped by Talos 1.11.3 and later (etcd 3.6.5+)",
    );
  });
});

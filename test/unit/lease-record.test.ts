// The Lease's decisions, on a fake clock: free when released, ours, or expired (by the API
// server's clock, or unchanged for a whole duration as we watched it); otherwise held, with
// when it expires. And what is written when taking or renewing it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { judge, observe, takenSpec, type LeaseRecord } from "../../src/k8s/lease-record.js";

const T0 = Date.parse("2025-01-05T02:00:00Z");

function record(over: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    holder: "pod-a_1_abcdef",
    durationSeconds: 30,
    acquireTime: new Date(T0),
    renewTime: new Date(T0),
    transitions: 0,
    resourceVersion: "100",
    ...over,
  };
}

describe("lease decisions", () => {
  it("released (no holder, or an empty one) is free; our own is free", () => {
    assert.deepEqual(
      judge(record({ holder: undefined }), "me", { serverMs: T0, monotonicMs: 0 }, undefined),
      {
        kind: "free",
        reason: "released",
      },
    );
    assert.equal(
      judge(record({ holder: "" }), "me", { serverMs: T0, monotonicMs: 0 }, undefined).kind,
      "free",
    );
    assert.deepEqual(judge(record({ holder: "me" }), "me", { serverMs: T0, monotonicMs: 0 }, undefined), {
      kind: "free",
      reason: "ours",
    });
  });

  it("held while renewTime + duration is ahead of the server's clock, with when it expires", () => {
    const v = judge(record(), "me", { serverMs: T0 + 10_000, monotonicMs: 0 }, undefined);
    assert.deepEqual(v, { kind: "held", holder: "pod-a_1_abcdef", since: new Date(T0), expiresInMs: 20_000 });
  });

  it("expired by the server's clock: free at once, even when we just started watching", () => {
    const r = record();
    const observed = observe(undefined, r, 5);
    const v = judge(r, "me", { serverMs: T0 + 30_001, monotonicMs: 5 }, observed);
    assert.deepEqual(v, { kind: "free", reason: "expired" });
  });

  it("without the server's clock (or with a holder whose clock runs ahead): expired only after a whole duration unchanged", () => {
    // The holder's clock is an hour ahead: by the server's clock it looks renewed in the future.
    const r = record({ renewTime: new Date(T0 + 3_600_000) });
    let observed = observe(undefined, r, 1000);
    assert.equal(judge(r, "me", { serverMs: T0, monotonicMs: 1000 }, observed).kind, "held");
    observed = observe(observed, r, 30_999);
    const almost = judge(r, "me", { serverMs: T0 + 29_999, monotonicMs: 30_999 }, observed);
    assert.deepEqual(almost, { kind: "held", holder: r.holder, since: r.acquireTime, expiresInMs: 1 });
    observed = observe(observed, r, 31_001);
    assert.equal(judge(r, "me", { serverMs: undefined, monotonicMs: 31_001 }, observed).kind, "free");
  });

  it("a renewal (new resourceVersion) restarts the watch", () => {
    const r1 = record();
    let observed = observe(undefined, r1, 0);
    const r2 = record({ resourceVersion: "101", renewTime: new Date(T0 + 20_000) });
    observed = observe(observed, r2, 20_000);
    assert.deepEqual(observed, { resourceVersion: "101", sinceMs: 20_000 });
    const v = judge(r2, "me", { serverMs: undefined, monotonicMs: 40_000 }, observed);
    assert.deepEqual(v, { kind: "held", holder: r2.holder, since: r2.acquireTime, expiresInMs: 10_000 });
  });

  it("a holder that stopped renewing is free after its duration, as the server's clock sees it", () => {
    const r = record();
    let observed: ReturnType<typeof observe> | undefined;
    const freeAt: number[] = [];
    for (let t = 0; t <= 40_000; t += 500) {
      observed = observe(observed, r, t);
      if (judge(r, "me", { serverMs: T0 + t, monotonicMs: t }, observed).kind === "free") freeAt.push(t);
    }
    assert.equal(freeAt[0], 30_500);
  });
});

describe("what taking or renewing writes", () => {
  const now = new Date(T0 + 60_000);

  it("creating: acquired and renewed now, no transition", () => {
    assert.deepEqual(takenSpec(undefined, "me", 30, now), {
      holder: "me",
      durationSeconds: 30,
      acquireTime: now,
      renewTime: now,
      transitions: 0,
    });
  });

  it("taking over from another holder (or a released lease): a transition, acquired now", () => {
    const s = takenSpec(record({ transitions: 4 }), "me", 30, now);
    assert.equal(s.transitions, 5);
    assert.deepEqual(s.acquireTime, now);
    assert.equal(takenSpec(record({ holder: undefined, transitions: 4 }), "me", 30, now).transitions, 5);
  });

  it("renewing our own: acquireTime and transitions kept, renewTime now", () => {
    const s = takenSpec(record({ holder: "me", transitions: 2 }), "me", 30, now);
    assert.deepEqual(s, {
      holder: "me",
      durationSeconds: 30,
      acquireTime: new Date(T0),
      renewTime: now,
      transitions: 2,
    });
  });
});

// Reading etcd's own log for defragmentation: in progress now (by anyone), and
// finished ones with etcd's own duration. Lines as etcd 3.4 (zap), 3.5, 3.6 and 3.7 write them.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { defragActivity, etcdTimeMs, EtcdLogTracker, goDurationMs } from "../../src/core/etcd-log.js";

const at = (s: number): string => `2026-11-27T13:00:${String(s).padStart(2, "0")}.000000Z`;
const line = (s: number, msg: string, extra: Record<string, string> = {}): string =>
  JSON.stringify({ level: "info", ts: at(s), caller: "x.go:1", msg, ...extra });
const t = (s: number): number => Date.parse(at(s));

const START = (s: number) => line(s, "starting defragment");
const BACKEND = (s: number) => line(s, "defragmenting", { path: "/var/lib/etcd/member/snap/db" });
const DONE_36 = (s: number, took: string) => line(s, "finished defragmenting directory", { took });
const DONE_34 = (s: number, took: string) => line(s, "defragmented", { took });
const END = (s: number) => line(s, "finished defragment");
const NOISE = (s: number) => line(s, "apply request took too long", { took: "120ms" });

describe("etcd's log: defragmentation", () => {
  const cases: [
    string,
    string[],
    { since: number | undefined; by: string } | undefined,
    [number, number][],
  ][] = [
    ["nothing logged", [NOISE(1)], undefined, []],
    [
      "a call in progress (talosctl etcd defrag)",
      [NOISE(1), START(2), BACKEND(2)],
      { since: t(2), by: "call" },
      [],
    ],
    ["a call accepted, waiting for the backend's locks", [START(5)], { since: t(5), by: "call" }, []],
    [
      "finished (3.5/3.6/3.7)",
      [START(2), BACKEND(2), NOISE(3), DONE_36(6, "3.5s"), END(6)],
      undefined,
      [[t(6), 3500]],
    ],
    [
      "finished (3.4 with zap)",
      [START(2), BACKEND(2), DONE_34(4, "1.25s"), END(4)],
      undefined,
      [[t(4), 1250]],
    ],
    [
      "a failed call ends it",
      [START(2), BACKEND(2), line(3, "failed to defragment", { error: "x" })],
      undefined,
      [],
    ],
    [
      "two calls queued: one finished, one still running",
      [START(1), START(2), BACKEND(2), DONE_36(4, "2s"), END(4), BACKEND(4)],
      { since: t(2), by: "call" },
      [[t(4), 2000]],
    ],
    ["etcd's own start-up defragment", [BACKEND(9)], { since: t(9), by: "start-up" }, []],
    [
      "a restart ends whatever was running before it",
      [START(1), BACKEND(1), line(7, "starting an etcd server"), NOISE(8)],
      undefined,
      [],
    ],
    [
      "the start before the tail window: the end alone is not a call in progress",
      [DONE_36(3, "800ms"), END(3), NOISE(4)],
      undefined,
      [[t(3), 800]],
    ],
    [
      "a cut or foreign line is no evidence either way",
      ['{"level":"info","ts":"2026-11-27T13:00:0', "plain text from somewhere", START(4)],
      { since: t(4), by: "call" },
      [],
    ],
  ];
  for (const [name, lines, inProgress, finished] of cases) {
    it(name, () => {
      const a = defragActivity(lines);
      assert.deepEqual(a.inProgress, inProgress);
      assert.deepEqual(
        a.finished.map((f) => [f.end, f.tookMs]),
        finished,
      );
    });
  }

  it("reads Go durations and etcd's microsecond timestamps", () => {
    assert.equal(goDurationMs("25.084034ms"), 25.084034);
    assert.equal(goDurationMs("1.5s"), 1500);
    assert.equal(goDurationMs("1m2.5s"), 62_500);
    assert.equal(goDurationMs("850µs"), 0.85);
    assert.equal(goDurationMs("soon"), undefined);
    assert.equal(goDurationMs(""), undefined);
    assert.equal(etcdTimeMs("2026-11-25T14:53:25.176408Z"), Date.parse("2026-11-25T14:53:25.176Z") + 0.408);
    assert.equal(etcdTimeMs("2026-11-25T14:53:25.176+01:00"), Date.parse("2026-11-25T13:53:25.176Z"));
    assert.equal(etcdTimeMs("yesterday"), undefined);
  });
});

describe("etcd's log, followed line by line: when the state at the window's start is known", () => {
  const cases: [string, string[], boolean, boolean][] = [
    // name, lines, anchored, in progress
    ["only noise: a defragment may have started before the window", [NOISE(1), NOISE(2)], false, false],
    ["a start line anchors it", [NOISE(1), START(2), BACKEND(2)], true, true],
    ["an end line anchors it: quiet after", [NOISE(1), DONE_36(3, "2s"), END(3), NOISE(4)], true, false],
    ["a restart anchors it", [line(1, "starting an etcd server"), NOISE(2)], true, false],
    ["a line cut by the window is not a marker", ['ts":"x","msg":"finished defragment"}'], false, false],
  ];
  for (const [name, lines, anchored, busy] of cases) {
    it(name, () => {
      const t = new EtcdLogTracker();
      for (const l of lines) t.push(l);
      assert.equal(t.anchored, anchored);
      assert.equal(t.activity().inProgress !== undefined, busy);
    });
  }

  it("says which lines changed the state", () => {
    const t = new EtcdLogTracker();
    assert.deepEqual(
      [NOISE(1), START(2), NOISE(3), BACKEND(3), DONE_36(4, "1s")].map((l) => t.push(l)),
      [false, true, false, true, true],
    );
  });
});

describe("etcd's log: leader elections (raft's own lines)", () => {
  it("elected, changed and lost leader are elections, by etcd's clock; they say nothing about defragmenting", () => {
    const tracker = new EtcdLogTracker();
    assert.equal(
      tracker.push(line(10, "raft.node: 8e9e05c52164694d elected leader 8e9e05c52164694d at term 2")),
      true,
    );
    assert.equal(tracker.anchored, false, "a leader change does not anchor the defragment state");
    tracker.push(line(20, "raft.node: 8e9e05c52164694d lost leader 8e9e05c52164694d at term 3"));
    tracker.push(
      line(
        21,
        "raft.node: 8e9e05c52164694d changed leader from 8e9e05c52164694d to 91bc3c398fb3c146 at term 3",
      ),
    );
    // Not an election: raft's other lines, and the words elsewhere.
    assert.equal(tracker.push(line(22, "raft.node: 8e9e05c52164694d became follower at term 3")), false);
    assert.equal(tracker.push(line(23, "elected leader somewhere else")), false);
    assert.deepEqual(tracker.activity().elections, [t(10), t(20), t(21)]);
  });

  it("keeps only the last few elections", () => {
    const tracker = new EtcdLogTracker();
    for (let i = 1; i <= 20; i += 1) tracker.push(line(i, `raft.node: 1 elected leader 2 at term ${i}`));
    assert.deepEqual(tracker.activity().elections, [13, 14, 15, 16, 17, 18, 19, 20].map(t));
  });
});

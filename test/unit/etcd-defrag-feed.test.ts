// followDefragGauge (the etcd backend's defragment feed) driven by hand: a scripted `read` (a
// queue of DefragMetrics or errors), a manual poke registry, a counter for `now`, and node:test's
// mock timers for the poll interval, so that nothing waits on real time.

import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import type { DefragFeedUpdate } from "../../src/core/model.js";
import {
  FEED_POLL_MS,
  followDefragGauge,
  type GaugeFeedOptions,
  type WithoutGauge,
} from "../../src/etcd/defrag-feed.js";
import type { DefragMetrics } from "../../src/etcd/metrics.js";

const NODE = "https://10.0.0.2:2379";
const POLL_MS = 50;
/** now() answers T0 + 1000, T0 + 2000, …: one call per reading after the first. */
const T0 = 1_700_000_000_000;
const nthNow = (n: number): number => T0 + n * 1000;

/** Runs the microtasks and I/O callbacks queued so far (setImmediate is not mocked). */
const flush = async (rounds = 5): Promise<void> => {
  for (let i = 0; i < rounds; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
};

function metrics(
  inflight: boolean | undefined,
  finishedCount = 0,
  finishedSeconds = 0,
  leaderChanges = 0,
): DefragMetrics {
  return { inflight, finishedCount, finishedSeconds, leaderChanges };
}

/** A feed with everything it reads scripted; reads past the end of the script wait for the abort. */
function harness(t: TestContext, script: (DefragMetrics | Error)[], withoutGauge: WithoutGauge = "refuse") {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const controller = new AbortController();
  const queue = [...script];
  let reads = 0;
  let nows = 0;
  const readWaiters: { n: number; resolve: () => void }[] = [];
  const wakes = new Set<() => void>();
  let registered: (() => void)[] = [];
  const blind: string[] = [];

  const opts: GaugeFeedOptions = {
    read: (signal) => {
      reads += 1;
      for (const w of readWaiters.filter((w) => w.n <= reads)) w.resolve();
      const next = queue.shift();
      if (next === undefined)
        return new Promise((_, reject) => {
          signal.addEventListener("abort", () => {
            reject(new DefragError("aborted", "stopped", { node: NODE }));
          });
        });
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
    withoutGauge,
    onPoke: (wake) => {
      wakes.add(wake);
      const waiting = registered;
      registered = [];
      for (const r of waiting) r();
      return () => {
        wakes.delete(wake);
      };
    },
    onBlind: (why) => {
      blind.push(why);
    },
    now: () => {
      nows += 1;
      return nthNow(nows);
    },
    pollMs: POLL_MS,
  };
  const feed = followDefragGauge(NODE, controller.signal, opts);

  return {
    feed,
    controller,
    blind,
    get reads() {
      return reads;
    },
    get pokesRegistered() {
      return wakes.size;
    },
    /** Resolves once `read` has been called n times. */
    readCalled(n: number): Promise<void> {
      if (reads >= n) return Promise.resolve();
      return new Promise((resolve) => readWaiters.push({ n, resolve }));
    },
    /** Resolves once the feed waits between two readings (a wake-up registered). */
    pausing(): Promise<void> {
      if (wakes.size > 0) return Promise.resolve();
      return new Promise((resolve) => registered.push(resolve));
    },
    /** The backend's own defragment call ended: waits until the feed pauses, then wakes it. */
    async poke(): Promise<void> {
      await this.pausing();
      for (const wake of [...wakes]) wake();
    },
  };
}

/** Follows a feed through its whole script, one poke a reading, and ends it by abort (cleanly). */
async function collect(t: TestContext, script: DefragMetrics[]): Promise<DefragFeedUpdate[]> {
  const h = harness(t, script);
  const updates: DefragFeedUpdate[] = [];
  const consumer = (async () => {
    for await (const u of h.feed) updates.push(u);
  })();
  for (let i = 1; i < script.length; i += 1) await h.poke();
  // Paused after the last reading: every update of the script has been taken.
  await h.pausing();
  assert.equal(h.reads, script.length);
  h.controller.abort();
  await consumer;
  assert.equal(h.pokesRegistered, 0, "no wake-up left registered");
  return updates;
}

const anchored = (
  inProgress: { since: number | undefined; by: "call" } | undefined,
  finished: { end: number; tookMs: number }[] = [],
  elections: number[] = [],
): DefragFeedUpdate => ({ anchored: true, activity: { inProgress, finished, elections } });

const REFUSED_MESSAGE = `etcd at ${NODE} does not export etcd_disk_defrag_inflight (etcd before 3.5.10): a defragment someone else starts there cannot be seen`;
const REFUSED_HINT =
  "upgrade etcd to 3.5.10+ or 3.6+, or run with --without-defrag-gauge status-only to rely on the member answering its Status (etcd answers none while it defragments)";

describe("followDefragGauge: the first reading", () => {
  it(`FEED_POLL_MS is 500`, () => {
    assert.equal(FEED_POLL_MS, 500);
  });

  it("no gauge (etcd before 3.5.10), refuse: rejects, naming the gauge, the node and the way around", async (t) => {
    const h = harness(t, [metrics(undefined, 3, 1.5, 2)], "refuse");
    await assert.rejects(h.feed.next(), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "refused");
      assert.equal(err.message, REFUSED_MESSAGE);
      assert.equal(err.node, NODE);
      assert.equal(err.hint, REFUSED_HINT);
      assert.match(err.hint, /--without-defrag-gauge status-only/);
      return true;
    });
    assert.deepEqual(h.blind, []);
    assert.equal(h.reads, 1);
  });

  const unreachable = new DefragError("unreachable", "etcd_disk_defrag_inflight cannot be read at …", {
    node: NODE,
  });

  it("the read fails, refuse: rejects with that very error", async (t) => {
    const h = harness(t, [unreachable], "refuse");
    await assert.rejects(h.feed.next(), (err: unknown) => err === unreachable);
    assert.deepEqual(h.blind, []);
  });

  const blindCases: { name: string; first: DefragMetrics | Error; why: string }[] = [
    { name: "the read fails", first: unreachable, why: unreachable.message },
    { name: "no gauge", first: metrics(undefined), why: REFUSED_MESSAGE },
  ];
  for (const c of blindCases)
    it(`${c.name}, status-only: said once, one unanchored update, then nothing until aborted`, async (t) => {
      const h = harness(t, [c.first, metrics(true, 1, 1, 1)], "status-only");
      assert.deepEqual(await h.feed.next(), {
        done: false,
        value: { anchored: false, activity: { inProgress: undefined, finished: [] } },
      });
      assert.deepEqual(h.blind, [c.why]);

      let settled = false;
      const next = h.feed.next().then((r) => {
        settled = true;
        return r;
      });
      // Neither time nor a poke reads again: the feed is blind.
      t.mock.timers.tick(100 * FEED_POLL_MS);
      assert.equal(h.pokesRegistered, 0);
      await flush();
      assert.equal(settled, false);
      assert.equal(h.reads, 1);

      h.controller.abort();
      assert.deepEqual(await next, { done: true, value: undefined });
      assert.deepEqual(h.blind, [c.why], "said once");
    });

  it("status-only, aborted before the next update is asked for: it ends too", async (t) => {
    const h = harness(t, [unreachable], "status-only");
    assert.equal((await h.feed.next()).done, false);
    h.controller.abort();
    let settled = false;
    void h.feed.next().then(() => {
      settled = true;
    });
    await flush();
    assert.equal(settled, true, "next() after the abort never settles: the feed hangs");
  });

  it("a bug in the read (not a DefragError) is rethrown as internal, even status-only", async (t) => {
    const h = harness(t, [new TypeError("x is undefined")], "status-only");
    await assert.rejects(h.feed.next(), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "internal");
      assert.equal(err.message, "x is undefined");
      return true;
    });
    assert.deepEqual(h.blind, []);
  });

  it("a read failing because the feed was aborted is rethrown, even status-only (nothing said)", async (t) => {
    const h = harness(t, [], "status-only");
    const first = h.feed.next();
    await h.readCalled(1);
    h.controller.abort();
    await assert.rejects(first, (err: unknown) => err instanceof DefragError && err.kind === "aborted");
    assert.deepEqual(h.blind, []);
  });
});

describe("followDefragGauge: readings", () => {
  const cases: { name: string; script: DefragMetrics[]; want: DefragFeedUpdate[] }[] = [
    {
      name: "quiet at first: anchored, nothing in progress",
      script: [metrics(false, 3, 1.5, 2)],
      want: [anchored(undefined)],
    },
    {
      name: "defragmenting at first: in progress since unknown, by a call",
      script: [metrics(true, 3, 1.5, 2)],
      want: [anchored({ since: undefined, by: "call" })],
    },
    {
      name: "the gauge 0 → 1: in progress since now()",
      script: [metrics(false), metrics(true)],
      want: [anchored(undefined), anchored({ since: nthNow(1), by: "call" })],
    },
    {
      name: "0 → 1 → 0 with count +1 and sum +0.25: finished at now(), in 250 ms",
      script: [metrics(false, 3, 1.5), metrics(true, 3, 1.5), metrics(false, 4, 1.75)],
      want: [
        anchored(undefined),
        anchored({ since: nthNow(1), by: "call" }),
        anchored(undefined, [{ end: nthNow(2), tookMs: 250 }]),
      ],
    },
    {
      name: "in progress at first, then done: the unknown start ends",
      script: [metrics(true, 0, 0), metrics(false, 1, 2)],
      want: [
        anchored({ since: undefined, by: "call" }),
        anchored(undefined, [{ end: nthNow(1), tookMs: 2000 }]),
      ],
    },
    {
      name: "running at both readings with one finished between: the one running now began at that reading",
      script: [metrics(true, 0, 0), metrics(true, 1, 0.5)],
      want: [
        anchored({ since: undefined, by: "call" }),
        anchored({ since: nthNow(1), by: "call" }, [{ end: nthNow(1), tookMs: 500 }]),
      ],
    },
    {
      name: "a defragment begun and finished between two readings: finished, never seen in progress",
      script: [metrics(false, 0, 0), metrics(false, 1, 0.125)],
      want: [anchored(undefined), anchored(undefined, [{ end: nthNow(1), tookMs: 125 }])],
    },
    {
      name: "two finished between two readings: the time split between them",
      script: [metrics(false, 1, 0.5), metrics(false, 3, 1.5)],
      want: [
        anchored(undefined),
        anchored(undefined, [
          { end: nthNow(1), tookMs: 500 },
          { end: nthNow(1), tookMs: 500 },
        ]),
      ],
    },
    {
      name: "finished ones accumulate, oldest first",
      script: [metrics(false, 0, 0), metrics(false, 1, 0.25), metrics(false, 2, 1.25)],
      want: [
        anchored(undefined),
        anchored(undefined, [{ end: nthNow(1), tookMs: 250 }]),
        anchored(undefined, [
          { end: nthNow(1), tookMs: 250 },
          { end: nthNow(2), tookMs: 1000 },
        ]),
      ],
    },
    {
      name: "a sum that went down does not make a negative duration",
      script: [metrics(false, 1, 5), metrics(false, 2, 4)],
      want: [anchored(undefined), anchored(undefined, [{ end: nthNow(1), tookMs: 0 }])],
    },
    {
      name: "leader changes: one election each time they grow, whatever by",
      script: [metrics(false, 0, 0, 2), metrics(false, 0, 0, 3), metrics(false, 0, 0, 6)],
      want: [
        anchored(undefined),
        anchored(undefined, [], [nthNow(1)]),
        anchored(undefined, [], [nthNow(1), nthNow(2)]),
      ],
    },
    {
      name: "no change: no update (the next change comes with its own time)",
      script: [
        metrics(true, 1, 1, 1),
        metrics(true, 1, 1, 1),
        metrics(true, 1, 1, 1),
        metrics(false, 2, 2, 1),
      ],
      want: [
        anchored({ since: undefined, by: "call" }),
        anchored(undefined, [{ end: nthNow(3), tookMs: 1000 }]),
      ],
    },
    {
      name: "etcd restarted (counters back to 0): nothing finished, no election, no update; counted again from there",
      script: [metrics(false, 5, 10, 4), metrics(false, 0, 0, 0), metrics(false, 1, 0.25, 1)],
      want: [anchored(undefined), anchored(undefined, [{ end: nthNow(2), tookMs: 250 }], [nthNow(2)])],
    },
    {
      name: "everything at once: finished, an election and a new one in progress",
      script: [metrics(false, 0, 0, 0), metrics(true, 1, 0.25, 1)],
      want: [
        anchored(undefined),
        anchored({ since: nthNow(1), by: "call" }, [{ end: nthNow(1), tookMs: 250 }], [nthNow(1)]),
      ],
    },
    {
      name: "the gauge lost later (etcd downgraded): read as not in progress",
      script: [metrics(true), metrics(undefined)],
      want: [anchored({ since: undefined, by: "call" }), anchored(undefined)],
    },
  ];
  for (const c of cases)
    it(c.name, async (t) => {
      // deepEqual on all of them also shows that an update taken is never changed afterwards.
      assert.deepEqual(await collect(t, c.script), c.want);
    });

  it("a reading that fails after the first rejects with its error (the feed is opened again)", async (t) => {
    const err = new DefragError("timeout", `${NODE}/metrics did not answer in time`, { node: NODE });
    const h = harness(t, [metrics(false), err]);
    assert.equal((await h.feed.next()).done, false);
    const next = h.feed.next();
    await h.poke();
    await assert.rejects(next, (e: unknown) => e === err);
  });
});

describe("followDefragGauge: when it reads", () => {
  it("every pollMs: not a tick before", async (t) => {
    const h = harness(t, [metrics(false), metrics(false), metrics(true)]);
    await h.feed.next();
    const next = h.feed.next();
    await h.pausing();
    t.mock.timers.tick(POLL_MS - 1);
    await flush();
    assert.equal(h.reads, 1);
    t.mock.timers.tick(1);
    await h.readCalled(2);
    // Unchanged: no update; it waits pollMs again.
    await h.pausing();
    t.mock.timers.tick(POLL_MS - 1);
    await flush();
    assert.equal(h.reads, 2);
    t.mock.timers.tick(1);
    assert.deepEqual((await next).value, anchored({ since: nthNow(2), by: "call" }));
    assert.equal(h.reads, 3);
    await h.feed.return(undefined);
  });

  it(`FEED_POLL_MS when pollMs is not given`, async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const controller = new AbortController();
    let reads = 0;
    const feed = followDefragGauge(NODE, controller.signal, {
      read: () => {
        reads += 1;
        return Promise.resolve(metrics(reads > 1));
      },
      withoutGauge: "refuse",
      onPoke: () => () => undefined,
      onBlind: () => undefined,
      now: () => 0,
    });
    await feed.next();
    const next = feed.next();
    await flush();
    t.mock.timers.tick(FEED_POLL_MS - 1);
    await flush();
    assert.equal(reads, 1);
    t.mock.timers.tick(1);
    assert.deepEqual((await next).value, anchored({ since: 0, by: "call" }));
    await feed.return(undefined);
  });

  it("a poke reads at once, without waiting pollMs", async (t) => {
    const h = harness(t, [metrics(false), metrics(false, 1, 0.25)]);
    await h.feed.next();
    const next = h.feed.next();
    await h.pausing();
    await flush();
    assert.equal(h.reads, 1, "waiting for pollMs");
    await h.poke(); // no mock time has passed
    assert.deepEqual((await next).value, anchored(undefined, [{ end: nthNow(1), tookMs: 250 }]));
    assert.equal(h.reads, 2);
    assert.equal(h.pokesRegistered, 0, "the wake-up removed once used");
    await h.feed.return(undefined);
  });

  it("aborted between two updates: the next one asked for ends it, pollMs later at the latest", async (t) => {
    const h = harness(t, [metrics(false), metrics(true)]);
    await h.feed.next();
    h.controller.abort();
    let settled = false;
    const end = h.feed.next().then((r) => {
      settled = true;
      return r;
    });
    await flush();
    // The abort came before the pause listened for it: only the poll timer ends the pause.
    t.mock.timers.tick(POLL_MS);
    assert.deepEqual(await end, { done: true, value: undefined });
    assert.equal(settled, true);
    assert.equal(h.reads, 1, "no reading after the abort");
    assert.equal(h.pokesRegistered, 0);
  });

  it("abort while it waits ends the iteration cleanly: no rejection, no more reads, nothing left registered", async (t) => {
    const h = harness(t, [metrics(true), metrics(true)]);
    const updates: DefragFeedUpdate[] = [];
    const consumer = (async () => {
      for await (const u of h.feed) updates.push(u);
    })();
    await h.pausing();
    h.controller.abort();
    await consumer;
    assert.deepEqual(updates, [anchored({ since: undefined, by: "call" })]);
    assert.equal(h.reads, 1);
    assert.equal(h.pokesRegistered, 0);
    t.mock.timers.tick(10 * POLL_MS);
    await flush();
    assert.equal(h.reads, 1);
  });

  it("a consumer that stops taking updates (break) ends the feed", async (t) => {
    const h = harness(t, [metrics(false), metrics(true)]);
    for await (const u of h.feed) {
      assert.equal(u.anchored, true);
      break;
    }
    assert.deepEqual(await h.feed.next(), { done: true, value: undefined });
    assert.equal(h.reads, 1);
    assert.equal(h.pokesRegistered, 0);
  });
});

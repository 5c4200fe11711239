// TalosClient's endpoint failover, with in-memory endpoints (Connect's router
// transport) in place of mutual-TLS HTTP/2: which endpoint receives which call
// when one cannot be opened, breaks during a call, or answers with an error.

import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";

import {
  Code,
  ConnectError,
  createRouterTransport,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";

import type { Config } from "../../src/config/config.js";
import { endpointAddress, type Endpoint } from "../../src/config/endpoints.js";
import { DefragError } from "../../src/core/errors.js";
import { TalosClient } from "../../src/talos/client.js";
import type { EndpointConnection } from "../../src/talos/session.js";
import { MachineService } from "../../src/talos/gen/machine/machine_pb.js";
import { GetResponseSchema, State, type GetRequest } from "../../src/talos/gen/cosi/state_pb.js";
import { fromBinary } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The COSI Get reply for an etcd spec, as Talos encodes it (test/vectors/talos-wire.json). */
const ETCDSPEC_REPLY = (() => {
  const file = join(import.meta.dirname, "..", "vectors", "talos-wire.json");
  const vectors = (JSON.parse(readFileSync(file, "utf8")) as { vectors: { name: string; base64: string }[] })
    .vectors;
  const v = vectors.find((x) => x.name === "etcdspec-get");
  assert.ok(v);
  return fromBinary(GetResponseSchema, Buffer.from(v.base64, "base64"));
})();

const BACKOFF_MS = 15_000;

interface Call {
  endpoint: string;
  method: string;
  node: string | null;
}

/** One in-memory endpoint and what it does to the calls it gets. */
class FakeEndpoint {
  /** False: the connection cannot be opened (like ECONNREFUSED). */
  reachable = true;
  connects = 0;
  /** Methods whose reply is lost: the endpoint handles the call, then the connection resets. */
  readonly dropReply = new Set<string>();
  /** The next call of a method is answered with this status. */
  readonly failNext = new Map<string, ConnectError>();
  /** The COSI Get requests received. */
  readonly gets: GetRequest[] = [];

  constructor(
    readonly address: string,
    readonly index: number,
    private readonly calls: Call[],
  ) {}

  connection(): EndpointConnection {
    const inner = createRouterTransport((router) => {
      router.service(MachineService, {
        etcdMemberList: (_req, ctx) => {
          this.receive("EtcdMemberList", ctx);
          return { messages: [{ members: [{ id: 1n, hostname: `answered-by-${this.address}` }] }] };
        },
        etcdStatus: (_req, ctx) => {
          this.receive("EtcdStatus", ctx);
          return { messages: [{ memberStatus: { memberId: BigInt(this.index + 1) } }] };
        },
        etcdDefragment: (_req, ctx) => {
          this.receive("EtcdDefragment", ctx);
          return { messages: [{}] };
        },
      });
      router.service(State, {
        get: (req, ctx) => {
          this.receive("Get", ctx);
          this.gets.push(req);
          return ETCDSPEC_REPLY;
        },
      });
    });
    const transport: Transport = {
      unary: async (method, signal, timeoutMs, header, input, contextValues) => {
        const reply = await inner.unary(method, signal, timeoutMs, header, input, contextValues);
        if (this.dropReply.has(method.name)) throw connectionReset();
        return reply;
      },
      stream: (...args) => inner.stream(...args),
    };
    const manager: EndpointConnection["manager"] = {
      connect: () => {
        this.connects += 1;
        return Promise.resolve(this.reachable ? "open" : "error");
      },
      error: () => Object.assign(new Error(`connect ECONNREFUSED ${this.address}`), { code: "ECONNREFUSED" }),
      abort: () => undefined,
    };
    return { manager, transport };
  }

  private receive(method: string, ctx: HandlerContext): void {
    this.calls.push({ endpoint: this.address, method, node: ctx.requestHeader.get("node") });
    const failure = this.failNext.get(method);
    if (failure !== undefined) {
      this.failNext.delete(method);
      throw failure;
    }
  }
}

/** What Node's HTTP/2 client reports when the connection drops during a call. */
function connectionReset(): ConnectError {
  const cause = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
  return new ConnectError("read ECONNRESET", Code.Unavailable, undefined, undefined, cause);
}

function setup(count: number) {
  const calls: Call[] = [];
  const warnings: string[] = [];
  const clock = { now: 1_000_000 };
  const endpoints: Endpoint[] = Array.from({ length: count }, (_, i) => ({
    host: `10.0.0.${i + 1}`,
    port: 50000,
    raw: `10.0.0.${i + 1}`,
  }));
  const fakes = endpoints.map((e, i) => new FakeEndpoint(endpointAddress(e), i, calls));
  const config: Config = {
    source: "test",
    contextName: "test",
    endpoints,
    nodes: [],
    caPem: "",
    certPem: "",
    keyPem: "",
    roles: ["os:operator"],
    certIssuedByCa: true,
    warnings: [],
  };
  const client = new TalosClient(config, {
    callTimeoutMs: 5_000,
    onWarning: (m) => warnings.push(m),
    connect: (endpoint) => {
      const fake = fakes.find((f) => f.address === endpointAddress(endpoint));
      assert.ok(fake, `an endpoint is faked for ${endpoint.raw}`);
      return fake.connection();
    },
    now: () => clock.now,
  });
  const ep = (i: number): FakeEndpoint => fakes[i]!;
  /** Calls of one method, as "endpoint node" strings, in order. */
  const received = (method: string): string[] =>
    calls.filter((c) => c.method === method).map((c) => `${c.endpoint} ${c.node ?? "-"}`);
  return { client, ep, calls, warnings, clock, received };
}

describe("TalosClient endpoint failover", () => {
  it("a read moves to the second endpoint when the first cannot be opened", async () => {
    const { client, ep, received, warnings } = setup(2);
    ep(0).reachable = false;
    const status = await client.status("10.0.0.7");
    assert.equal(status.memberId, 2n, "the second endpoint answered");
    assert.deepEqual(received("EtcdStatus"), ["10.0.0.2:50000 10.0.0.7"]);
    assert.equal(ep(0).connects, 1, "the first endpoint was tried");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /cannot reach endpoint 10\.0\.0\.1:50000.*trying the other endpoints/);
  });

  it("a read moves on after a transport failure during the call", async () => {
    const { client, ep, received } = setup(2);
    ep(0).dropReply.add("EtcdStatus");
    const status = await client.status("10.0.0.7");
    assert.equal(status.memberId, 2n);
    assert.deepEqual(received("EtcdStatus"), ["10.0.0.1:50000 10.0.0.7", "10.0.0.2:50000 10.0.0.7"]);
  });

  it("a defragment does not move on once the call was sent", async () => {
    const { client, ep, received } = setup(2);
    ep(0).dropReply.add("EtcdDefragment");
    await assert.rejects(
      client.defragment("10.0.0.7", { timeoutMs: 5_000 }),
      (err: unknown) =>
        err instanceof DefragError &&
        err.kind === "unreachable" &&
        err.endpoint === "10.0.0.1:50000" &&
        /^EtcdDefragment via 10\.0\.0\.1:50000: the connection broke during the call \(/.test(err.message) &&
        /etcd goes on defragmenting when the connection breaks/.test(err.hint ?? ""),
    );
    assert.deepEqual(received("EtcdDefragment"), ["10.0.0.1:50000 10.0.0.7"], "only the first endpoint");
    assert.equal(ep(1).connects, 0, "the second endpoint was not even opened");
  });

  it("a stream reset by the peer (Canceled, no status) is a broken connection, not a cancellation", async () => {
    const { client, ep } = setup(1);
    ep(0).failNext.set("EtcdDefragment", new ConnectError("stream reset", Code.Canceled));
    await assert.rejects(client.defragment("10.0.0.7", { timeoutMs: 5_000 }), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "unreachable");
      assert.match(
        err.message,
        /^EtcdDefragment via 10\.0\.0\.1:50000: the connection broke during the call/,
      );
      assert.doesNotMatch(err.message, /cancelled/);
      return true;
    });
  });

  it("a defragment moves on when the first endpoint cannot be opened (nothing was sent)", async () => {
    const { client, ep, received } = setup(2);
    ep(0).reachable = false;
    await client.defragment("10.0.0.7", { timeoutMs: 5_000 });
    assert.deepEqual(received("EtcdDefragment"), ["10.0.0.2:50000 10.0.0.7"]);
  });

  it("a permission-denied status is not retried on another endpoint", async () => {
    const { client, ep, received } = setup(2);
    ep(0).failNext.set("EtcdStatus", new ConnectError("not authorized", Code.PermissionDenied));
    await assert.rejects(
      client.status("10.0.0.7"),
      (err: unknown) => err instanceof DefragError && err.kind === "permission" && err.node === "10.0.0.7",
    );
    assert.deepEqual(received("EtcdStatus"), ["10.0.0.1:50000 10.0.0.7"]);
    assert.equal(ep(1).connects, 0);

    ep(0).failNext.set("EtcdMemberList", new ConnectError("not authorized", Code.PermissionDenied));
    await assert.rejects(
      client.memberList(),
      (err: unknown) => err instanceof DefragError && err.kind === "permission",
    );
    assert.deepEqual(
      received("EtcdMemberList"),
      ["10.0.0.1:50000 -"],
      "the member list is not retried either",
    );
  });

  it("an endpoint that failed is passed over until its backoff ends, then tried again", async () => {
    const { client, ep, received, clock } = setup(2);
    ep(0).reachable = false;
    await client.status("10.0.0.7");
    assert.equal(ep(0).connects, 1);
    ep(0).reachable = true;

    // The member list moves on from an endpoint whose etcd errs; the next one is in backoff.
    clock.now += 1_000;
    ep(1).failNext.set("EtcdMemberList", new ConnectError("failed to get etcd members: boom", Code.Unknown));
    const during = await client.memberList();
    assert.equal(during[0]?.hostname, "answered-by-10.0.0.2:50000");
    assert.deepEqual(received("EtcdMemberList"), ["10.0.0.2:50000 -", "10.0.0.2:50000 -"]);
    assert.equal(ep(0).connects, 1, "the endpoint in backoff was not opened");

    clock.now += BACKOFF_MS;
    ep(1).failNext.set("EtcdMemberList", new ConnectError("failed to get etcd members: boom", Code.Unknown));
    const after = await client.memberList();
    assert.equal(after[0]?.hostname, "answered-by-10.0.0.1:50000");
    assert.deepEqual(received("EtcdMemberList").slice(2), ["10.0.0.2:50000 -", "10.0.0.1:50000 -"]);
    assert.equal(ep(0).connects, 2);
  });

  it("when every endpoint fails, the error lists them all", async () => {
    const { client, ep, received } = setup(3);
    ep(0).reachable = false;
    ep(1).dropReply.add("EtcdStatus");
    ep(2).reachable = false;
    await assert.rejects(client.status("10.0.0.7"), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "unreachable");
      assert.equal(err.node, "10.0.0.7");
      assert.match(err.message, /^no endpoint could be used: /);
      for (const address of ["10.0.0.1:50000", "10.0.0.2:50000", "10.0.0.3:50000"])
        assert.ok(err.message.includes(address), `${address} is named in: ${err.message}`);
      return true;
    });
    assert.deepEqual(received("EtcdStatus"), ["10.0.0.2:50000 10.0.0.7"], "only the open endpoint got it");
  });

  it("the member list moves to the next endpoint when one endpoint's etcd answers with an error", async () => {
    const { client, ep, received, warnings } = setup(3);
    ep(0).failNext.set(
      "EtcdMemberList",
      new ConnectError("failed to get etcd members: etcdserver: no leader", Code.Unknown),
    );
    const members = await client.memberList();
    assert.equal(members[0]?.hostname, "answered-by-10.0.0.2:50000");
    assert.deepEqual(received("EtcdMemberList"), ["10.0.0.1:50000 -", "10.0.0.2:50000 -"]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /member list could not be read.*no leader/);
  });
});

describe("TalosClient and the caller's AbortSignal", () => {
  it("leaves no abort listener behind after its calls", async () => {
    const { client } = setup(2);
    const stop = new AbortController();
    const before = getEventListeners(stop.signal, "abort").length;
    for (let i = 0; i < 50; i += 1) {
      await client.status("10.0.0.7", stop.signal);
      await client.alarms(undefined, stop.signal).catch(() => undefined);
    }
    await client.memberList(stop.signal);
    await client.defragment("10.0.0.7", { timeoutMs: 5_000, signal: stop.signal });
    assert.equal(getEventListeners(stop.signal, "abort").length, before);
  });
  it("reads the etcd spec with COSI's State.Get through the node metadata, failing over like any read", async () => {
    const { client, ep, received } = setup(2);
    ep(0).reachable = false;
    const args = await client.etcdExtraArgs("10.32.8.80");
    assert.deepEqual(args["quota-backend-bytes"], ["8589934592"]);
    assert.deepEqual(received("Get"), ["10.0.0.2:50000 10.32.8.80"]);
    const [req] = ep(1).gets;
    assert.deepEqual([req?.namespace, req?.type, req?.id], ["etcd", "EtcdSpecs.etcd.talos.dev", "etcd"]);
    ep(1).failNext.set("Get", new ConnectError("not authorized", Code.PermissionDenied));
    await assert.rejects(
      client.etcdExtraArgs("10.32.8.80"),
      (e: unknown) =>
        e instanceof DefragError && e.kind === "permission" && /State\.Get was denied/.test(e.message),
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { endpointAddress, parseEndpoint, parseNode, splitList } from "../../src/config/endpoints.js";
import { DefragError } from "../../src/core/errors.js";

describe("endpoints", () => {
  it("accepts what talosctl accepts", () => {
    const cases: [string, string, number][] = [
      ["10.0.0.2", "10.0.0.2", 50000],
      ["10.0.0.2:50001", "10.0.0.2", 50001],
      ["fd00::2", "fd00::2", 50000],
      ["[fd00::2]:50001", "fd00::2", 50001],
      ["[fd00::2]", "fd00::2", 50000],
      ["talos.default", "talos.default", 50000],
      ["https://cp1.example.com", "cp1.example.com", 443],
      ["https://[fd00::3]:50000", "fd00::3", 50000],
    ];
    for (const [raw, host, port] of cases) {
      const e = parseEndpoint(raw, "--endpoints");
      assert.deepEqual([e.host, e.port], [host, port], raw);
    }
    assert.equal(endpointAddress({ host: "fd00::2", port: 50000 }), "[fd00::2]:50000");
    assert.equal(endpointAddress({ host: "10.0.0.2", port: 50000 }), "10.0.0.2:50000");
  });

  it("rejects bad endpoints with the field name", () => {
    for (const raw of ["10.0.0.2:99999", "[nothex]:1", "a b", "host:port"]) {
      assert.throws(
        () => parseEndpoint(raw, "contexts.x.endpoints[0]"),
        (err: unknown) =>
          err instanceof DefragError &&
          err.kind === "config" &&
          err.message.includes("contexts.x.endpoints[0]"),
        raw,
      );
    }
  });

  it("an address that is neither an IP address nor a host name is found when it is read, with where it came from", () => {
    const cases: [string, RegExp][] = [
      ["10.0.0.999", /^contexts\.x\.endpoints\[0\]: "10\.0\.0\.999" is not a valid IPv4 address$/],
      ["10.0.0.999:50000", /is not a valid IPv4 address/],
      ["https://10.0.0.999", /is not a valid URL/],
      ["1.2.3", /is not a valid IPv4 address/],
      ["-cp1.lan", /is neither an IP address nor a host name/],
      ["cp_1.lan", /is neither an IP address nor a host name/],
      ["cp1.123", /is neither an IP address nor a host name/],
      ["http://1.2.3.4", /is a http:\/\/ URL, but the Talos API is gRPC over TLS/],
      ["grpc://1.2.3.4:50000", /is a grpc:\/\/ URL/],
      ["https://1.2.3.4/api", /has more than a host and a port/],
    ];
    for (const [raw, message] of cases)
      assert.throws(
        () => parseEndpoint(raw, "contexts.x.endpoints[0]"),
        (err: unknown) => err instanceof DefragError && err.kind === "config" && message.test(err.message),
        raw,
      );
    assert.throws(
      () => parseNode("10.0.0.999", "TALOS_NODES"),
      (err: unknown) =>
        err instanceof DefragError &&
        err.kind === "config" &&
        err.message === 'TALOS_NODES: "10.0.0.999" is not a valid IPv4 address',
    );
    assert.equal(parseNode("cp-1.example.com", "--nodes"), "cp-1.example.com");
  });

  it("nodes are addresses without a port", () => {
    assert.equal(parseNode("10.0.0.2", "--nodes"), "10.0.0.2");
    assert.equal(parseNode("[fd00::2]", "--nodes"), "fd00::2");
    assert.equal(parseNode("cp-1.lan", "--nodes"), "cp-1.lan");
    assert.throws(() => parseNode("10.0.0.2:50000", "--nodes"), /not a node address/);
  });

  it("splits comma or space separated lists", () => {
    assert.deepEqual(splitList("a, b ,c"), ["a", "b", "c"]);
    assert.deepEqual(splitList(undefined), []);
    assert.throws(() => splitList("a,,b", "--nodes"), /^DefragError: --nodes "a,,b" has an empty entry$/);
    assert.throws(() => splitList(",,", "--nodes"), /--nodes ",," has an empty entry/);
  });
});

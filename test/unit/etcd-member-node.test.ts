// Where the etcd backend reaches each member (memberNode): the endpoint given for it, the endpoint that
// answered as it, else an advertised client URL reachable from here.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { memberNode } from "../../src/etcd/backend.js";

describe("memberNode", () => {
  const cases: [string, string[], string[], string | undefined, string | undefined][] = [
    // name, advertised client URLs, endpoints, the endpoint that answered as it, expected
    [
      "the endpoint given for it wins",
      ["https://10.0.0.2:2379"],
      ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
      undefined,
      "https://10.0.0.2:2379",
    ],
    [
      "given without a port: compared with etcd's 2379",
      ["https://10.0.0.2"],
      ["https://10.0.0.2:2379"],
      undefined,
      "https://10.0.0.2:2379",
    ],
    [
      "not given: the endpoint that answered as it (it advertises a name we cannot resolve)",
      ["https://etcd-1.internal:2379"],
      ["https://10.0.0.1:2379"],
      "https://10.0.0.1:2379",
      "https://10.0.0.1:2379",
    ],
    [
      "kubeadm-like: loopback advertised first, the node's address next: the node's address",
      ["https://127.0.0.1:2379", "https://10.0.0.3:2379"],
      ["https://10.0.0.1:2379"],
      undefined,
      "https://10.0.0.3:2379",
    ],
    [
      "loopback endpoints (a test cluster on one machine): loopback members are fine",
      ["https://127.0.0.3:2379"],
      ["https://127.0.0.1:2379"],
      undefined,
      "https://127.0.0.3:2379",
    ],
    [
      "the endpoints' scheme first",
      ["http://10.0.0.3:2379", "https://10.0.0.3:2379"],
      ["https://10.0.0.1:2379"],
      undefined,
      "https://10.0.0.3:2379",
    ],
    [
      "only loopback advertised, remote endpoints: that, for want of another (said by its errors)",
      ["https://127.0.0.1:2379"],
      ["https://10.0.0.1:2379"],
      undefined,
      "https://127.0.0.1:2379",
    ],
    [
      "nothing advertised (a member not started yet): none",
      [],
      ["https://10.0.0.1:2379"],
      undefined,
      undefined,
    ],
    [
      "unparsable URLs are skipped",
      ["::bad::", "https://10.0.0.4:2379"],
      ["https://10.0.0.1:2379"],
      undefined,
      "https://10.0.0.4:2379",
    ],
  ];
  for (const [name, advertised, endpoints, answered, want] of cases)
    it(name, () => {
      assert.equal(memberNode(advertised, endpoints, answered), want);
    });
});

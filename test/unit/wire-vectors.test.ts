// Decodes reply bytes encoded with Talos's own API definitions
// (test/vectors/talos-wire.json, a copy of the workspace's ../shared/vectors/talos-wire.json)
// with our proto subset, field by field.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { fromBinary, type DescMessage } from "@bufbuild/protobuf";

import { formatMemberId } from "../../src/core/units.js";
import {
  EtcdAlarmListResponseSchema,
  EtcdDefragmentResponseSchema,
  EtcdForfeitLeadershipResponseSchema,
  EtcdMemberAlarm_AlarmType,
  EtcdMemberListResponseSchema,
  EtcdStatusResponseSchema,
} from "../../src/talos/gen/machine/machine_pb.js";
import { unpackMessages } from "../../src/talos/replies.js";
import { ETCD_SPEC, extraArgsOf } from "../../src/talos/etcd-spec.js";
import { GetResponseSchema } from "../../src/talos/gen/cosi/state_pb.js";
import { SpecSpecSchema } from "../../src/talos/gen/resource/etcd_pb.js";
import { memberConfigFromFlags, startupDefragReport } from "../../src/core/member-config.js";
import { MiB } from "../harness/units.js";
import { TALOS_WORDS } from "../../src/talos/words.js";

interface Vector {
  name: string;
  type: string;
  base64: string;
}

const file = join(import.meta.dirname, "..", "vectors", "talos-wire.json");
const vectors = (JSON.parse(readFileSync(file, "utf8")) as { vectors: Vector[] }).vectors;
/** Where the vectors were first published, next to this repository in the workspace (absent in other clones). */
const SHARED = join(import.meta.dirname, "..", "..", "..", "shared", "vectors", "talos-wire.json");

function decode<D extends DescMessage>(schema: D, name: string) {
  const v = vectors.find((x) => x.name === name);
  assert.ok(v, `vector ${name} exists`);
  assert.equal(v.type, schema.typeName);
  return fromBinary(schema, Buffer.from(v.base64, "base64"));
}

describe("Talos wire vectors", () => {
  it("the repository's copy holds every shared vector unchanged, where those exist", (t) => {
    if (!existsSync(SHARED)) {
      t.skip(`no ${SHARED} in this clone: the copy in test/vectors is used as it is`);
      return;
    }
    // The repository adds vectors of its own (the COSI state API's); the shared ones stay byte for byte.
    const shared = (JSON.parse(readFileSync(SHARED, "utf8")) as { vectors: Vector[] }).vectors;
    for (const v of shared) {
      assert.deepEqual(
        vectors.find((x) => x.name === v.name),
        v,
        `vector ${v.name} differs from ../shared/vectors/talos-wire.json: copy it again`,
      );
    }
  });

  it("covers every vector in the file", () => {
    assert.deepEqual(
      vectors.map((v) => v.name).sort(),
      [
        "alarms",
        "defragment",
        "forfeit",
        "forfeit-not-leader",
        "memberlist",
        "status-one2many-with-error",
        "status-one2one",
        "etcdspec-get",
        "etcdspec-get-legacy",
      ].sort(),
    );
  });

  it("status-one2one: one follower status, no metadata", () => {
    const reply = decode(EtcdStatusResponseSchema, "status-one2one");
    assert.equal(reply.messages.length, 1);
    const entry = reply.messages[0];
    assert.ok(entry);
    assert.equal(entry.metadata, undefined);
    const s = entry.memberStatus;
    assert.ok(s);
    assert.equal(formatMemberId(s.memberId), "8e9e05c52164694d");
    assert.equal(s.memberId, 10276657743932975437n);
    assert.equal(s.protocolVersion, "3.5.17");
    assert.equal(s.storageVersion, "3.5.0");
    assert.equal(s.dbSize, BigInt(900 * MiB));
    assert.equal(s.dbSizeInUse, BigInt(200 * MiB));
    assert.equal(formatMemberId(s.leader), "31c16871d4edcfe8");
    assert.notEqual(s.leader, s.memberId);
    assert.equal(s.raftTerm, 7n);
    assert.equal(s.raftIndex, 123456n);
    assert.equal(s.raftAppliedIndex, 123450n);
    assert.equal(s.isLearner, false);
    assert.deepEqual(s.errors, []);
    const results = unpackMessages("EtcdStatus", reply.messages, "10.0.0.9");
    assert.deepEqual(
      results.map((r) => r.node),
      ["10.0.0.9"],
      "an entry without metadata belongs to the node we asked",
    );
  });

  it("status-one2many-with-error: two members and one per-node error", () => {
    const reply = decode(EtcdStatusResponseSchema, "status-one2many-with-error");
    const results = unpackMessages("EtcdStatus", reply.messages, "unused");
    assert.deepEqual(
      results.map((r) => r.node),
      ["10.32.8.80", "10.32.8.81", "10.32.8.82"],
    );
    const [a, b, c] = results;
    assert.ok(a && "value" in a && b && "value" in b && c && "error" in c);
    const leader = a.value.memberStatus;
    assert.ok(leader);
    assert.equal(formatMemberId(leader.memberId), "8e9e05c52164694d");
    assert.equal(leader.leader, leader.memberId, "the leader's id equals its member id");
    assert.equal(leader.dbSize, BigInt(100 * MiB));
    assert.equal(leader.dbSizeInUse, BigInt(50 * MiB));
    const follower = b.value.memberStatus;
    assert.ok(follower);
    assert.equal(formatMemberId(follower.memberId), "31c16871d4edcfe8");
    assert.equal(follower.raftAppliedIndex, 9n);
    assert.equal(follower.errors.length, 1);
    assert.equal(follower.errors[0], "etcdserver: some alarm text");
    assert.equal(c.error.kind, "unreachable", "status code 14 (UNAVAILABLE)");
    assert.equal(c.error.node, "10.32.8.82");
    assert.match(c.error.message, /connection refused/);
    const raw = reply.messages[2];
    assert.ok(raw?.metadata?.status);
    assert.equal(raw.metadata.status.code, 14);
    assert.equal(raw.memberStatus, undefined, "a failed target carries no member status");
  });

  it("memberlist: uint64 ids above 2^63 and a learner without client URLs", () => {
    const reply = decode(EtcdMemberListResponseSchema, "memberlist");
    assert.equal(reply.messages.length, 1);
    const members = reply.messages[0]?.members ?? [];
    assert.deepEqual(
      members.map((m) => [m.hostname, formatMemberId(m.id), m.isLearner]),
      [
        ["cr-talos-01", "8e9e05c52164694d", false],
        ["cr-talos-02", "31c16871d4edcfe8", false],
        ["cr-talos-03", "7186f538127b7dad", true],
      ],
    );
    const first = members[0];
    assert.ok(first);
    assert.ok(first.id > 2n ** 63n, "the first id exceeds 2^63 without losing precision");
    assert.deepEqual(first.peerUrls, ["https://10.32.8.80:2380"]);
    assert.deepEqual(first.clientUrls, ["https://10.32.8.80:2379"]);
    assert.deepEqual(members[2]?.clientUrls, []);
  });

  it("alarms: NOSPACE and CORRUPT on two members", () => {
    const reply = decode(EtcdAlarmListResponseSchema, "alarms");
    const alarms = reply.messages[0]?.memberAlarms ?? [];
    assert.deepEqual(
      alarms.map((a) => [formatMemberId(a.memberId), EtcdMemberAlarm_AlarmType[a.alarm]]),
      [
        ["8e9e05c52164694d", "NOSPACE"],
        ["31c16871d4edcfe8", "CORRUPT"],
      ],
    );
  });

  it("defragment: one empty message", () => {
    const reply = decode(EtcdDefragmentResponseSchema, "defragment");
    assert.equal(reply.messages.length, 1);
    assert.equal(reply.messages[0]?.metadata, undefined);
  });

  it("forfeit: the new leader's name, or empty when not the leader", () => {
    assert.equal(decode(EtcdForfeitLeadershipResponseSchema, "forfeit").messages[0]?.member, "cr-talos-02");
    const notLeader = decode(EtcdForfeitLeadershipResponseSchema, "forfeit-not-leader");
    assert.equal(notLeader.messages.length, 1);
    assert.equal(notLeader.messages[0]?.member, "");
  });
  it("etcdspec-get: the COSI Get reply's etcd spec, extraArgs (field 7) with the quota", () => {
    const reply = decode(GetResponseSchema, "etcdspec-get");
    const meta = reply.resource?.metadata;
    assert.ok(meta);
    assert.deepEqual(
      [meta.namespace, meta.type, meta.id],
      [ETCD_SPEC.namespace, ETCD_SPEC.type, ETCD_SPEC.id],
    );
    assert.equal(meta.version, "3");
    assert.equal(meta.owner, "etcd.SpecController");
    assert.equal(meta.phase, "running");
    const bytes = reply.resource?.spec?.protoSpec;
    assert.ok(bytes && bytes.length > 0);
    assert.equal(reply.resource?.spec?.yamlSpec, "name: cr-talos-01\n");
    const spec = fromBinary(SpecSpecSchema, bytes);
    assert.equal(spec.name, "cr-talos-01");
    assert.equal(spec.image, "registry.k8s.io/etcd:v3.6.5");
    assert.deepEqual(spec.extraArgsLegacy, {});
    const args = extraArgsOf(bytes, "10.32.8.80");
    assert.deepEqual(args, {
      "quota-backend-bytes": ["8589934592"],
      "bootstrap-defrag-threshold-megabytes": ["100"],
      "listen-metrics-urls": ["http://0.0.0.0:2381"],
    });
    const config = memberConfigFromFlags(args, "10.32.8.80", TALOS_WORDS.configWhere);
    assert.equal(config.quotaBytes, 8 * 1024 * MiB);
    const startup = startupDefragReport(config.startupDefrag, "3.6.5", "10.32.8.80", TALOS_WORDS.configWhere);
    assert.deepEqual(startup, {
      configured: true,
      thresholdMegabytes: 100,
      flag: "bootstrap-defrag-threshold-megabytes",
      warnings: [],
    });
  });

  it("etcdspec-get-legacy: Talos before 1.13 (extraArgs as field 4, one string each)", () => {
    const reply = decode(GetResponseSchema, "etcdspec-get-legacy");
    const bytes = reply.resource?.spec?.protoSpec;
    assert.ok(bytes);
    const args = extraArgsOf(bytes, "10.32.8.80");
    assert.deepEqual(args, {
      "quota-backend-bytes": ["4294967296"],
      "experimental-bootstrap-defrag-threshold-megabytes": ["100"],
    });
    const config = memberConfigFromFlags(args, "10.32.8.80", TALOS_WORDS.configWhere);
    assert.equal(config.quotaBytes, 4 * 1024 * MiB);
    assert.equal(
      startupDefragReport(config.startupDefrag, "3.5.21", "10.32.8.80", TALOS_WORDS.configWhere).configured,
      true,
    );
  });
});

// Our etcdserverpb subset (src/etcd/proto) against etcd's own rpc.proto of each etcd line built
// here, from the Go module cache (scripts/etcd.sh builds etcd from the Go module proxy): every
// service method, message and field we declare is etcd's, with etcd's number and type. A field
// newer than a line is allowed only where the table below says since when.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { REPO_ROOT } from "../harness/run-cli.js";

const OURS = join(REPO_ROOT, "src", "etcd", "proto", "etcdserverpb", "rpc.proto");
const LINES = ["v3.5.21", "v3.6.16", "v3.7.3"];
/** Fields of ours that an older line does not have, and the line that added them. */
const SINCE: Record<string, string> = {
  "StatusResponse.storageVersion": "v3.6",
  "StatusResponse.dbSizeQuota": "v3.6",
  "HashKVResponse.hash_revision": "v3.6",
};

interface Proto {
  /** "Message.field" -> "type = number" */
  fields: Map<string, string>;
  /** "Service.Method" -> "(Request) returns (stream? Response)" */
  methods: Map<string, string>;
  messages: Set<string>;
}

/** A tolerant reader of proto3 text: messages (nested ones flattened by name), fields, services. */
function parse(text: string): Proto {
  const src = text.replace(/\/\/.*$/gm, "").replace(/\[[^\]]*\]/g, "");
  const proto: Proto = { fields: new Map(), methods: new Map(), messages: new Set() };
  const stack: { kind: string; name: string }[] = [];
  const tokens = src.match(/[A-Za-z_][\w.]*|\d+|[{};=()]/g) ?? [];
  for (let i = 0; i < tokens.length; i += 1) {
    const t = tokens[i];
    if ((t === "message" || t === "service" || t === "enum" || t === "oneof") && tokens[i + 2] === "{") {
      const name = tokens[i + 1] ?? "";
      const parent = stack.filter((s) => s.kind === "message").at(-1);
      stack.push({ kind: t, name: t === "oneof" ? (parent?.name ?? name) : name });
      if (t === "message") proto.messages.add(name);
      i += 2;
      continue;
    }
    if (t === "{") stack.push({ kind: "block", name: "" });
    else if (t === "}") stack.pop();
    else if (t === "option") while (i < tokens.length && tokens[i] !== ";") i += 1;
    else if (t === "rpc") {
      const service = stack.find((s) => s.kind === "service")?.name ?? "";
      const [name, , req, , , , ...rest] = tokens.slice(i + 1, i + 12);
      const stream = rest[0] === "stream";
      const resp = stream ? rest[1] : rest[0];
      proto.methods.set(`${service}.${name}`, `(${req}) returns (${stream ? "stream " : ""}${resp})`);
    } else {
      const top = stack.at(-1);
      const owner = top?.kind === "message" || top?.kind === "oneof" ? top.name : undefined;
      if (owner !== undefined && tokens[i + 2] === "=" && /^\d+$/.test(tokens[i + 3] ?? "")) {
        const repeated = tokens[i - 1] === "repeated" ? "repeated " : "";
        const type = (t ?? "").split(".").at(-1);
        proto.fields.set(`${owner}.${tokens[i + 1]}`, `${repeated}${type} = ${tokens[i + 3]}`);
        i += 3;
      }
    }
  }
  return proto;
}

/** etcd's api module of that version in the Go module cache, downloaded through the proxy when missing. */
function realProto(version: string): string {
  const cache = execFileSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" }).trim();
  const file = join(cache, "go.etcd.io", "etcd", "api", `v3@${version}`, "etcdserverpb", "rpc.proto");
  if (!existsSync(file))
    execFileSync("go", ["mod", "download", `go.etcd.io/etcd/api/v3@${version}`], { stdio: "ignore" });
  return readFileSync(file, "utf8");
}

describe("our etcd proto subset is etcd's own", () => {
  const ours = parse(readFileSync(OURS, "utf8"));

  it("the reader finds what our file declares", () => {
    assert.ok(
      ours.methods.get("Maintenance.Defragment") === "(DefragmentRequest) returns (DefragmentResponse)",
    );
    assert.equal(
      ours.methods.get("Maintenance.Snapshot"),
      "(SnapshotRequest) returns (stream SnapshotResponse)",
    );
    assert.equal(ours.fields.get("StatusResponse.dbSizeQuota"), "int64 = 12");
    assert.equal(ours.fields.get("AlarmRequest.action"), "AlarmAction = 1");
    assert.ok(ours.fields.size > 60, `${ours.fields.size} fields`);
  });

  for (const version of LINES) {
    it(`every method and field matches etcd ${version}'s api/etcdserverpb/rpc.proto`, () => {
      const real = parse(realProto(version));
      for (const [method, signature] of ours.methods)
        assert.equal(real.methods.get(method), signature, `${method} in etcd ${version}`);
      for (const [field, typed] of ours.fields) {
        const theirs = real.fields.get(field);
        const since = SINCE[field];
        if (theirs === undefined && since !== undefined && version < since) continue;
        // KeyValue is etcd's mvccpb.KeyValue, imported into rpc.proto rather than declared there.
        if (field.startsWith("KeyValue.")) continue;
        assert.equal(theirs, typed, `${field} in etcd ${version}`);
      }
      for (const field of Object.keys(SINCE))
        if (version >= (SINCE[field] ?? "")) assert.ok(real.fields.has(field), `${field} is in ${version}`);
    });
  }

  it("KeyValue is etcd's mvccpb.KeyValue", () => {
    const cache = execFileSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" }).trim();
    const real = parse(
      readFileSync(join(cache, "go.etcd.io", "etcd", "api", "v3@v3.6.16", "mvccpb", "kv.proto"), "utf8"),
    );
    for (const [field, typed] of ours.fields)
      if (field.startsWith("KeyValue.")) assert.equal(real.fields.get(field), typed, field);
  });
});

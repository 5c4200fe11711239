// The etcd spec resource Talos keeps for a node's etcd (`talosctl get etcdspecs`): where it is, and its
// extra command-line flags decoded from its protobuf spec.

import { fromBinary } from "@bufbuild/protobuf";

import { DefragError } from "../core/errors.js";
import { SpecSpecSchema } from "./gen/resource/etcd_pb.js";

/** The etcd spec resource's pointer (Talos pkg/machinery/resources/etcd: NamespaceName, SpecType, SpecID). */
export const ETCD_SPEC = { namespace: "etcd", type: "EtcdSpecs.etcd.talos.dev", id: "etcd" } as const;

/** The extra args of an encoded talos.resource.definitions.etcd.SpecSpec (field 7, or field 4 before Talos 1.13). */
export function extraArgsOf(protoSpec: Uint8Array, node: string): Record<string, string[]> {
  let spec;
  try {
    spec = fromBinary(SpecSpecSchema, protoSpec);
  } catch (err) {
    throw new DefragError("etcd", `the etcd spec resource does not decode: ${(err as Error).message}`, {
      node,
      cause: err,
    });
  }
  const args: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(spec.extraArgsLegacy)) args[name] = [value];
  for (const [name, values] of Object.entries(spec.extraArgs)) args[name] = [...values.values];
  return args;
}

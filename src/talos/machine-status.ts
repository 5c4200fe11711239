// The machine status resource Talos keeps for every node (`talosctl get machinestatus`): where it is,
// and the node's lifecycle decoded from its protobuf spec.

import { fromBinary } from "@bufbuild/protobuf";

import { DefragError } from "../core/errors.js";
import type { NodeLifecycle } from "../core/model.js";
import { RuntimeMachineStage } from "./gen/resource/enums_pb.js";
import { MachineStatusSpecSchema } from "./gen/resource/runtime_pb.js";

/** The machine status resource's pointer (Talos pkg/machinery/resources/runtime: MachineStatusType, MachineStatusID). */
export const MACHINE_STATUS = {
  namespace: "runtime",
  type: "MachineStatuses.runtime.talos.dev",
  id: "machine",
} as const;

/**
 * The lifecycle in an encoded talos.resource.definitions.runtime.MachineStatusSpec. RUNNING is the
 * stage Talos serves in; it runs its readiness checks only while BOOTING and RUNNING and reports
 * ready in every other stage, so an UPGRADING or REBOOTING node is judged by its stage alone.
 */
export function lifecycleOf(protoSpec: Uint8Array, node: string): NodeLifecycle {
  let spec;
  try {
    spec = fromBinary(MachineStatusSpecSchema, protoSpec);
  } catch (err) {
    throw new DefragError("etcd", `the machine status resource does not decode: ${(err as Error).message}`, {
      node,
      cause: err,
    });
  }
  const name = RuntimeMachineStage[spec.stage] as string | undefined;
  return {
    stage: name?.replace(/^MACHINE_STAGE_/, "") ?? `stage ${spec.stage}`,
    working: spec.stage === RuntimeMachineStage.MACHINE_STAGE_RUNNING,
    ready: spec.status?.ready ?? false,
    unmet: (spec.status?.unmetConditions ?? []).map((c) => `${c.name}: ${c.reason}`),
  };
}

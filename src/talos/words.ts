// How messages name Talos's things (BackendWords, src/core/backend.ts): core/ and run/ ask the
// backend for these words rather than knowing Talos.

import type { BackendWords } from "../core/backend.js";

/** The first Talos release of each etcd line that ships a fixed etcd, by the etcd versions named. */
function talosShipping(fixedIn: string): string {
  // Talos has shipped etcd 3.5 and 3.6 (3.7 from 1.14), never 3.4: a 3.4 member is not a Talos one.
  if (fixedIn === "3.4.38") return "not by a Talos release (Talos ships etcd 3.5 and later)";
  if (fixedIn.includes("3.5") && fixedIn.includes("3.6"))
    return "Talos 1.10.9 (etcd 3.5.26) or 1.11.3 and later (etcd 3.6.5+)";
  if (fixedIn.includes("3.5")) return "Talos 1.10.9 and later (etcd 3.5.26)";
  if (fixedIn.includes("3.6")) return "Talos 1.11.3 and later (etcd 3.6.5+)";
  return "a Talos release with a fixed etcd";
}

export const TALOS_WORDS: BackendWords = {
  inspect: (node) => `talosctl -n ${node} etcd status`,
  inspectLifecycle: (node) => `talosctl -n ${node} get machinestatus`,
  freeDisk: (node) =>
    `free space on the EPHEMERAL volume (/var: unused container images, pod logs; talosctl -n ${node} df) or grow it, then run again`,
  nodesOption: "--nodes/TALOS_NODES",
  configName: "etcd spec",
  configWhere: "cluster.etcd.extraArgs in the machine config",
  configUnreadable: "reading the etcd spec needs Talos's State API and role os:reader or more",
  manualDefrag: "talosctl etcd defrag",
  fixedEtcd: (fixedIn) => `shipped by ${talosShipping(fixedIn)}`,
  upgradeEtcd: "upgrade Talos to a release with a fixed etcd",
  defragSignal: "etcd's log",
};

// Is this Kubernetes the cluster whose etcd the run defragments? Its control-plane nodes' addresses
// against the etcd members' hosts: a lease taken on another cluster's API server would keep nothing
// from overlapping (README, "Two runs never overlap").

import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";

import { DefragError } from "../core/errors.js";

/** The label Kubernetes (and Talos) put on control-plane nodes. */
export const CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane";

/** Every address (InternalIP, ExternalIP, Hostname) of the cluster's control-plane nodes. */
export async function controlPlaneAddresses(kubeConfig: KubeConfig): Promise<string[]> {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  try {
    const nodes = await api.listNode({ labelSelector: CONTROL_PLANE_LABEL });
    return nodes.items.flatMap((n) => (n.status?.addresses ?? []).map((a) => a.address));
  } catch (err) {
    const code = (err as { code?: number }).code;
    const server = kubeConfig.getCurrentCluster()?.server ?? "the API server";
    const detail = code === undefined ? (err as Error).message : `HTTP ${code}`;
    throw new DefragError("unreachable", `cannot list the control-plane nodes of ${server}: ${detail}`, {
      endpoint: server,
      cause: err,
    });
  }
}

/** Whether any control-plane node has an address that is an etcd member's host. */
export function sameCluster(nodeAddresses: readonly string[], memberHosts: readonly string[]): boolean {
  const hosts = new Set(memberHosts.map((h) => h.toLowerCase()));
  return nodeAddresses.some((a) => hosts.has(a.toLowerCase()));
}

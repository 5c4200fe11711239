// How messages name things on the etcd backend (BackendWords, src/core/backend.ts): etcdctl
// commands and etcd's own flags, for kubeadm, k3s, RKE2 and any other etcd cluster.

import type { BackendWords } from "../core/backend.js";

export const ETCD_WORDS: BackendWords = {
  inspect: (node) => `etcdctl --endpoints ${node} endpoint status -w table`,
  inspectLifecycle: (node) => `kubectl get nodes -o wide (the node of ${node})`,
  freeDisk: (node) =>
    `free space on the filesystem of etcd's --data-dir on the node of ${node} (df -h there) or grow it, then run again`,
  nodesOption: "--etcd-endpoints/ETCDCTL_ENDPOINTS",
  configName: "Status (dbSizeQuota)",
  configWhere: "etcd's --quota-backend-bytes flag on that member",
  configUnreadable: "etcd reports its quota in Status only from 3.6 (dbSizeQuota); pass --quota-bytes",
  manualDefrag: "etcdctl defrag",
  fixedEtcd: (fixedIn) => `etcd ${fixedIn}`,
  upgradeEtcd: "upgrade etcd to a fixed release (with kubeadm: the etcd image in the ClusterConfiguration)",
  defragSignal: "etcd's etcd_disk_defrag_inflight gauge (/metrics)",
};

// Whether a Kubernetes API is configured at all, without loading the Kubernetes client (which takes a
// noticeable part of a second): a run with no Kubernetes pays nothing for --lease auto.

import { existsSync } from "node:fs";
import { join } from "node:path";

/** Where Kubernetes mounts a pod's service-account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Whether a Kubernetes API is configured at all: an explicit kubeconfig, a pod's token, or ~/.kube/config. */
export function kubeConfigured(opts: {
  kubeconfig: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  serviceAccountDir?: string;
}): boolean {
  if ((opts.kubeconfig ?? "") !== "") return true;
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (opts.env.KUBERNETES_SERVICE_HOST && existsSync(join(saDir, "token"))) return true;
  const home = opts.env.HOME;
  return home !== undefined && existsSync(join(home, ".kube", "config"));
}

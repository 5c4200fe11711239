// Where the Kubernetes client's configuration comes from: an explicit kubeconfig (or a
// KUBECONFIG list), the pod's service account, or ~/.kube/config; anything else is exit 2.

import { existsSync } from "node:fs";
import { join } from "node:path";

import { KubeConfig } from "@kubernetes/client-node";

import { configError, DefragError } from "../core/errors.js";

import { SERVICE_ACCOUNT_DIR } from "./configured.js";

export { SERVICE_ACCOUNT_DIR };

/** The kubeconfig: an explicit file (or KUBECONFIG list), the pod's service account, or ~/.kube/config. */
export function loadKubeConfig(opts: {
  kubeconfig: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  serviceAccountDir?: string;
}): KubeConfig {
  const kc = new KubeConfig();
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const files = (opts.kubeconfig ?? "").split(":").filter((f) => f !== "");
  try {
    if (files.length > 0) {
      const [first, ...rest] = files;
      for (const f of files) {
        if (!existsSync(f))
          throw configError(`kubeconfig ${f} does not exist`, "check --kubeconfig / KUBECONFIG");
      }
      kc.loadFromFile(first ?? "");
      for (const f of rest) {
        const more = new KubeConfig();
        more.loadFromFile(f);
        kc.mergeConfig(more);
      }
    } else if (opts.env.KUBERNETES_SERVICE_HOST && opts.env.KUBERNETES_SERVICE_PORT) {
      const token = join(saDir, "token");
      if (!existsSync(token)) {
        throw configError(
          `--lease in a pod needs its service-account token at ${token}, and there is none`,
          "mount one (the chart does when lease.enabled is true) or pass --kubeconfig",
        );
      }
      const host = opts.env.KUBERNETES_SERVICE_HOST;
      const server = `https://${host.includes(":") ? `[${host}]` : host}:${opts.env.KUBERNETES_SERVICE_PORT}`;
      kc.loadFromClusterAndUser(
        { name: "inCluster", server, caFile: join(saDir, "ca.crt"), skipTLSVerify: false },
        { name: "inClusterUser", authProvider: { name: "tokenFile", config: { tokenFile: token } } },
      );
    } else {
      const home = opts.env.HOME;
      const path = home === undefined ? undefined : join(home, ".kube", "config");
      if (path === undefined || !existsSync(path)) {
        throw configError(
          "--lease needs a Kubernetes API server: no --kubeconfig, no KUBECONFIG, not in a pod, no ~/.kube/config",
          "pass --kubeconfig PATH",
        );
      }
      kc.loadFromFile(path);
    }
  } catch (err) {
    if (err instanceof DefragError) throw err;
    throw configError(
      `cannot load the kubeconfig: ${(err as Error).message}`,
      "check --kubeconfig / KUBECONFIG",
    );
  }
  if (kc.getCurrentCluster() === null) {
    throw configError("the kubeconfig has no current cluster", "set its current-context");
  }
  return kc;
}

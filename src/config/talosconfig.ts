// Finding and parsing a talosconfig, the way talosctl does.

import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

// js-yaml: a third of the time to load and parse a talosconfig that `yaml` takes at every start
// (and already in the tree, through the Kubernetes client).
import { load as parseYaml } from "js-yaml";
// zod's mini build: the same validation, a thirtieth of the code to load at every start.
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

import { configError } from "../core/errors.js";

/** Where Talos mounts the ServiceAccount secret inside a pod. */
export const IN_CLUSTER_TALOSCONFIG = "/var/run/secrets/talos.dev/config";

z.config(en());

const ContextSchema = z.looseObject({
  endpoints: z.optional(z.array(z.string())),
  nodes: z.optional(z.array(z.string())),
  ca: z.optional(z.string()),
  crt: z.optional(z.string()),
  key: z.optional(z.string()),
});

const TalosconfigSchema = z.looseObject({
  context: z.optional(z.string()),
  contexts: z.record(z.string(), z.nullable(ContextSchema)),
});

export type TalosContext = z.infer<typeof ContextSchema>;

export interface LoadedTalosconfig {
  path: string;
  contextName: string;
  context: TalosContext;
}

/**
 * talosctl's lookup order: --talosconfig, $TALOSCONFIG, $TALOS_HOME/config or
 * ~/.talos/config, then the in-cluster mount. The first that exists wins; an
 * explicitly named file that does not exist is an error.
 */
export function locateTalosconfig(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  exists: (path: string) => boolean = existsSync,
): { path: string | undefined; tried: string[] } {
  if (flag !== undefined && flag !== "") return { path: flag, tried: [flag] };
  if (env.TALOSCONFIG) return { path: env.TALOSCONFIG, tried: [env.TALOSCONFIG] };
  const home =
    env.TALOS_HOME && isAbsolute(env.TALOS_HOME) ? env.TALOS_HOME : join(env.HOME ?? homedir(), ".talos");
  const candidates = [join(home, "config"), IN_CLUSTER_TALOSCONFIG];
  return { path: candidates.find((p) => exists(p)), tried: candidates };
}

export function readTalosconfig(path: string, contextFlag: string | undefined): LoadedTalosconfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw configError(
        `talosconfig ${path} does not exist`,
        "pass --talosconfig PATH, set TALOSCONFIG, or provide TALOS_CA, TALOS_CRT, TALOS_KEY and TALOS_ENDPOINTS",
      );
    }
    throw configError(`cannot read talosconfig ${path}: ${(err as Error).message}`);
  }

  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const first = ((err as Error).message.split("\n")[0] ?? "").trim();
    throw configError(
      `talosconfig ${path} is not valid YAML: ${first}`,
      "check the file, e.g. with `talosctl config info`",
    );
  }
  const parsed = TalosconfigSchema.safeParse(doc);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join("; ");
    throw configError(
      `talosconfig ${path} is not a talosconfig: ${issues}`,
      "expected `context:` and `contexts:` with endpoints, ca, crt and key",
    );
  }
  const config = parsed.data;
  const names = Object.keys(config.contexts);
  const contextName = contextFlag ?? config.context;
  if (contextName === undefined || contextName === "") {
    throw configError(
      `talosconfig ${path} has no current context`,
      `pass --context NAME (one of: ${names.join(", ") || "none defined"})`,
    );
  }
  const context = config.contexts[contextName];
  if (context === undefined) {
    throw configError(
      `context "${contextName}" is not in talosconfig ${path}`,
      `choose one of: ${names.join(", ") || "(the file defines none)"}`,
    );
  }
  return { path, contextName, context: context ?? {} };
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => {
    if (typeof part === "number") return `${acc}[${part}]`;
    return acc === "" ? String(part) : `${acc}.${String(part)}`;
  }, "");
}

// The kinds of option and their parsers: how the text of a flag or environment variable
// becomes a typed value, or a config error that names where the text came from.

import { splitList } from "../config/endpoints.js";
import { configError } from "../core/errors.js";
import { compileRule, type Rule } from "../core/rule.js";
import { parseBytes, parseDuration } from "../core/units.js";

export type CommandName = "status" | "run";

export type OptionKind =
  | "string"
  | "list"
  | "duration"
  | "size"
  | "ratio"
  | "count"
  | "boolean"
  | "choice"
  | "url"
  | "rule"
  | "lease";

/** How the text of a flag or environment variable becomes a value. */
export interface OptionType<T> {
  readonly kind: OptionKind;
  readonly choices?: readonly string[];
  /** `source` is where the text came from (a flag or an environment variable), for the message. Throws a config error. */
  readonly parse: (text: string, source: string) => T;
}

export interface OptionSpec<
  K extends string = string,
  C extends readonly CommandName[] = readonly CommandName[],
  V = unknown,
> {
  /** Property name in the parsed options. */
  readonly key: K;
  /** Commander flag syntax: "--name <arg>", or "--name" for a boolean. */
  readonly flag: string;
  readonly env: string;
  /** Other spellings read when `env` is not set (etcdctl's ETCDCTL_*, as people have them set). */
  readonly alsoEnv?: readonly string[];
  /** Parsed like user input when neither the flag nor the environment variable is set. */
  readonly default?: string;
  /** The default in words, where the value alone does not say it: no value, or a long one (the README shows this). */
  readonly defaultHelp?: string;
  readonly help: string;
  readonly commands: C;
  readonly type: OptionType<V>;
}

interface SpecInput<K extends string, C extends readonly CommandName[], T> {
  key: K;
  flag: string;
  env: string;
  alsoEnv?: readonly string[];
  default?: string;
  defaultHelp?: string;
  help: string;
  commands: C;
  type: OptionType<T>;
}

// With a default the value is always there; without one it is undefined when nothing sets it.
export function option<const K extends string, const C extends readonly CommandName[], T>(
  spec: SpecInput<K, C, T> & { default: string },
): OptionSpec<K, C, T>;
export function option<const K extends string, const C extends readonly CommandName[], T>(
  spec: SpecInput<K, C, T>,
): OptionSpec<K, C, T | undefined>;
export function option<const K extends string, const C extends readonly CommandName[], T>(
  spec: SpecInput<K, C, T>,
): OptionSpec<K, C, T | undefined> {
  return spec;
}

// ---- Types

/** Free text; empty counts as unset. */
export const text: OptionType<string | undefined> = {
  kind: "string",
  parse: (value) => (value === "" ? undefined : value),
};

/** Comma separated; an empty entry is an error. Items are checked where they are used. */
export const list: OptionType<readonly string[] | undefined> = {
  kind: "list",
  parse: (value, source) => {
    const items = splitList(value, source);
    if (items.length === 0) throw configError(`${source} "${value}" lists nothing`, "leave it unset instead");
    return items;
  },
};

/** Milliseconds, from Go-style durations. */
export function duration(opts: { allowZero?: boolean } = {}): OptionType<number> {
  const allowZero = opts.allowZero === true;
  return {
    kind: "duration",
    parse: (value, source) => {
      const ms = parseDuration(value);
      if (ms === undefined && /^\s*\d+(\.\d+)?\s*$/.test(value))
        throw configError(
          `${source} "${value}" has no unit: it could be seconds or minutes`,
          `write e.g. ${value.trim()}s or ${value.trim()}m`,
        );
      if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) {
        throw configError(
          `${source} "${value}" is not a ${allowZero ? "duration" : "positive duration"}`,
          "use e.g. 30s, 5m or 1h30m",
        );
      }
      return ms;
    },
  };
}

/** Bytes, from a number or a size with a unit. */
export const size: OptionType<number> = {
  kind: "size",
  parse: (value, source) => {
    const bytes = parseBytes(value);
    if (bytes === undefined || bytes <= 0) {
      throw configError(
        `${source} "${value}" is not a size`,
        "use bytes or a unit, e.g. 2147483648, 2GiB or 4GB",
      );
    }
    return bytes;
  },
};

/** A whole number from 1 up. */
export const count: OptionType<number> = {
  kind: "count",
  parse: (value, source) => {
    const n = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= 1 && Number.isSafeInteger(n)))
      throw configError(`${source} "${value}" is not a whole number from 1`, "e.g. 3");
    return n;
  },
};

/** A share from 0 to 1, as a decimal ("0.8") or a percentage ("80%"). */
export const ratio: OptionType<number> = {
  kind: "ratio",
  parse: (value, source) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(value);
    const n = m === null ? Number.NaN : Number(m[1]) / (m[2] === "%" ? 100 : 1);
    if (!(n >= 0 && n <= 1)) {
      throw configError(`${source} "${value}" is not a share from 0 to 1`, "use e.g. 0.8 or 80%");
    }
    return n;
  },
};

/** A flag without a value; its environment variable takes true/false, 1/0 or yes/no. */
export const boolean: OptionType<boolean> = {
  kind: "boolean",
  parse: (value, source) => {
    const lower = value.toLowerCase();
    if (["true", "1", "yes"].includes(lower)) return true;
    if (["false", "0", "no"].includes(lower)) return false;
    throw configError(`${source} "${value}" is not true or false`, "use true/false, 1/0 or yes/no");
  },
};

export function choice<const V extends string>(choices: readonly V[]): OptionType<V> {
  return {
    kind: "choice",
    choices,
    parse: (value, source) => {
      const found = choices.find((c) => c === value);
      if (found === undefined) {
        throw configError(
          `${source} "${value}" is not one of ${choices.join(", ")}`,
          `set ${source} to one of them`,
        );
      }
      return found;
    },
  };
}

/** An http(s) URL; empty counts as unset. */
export function url(example: string): OptionType<string | undefined> {
  return {
    kind: "url",
    parse: (value, source) => {
      if (value === "") return undefined;
      let parsed: URL | undefined;
      try {
        parsed = new URL(value);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol)) {
        throw configError(`${source} "${value}" is not an http(s) URL`, `e.g. ${example}`);
      }
      return value;
    },
  };
}

/** A CEL rule, compiled and type-checked now so that a bad one is a usage error before any call. */
export const rule: OptionType<Rule> = { kind: "rule", parse: (value) => compileRule(value) };

/** A Kubernetes Lease named NAMESPACE/NAME. */
export interface LeaseName {
  namespace: string;
  name: string;
}

/** RFC 1123 label: what a namespace name must be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain: what a Lease's name must be. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** NAMESPACE/NAME, each checked the way the API server would; empty counts as unset. */
/** --lease: a Lease by name, "auto" (the chart's, when the Kubernetes API is this etcd's cluster), or "none". */
export const leaseName: OptionType<LeaseName | "auto" | "none" | undefined> = {
  kind: "lease",
  parse: (value, source) => {
    if (value === "") return undefined;
    if (value === "auto" || value === "none") return value;
    const bad = (why: string): never => {
      throw configError(
        `${source} "${value}" ${why}`,
        "use NAMESPACE/NAME (e.g. kube-system/etcd-defrag), auto or none",
      );
    };
    const parts = value.split("/");
    if (parts.length !== 2) return bad("is not NAMESPACE/NAME");
    const [namespace = "", name = ""] = parts;
    if (namespace === "" || name === "") return bad("has an empty namespace or name");
    if (namespace.length > 63 || !DNS_LABEL.test(namespace))
      return bad(`has an invalid namespace "${namespace}" (lower-case letters, digits and '-', at most 63)`);
    if (name.length > 253 || !DNS_SUBDOMAIN.test(name))
      return bad(
        `has an invalid lease name "${name}" (lower-case letters, digits, '-' and '.', at most 253)`,
      );
    return { namespace, name };
  },
};

// ---- The table

/** A TCP port, 1 to 65535. */
export const port: OptionType<number | undefined> = {
  kind: "count",
  parse: (value, source) => {
    if (value === "") return undefined;
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > 65535)
      throw configError(
        `${source} is "${value}", not a port`,
        "give a TCP port number from 1 to 65535, e.g. 2381",
      );
    return n;
  },
};

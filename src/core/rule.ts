// The defrag rule: a CEL expression over one member's own numbers, evaluated on
// fresh status just before that member. Compiled and type-checked at start-up.

import { Environment } from "@marcbachmann/cel-js";

import { configError } from "./errors.js";
import { fragmentation, freeBytes, isLeader, type MemberStatus } from "./model.js";

export const DEFAULT_RULE =
  "(dbSizeFree >= 100 * MiB && fragmentation >= 0.45) || dbQuotaUsage >= 0.8 || nospace";

/** Talos sets no quota, so etcd's default applies. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

export interface RuleInput {
  dbSize: number;
  dbSizeInUse: number;
  dbQuota: number;
  isLeader: boolean;
  nospace: boolean;
}

export interface RuleVariables {
  dbSize: bigint;
  dbSizeInUse: bigint;
  dbSizeFree: bigint;
  dbQuota: bigint;
  dbQuotaUsage: number;
  fragmentation: number;
  isLeader: boolean;
  nospace: boolean;
}

export interface Rule {
  source: string;
  evaluate(input: RuleInput): boolean;
}

function environment(): Environment {
  return new Environment()
    .registerVariable("dbSize", "int")
    .registerVariable("dbSizeInUse", "int")
    .registerVariable("dbSizeFree", "int")
    .registerVariable("dbQuota", "int")
    .registerVariable("dbQuotaUsage", "double")
    .registerVariable("fragmentation", "double")
    .registerVariable("isLeader", "bool")
    .registerVariable("nospace", "bool")
    .registerConstant("KiB", "int", 1024n)
    .registerConstant("MiB", "int", 1024n ** 2n)
    .registerConstant("GiB", "int", 1024n ** 3n);
}

export function ruleVariables(input: RuleInput): RuleVariables {
  const sizes = { dbSize: input.dbSize, dbSizeInUse: input.dbSizeInUse };
  return {
    dbSize: BigInt(Math.trunc(input.dbSize)),
    dbSizeInUse: BigInt(Math.trunc(input.dbSizeInUse)),
    dbSizeFree: BigInt(Math.trunc(freeBytes(sizes))),
    dbQuota: BigInt(Math.trunc(input.dbQuota)),
    dbQuotaUsage: input.dbQuota > 0 ? input.dbSize / input.dbQuota : 0,
    fragmentation: fragmentation(sizes),
    isLeader: input.isLeader,
    nospace: input.nospace,
  };
}

export function ruleInput(status: MemberStatus, quota: number, nospace: boolean): RuleInput {
  return {
    dbSize: status.dbSize,
    dbSizeInUse: status.dbSizeInUse,
    dbQuota: quota,
    isLeader: isLeader(status),
    nospace,
  };
}

const HINT =
  "variables: dbSize, dbSizeInUse, dbSizeFree, dbQuota (int, bytes), dbQuotaUsage, fragmentation (double), isLeader, nospace (bool), constants KiB, MiB, GiB; e.g. --rule 'dbSizeFree >= 200 * MiB'";

/** Parses and type-checks the rule; a rule that does not compile or is not boolean is a usage error. */
export function compileRule(source: string): Rule {
  const env = environment();
  if (source.trim() === "") throw configError("--rule is empty", HINT);
  let checked: ReturnType<Environment["check"]>;
  try {
    checked = env.check(source);
  } catch (err) {
    throw configError(`--rule "${source}" does not compile: ${firstLine(err)}`, HINT);
  }
  if (!checked.valid) {
    throw configError(`--rule "${source}" does not compile: ${firstLine(checked.error)}`, HINT);
  }
  if (checked.type !== "bool") {
    throw configError(`--rule "${source}" is of type ${checked.type}, not bool`, HINT);
  }
  const program = env.parse(source);
  const evaluate = (input: RuleInput): boolean => {
    const value: unknown = program(ruleVariables(input));
    if (typeof value !== "boolean") {
      throw configError(`--rule "${source}" evaluated to ${String(value)}, not a boolean`, HINT);
    }
    return value;
  };
  // Evaluate once on sample numbers, so that a rule that fails at run time (e.g. division by zero) fails now.
  try {
    evaluate({
      dbSize: 100 * 1024 ** 2,
      dbSizeInUse: 60 * 1024 ** 2,
      dbQuota: DEFAULT_QUOTA_BYTES,
      isLeader: false,
      nospace: false,
    });
  } catch (err) {
    throw configError(`--rule "${source}" fails on sample values: ${firstLine(err)}`, HINT);
  }
  return { source, evaluate };
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split("\n")[0] ?? text).trim();
}

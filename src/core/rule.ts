// The defrag rule: a CEL expression over one member's own numbers, evaluated on
// fresh status just before that member. Compiled and type-checked at start-up.

import { Environment, serialize, type ASTNode } from "@marcbachmann/cel-js";

import { configError } from "./errors.js";
import { fragmentation, freeBytes, isLeader, type MemberStatus } from "./model.js";

export const DEFAULT_RULE =
  "(dbSizeFree >= 100 * MiB && fragmentation >= 0.45) || dbQuotaUsage >= 0.8 || nospace";

/**
 * Named rules, given as `--rule @NAME`. fragmentation-alert is the etcd project's own
 * etcdDatabaseHighFragmentationRatio alert (contrib/mixin: in use / total < 0.5 and more than
 * 104857600 bytes in use), so that an hourly schedule does nothing until that alert would fire;
 * NOSPACE is always a reason (a member at its quota takes no writes).
 */
export const RULE_PRESETS: Readonly<Record<string, string>> = {
  default: DEFAULT_RULE,
  "fragmentation-alert": "(fragmentation > 0.5 && dbSizeInUse > 100 * MiB) || nospace",
};

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
  /** The CEL expression (a preset's, expanded). */
  source: string;
  /** The preset's name when given as @NAME. */
  preset?: string;
  evaluate(input: RuleInput): boolean;
}

/** The int variables: byte counts, whose ratio as ints is 0 or 1 (truncated), never a fraction. */
const INT_VARIABLES = new Set(["dbSize", "dbSizeInUse", "dbSizeFree", "dbQuota"]);

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
export function compileRule(text: string): Rule {
  const env = environment();
  if (text.trim() === "") throw configError("--rule is empty", HINT);
  const preset = /^\s*@(\S*)\s*$/.exec(text)?.[1];
  const source = preset === undefined ? text : RULE_PRESETS[preset];
  if (source === undefined) {
    throw configError(
      `--rule "${text.trim()}" is not a preset`,
      `the presets: ${Object.keys(RULE_PRESETS)
        .map((k) => `@${k}`)
        .join(", ")}; or write a CEL expression (${HINT})`,
    );
  }
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
  program.check(); // types every node of program.ast
  const division = findIntDivision(program.ast);
  if (division !== undefined) {
    const [left, right] = division.operands;
    const corrected = correctIntDivisions(env, source);
    const fix =
      corrected === undefined
        ? `: convert both sides, as in double(${serialize(left)}) / double(${serialize(right)})`
        : `; write --rule '${corrected}'`;
    throw configError(
      `--rule "${source}" divides int by int in ${division.text}, which truncates (a ratio of two sizes is 0 or 1)${fix}`,
      "dbSize, dbSizeInUse, dbSizeFree and dbQuota are ints; fragmentation and dbQuotaUsage are ratios as doubles",
    );
  }
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
  return { source, evaluate, ...(preset === undefined ? {} : { preset }) };
}

/** The operands of a binary node, or nothing for any other node. */
function children(node: ASTNode): ASTNode[] {
  const out: ASTNode[] = [];
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) for (const y of x) visit(y);
    else if (typeof x === "object" && x !== null && "op" in x) out.push(x as ASTNode);
  };
  visit(node.args);
  return out;
}

function mentionsIntVariable(node: ASTNode): boolean {
  if (node.op === "id" && typeof node.args === "string" && INT_VARIABLES.has(node.args)) return true;
  return children(node).some(mentionsIntVariable);
}

/** After a successful check every node carries its type (cel-js keeps it as `checkedType`, named). */
function typeOf(node: ASTNode): unknown {
  return (node as { checkedType?: { name?: unknown } }).checkedType?.name;
}

/**
 * The first division, outermost first, of an int by an int where both sides involve one of the int
 * variables (`dbSizeInUse / dbSize`): a ratio of two sizes truncated to 0 or 1, so a mistake. Dividing
 * by a constant (`dbSize / MiB`) or a literal is an intended truncation and allowed. On a checked AST.
 */
function findIntDivision(node: ASTNode): { text: string; operands: [ASTNode, ASTNode] } | undefined {
  if (node.op === "/") {
    const [left, right] = node.args;
    if (
      typeOf(left) === "int" &&
      typeOf(right) === "int" &&
      mentionsIntVariable(left) &&
      mentionsIntVariable(right)
    ) {
      // serialize, not the source range: a parenthesized left side's range starts after its "(".
      return { text: serialize(node), operands: [left, right] };
    }
  }
  for (const child of children(node)) {
    const found = findIntDivision(child);
    if (found) return found;
  }
  return undefined;
}

/** The rule with each side of every int-by-int division wrapped in double(), or nothing if that fails. */
function correctIntDivisions(env: Environment, source: string): string | undefined {
  let text = source;
  for (let round = 0; round < 10; round += 1) {
    let program;
    try {
      program = env.parse(text);
    } catch {
      return undefined;
    }
    const checked = program.check();
    if (!checked.valid || checked.type !== "bool") return undefined;
    const found = findIntDivision(program.ast);
    if (found === undefined) return text;
    const [left, right] = found.operands;
    // The right side first, so that the left side's offsets still hold.
    for (const operand of [right, left]) {
      text = `${text.slice(0, operand.start)}double(${text.slice(operand.start, operand.end)})${text.slice(operand.end)}`;
    }
  }
  return undefined;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split("\n")[0] ?? text).trim();
}

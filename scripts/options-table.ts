// `npm run options-table`: writes README.md's options table from the option table in
// src/cli/options.ts. test/unit/options.test.ts fails when the README's copy differs.

import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { OptionSpec } from "../src/cli/option-types.js";
import { OPTIONS } from "../src/cli/options.js";
import { longFlag, shortFlag } from "../src/cli/parse-options.js";

export const README = join(resolve(import.meta.dirname, ".."), "README.md");
export const BEGIN =
  "<!-- BEGIN options table: generated from src/cli/options.ts by `npm run options-table` -->";
export const END = "<!-- END options table -->";

/** A pipe ends a cell in Markdown, also inside code spans. */
function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

function flagCell(spec: OptionSpec): string {
  const short = shortFlag(spec);
  const flag = short === undefined ? longFlag(spec) : `${short}, ${longFlag(spec)}`;
  if (spec.type.kind === "boolean") return `\`${flag}\``;
  const arg = spec.type.choices
    ? spec.type.choices.join("|")
    : (/<([^>]+)>/.exec(spec.flag)?.[1] ?? "value").toUpperCase();
  return cell(`\`${flag} ${arg}\``);
}

function defaultCell(spec: OptionSpec): string {
  if (spec.type.kind === "boolean") return "off";
  if (spec.defaultHelp !== undefined) return cell(spec.defaultHelp);
  return spec.default === undefined ? "" : cell(`\`${spec.default}\``);
}

/** The Markdown table, aligned the way prettier aligns it (so that `prettier --check` agrees). */
export function renderOptionsTable(options: readonly OptionSpec[] = OPTIONS): string {
  const header = ["flag", "environment", "default", "commands", "meaning"];
  const rows = options.map((spec) => [
    flagCell(spec),
    [spec.env, ...(spec.alsoEnv ?? [])].map((e) => `\`${e}\``).join(", "),
    defaultCell(spec),
    spec.commands.join(", "),
    cell(spec.help),
  ]);
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n") + "\n";
}

/** The table between the markers, or undefined when the markers are missing. */
export function readmeTable(readme: string): string | undefined {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) return undefined;
  return readme.slice(begin + BEGIN.length, end).trim() + "\n";
}

export function withTable(readme: string, table: string): string {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`README.md has no "${BEGIN}" ... "${END}" markers`);
  return `${readme.slice(0, begin + BEGIN.length)}\n\n${table}\n${readme.slice(end)}`;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(README, withTable(readFileSync(README, "utf8"), renderOptionsTable()));
  process.stdout.write("README.md: options table regenerated\n");
}

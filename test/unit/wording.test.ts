// core/ and run/ say nothing platform-specific: every name of a Talos thing in a message comes from
// the backend's words (BackendWords, src/core/backend.ts), so a second backend reads right. Checked
// on every string and template literal of their sources (comments may say what they like).

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import ts from "typescript";

import { REPO_ROOT } from "../harness/run-cli.js";

/** Talos's words: the product, its CLI, its environment, its configuration, its API and roles. */
const TALOS_WORDS =
  /\btalos\b|talosctl|TALOS_|machine ?config|\bapid\b|machined|os:(admin|operator|reader)|extraArgs|etcd ?spec|State API|COSI/i;
/** Our own name is not Talos's. */
const OUR_NAME = /talos-etcd-defrag/g;

/** Every string and template part in a file, with its line. */
function literals(file: string): { line: number; text: string }[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const out: { line: number; text: string }[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      // An import's module path is not a message.
      if (!ts.isImportDeclaration(node.parent) && !ts.isExportDeclaration(node.parent))
        out.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: node.text });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

function talosWordsIn(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .flatMap((f) =>
      literals(join(REPO_ROOT, dir, f))
        .filter((l) => TALOS_WORDS.test(l.text.replace(OUR_NAME, "")))
        .map((l) => `${dir}/${f}:${l.line}: ${JSON.stringify(l.text)}`),
    );
}

describe("wording: no Talos word in a message from core/ or run/", () => {
  for (const dir of ["src/core", "src/run"])
    it(dir, () => {
      assert.deepEqual(talosWordsIn(dir), []);
    });

  it("the check finds Talos's words where they belong (the Talos backend's own words)", () => {
    const found = talosWordsIn("src/talos").filter((l) => l.startsWith("src/talos/words.ts"));
    assert.ok(found.length >= 4, found.join("\n"));
  });
});

// Types of scripts/build-stage.mjs for the tests that import it.
export function buildStage(dockerfile: string): { op: string; args: string }[];
export function replay(opts?: { keep?: boolean }): { stageRoot: string; bundle: string; sha256: string };
export function treeSha256(dir: string): string;

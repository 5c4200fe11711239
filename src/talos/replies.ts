// Talos replies are `{ messages: [X] }`; on one-to-many proxying (`nodes`) each
// entry carries metadata.hostname, and a failed target is an entry with only
// metadata.error/status set. This splits such a reply into per-node results.

import { Code } from "@connectrpc/connect";

import type { DefragError } from "../core/errors.js";
import type { Metadata } from "./gen/common/common_pb.js";
import { statusError } from "./errors.js";
import type { TalosMethod } from "./rbac.js";

const KNOWN_CODES = Object.values(Code).filter((v): v is Code => typeof v === "number");

export type NodeResult<T> = { node: string; value: T } | { node: string; error: DefragError };

/**
 * `requestedNode` names entries without metadata (one-to-one replies carry none).
 */
export function unpackMessages<T extends { metadata?: Metadata | undefined }>(
  method: TalosMethod,
  messages: readonly T[],
  requestedNode: string,
): NodeResult<T>[] {
  return messages.map((entry) => {
    const node = entry.metadata?.hostname || requestedNode;
    const error = entry.metadata?.error ?? "";
    if (error !== "") {
      const status = entry.metadata?.status;
      const code = KNOWN_CODES.find((c) => c === status?.code) ?? Code.Unknown;
      return { node, error: statusError(method, node, code, status?.message || error) };
    }
    return { node, value: entry };
  });
}

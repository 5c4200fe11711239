// The endpoints of a Talos API client: one connection each (mutual TLS over HTTP/2), tried in
// turn. Reads move on to the next endpoint after any transport failure; a call that may change
// something (a defragment) only when the connection could not even be opened. An endpoint that
// failed is passed over for a while.

import { createClient, type CallOptions, type Client } from "@connectrpc/connect";

import type { Config } from "../config/config.js";
import { endpointAddress, type Endpoint } from "../config/endpoints.js";
import { DefragError } from "../core/errors.js";
import { transportFailure } from "../net/transport-errors.js";
import { callError, endpointError } from "./errors.js";
import { State } from "./gen/cosi/state_pb.js";
import { MachineService } from "./gen/machine/machine_pb.js";
import { StorageService } from "./gen/machine/storage_pb.js";
import type { TalosMethod } from "./rbac.js";
import { grpcConnection, type EndpointConnection } from "./session.js";

export interface EndpointPoolOptions {
  /** Deadline of every call but EtcdDefragment (apid adds none and would wait for a hung etcd forever). */
  callTimeoutMs: number;
  /** How long to wait for a TCP + TLS connection to one endpoint. */
  connectTimeoutMs?: number;
  /** Told once per endpoint when the client moves away from it. */
  onWarning?: (message: string) => void;
  /** Opens one endpoint's connection; tests pass in-memory ones. Default: mutual TLS over HTTP/2 from the config. */
  connect?: (endpoint: Endpoint) => EndpointConnection;
  /** The clock of the endpoint backoff (ms since epoch); tests pass a fake one. */
  now?: () => number;
}

interface Connection {
  address: string;
  manager: EndpointConnection["manager"];
  client: Client<typeof MachineService>;
  /** COSI's resource state (what `talosctl get` reads), proxied by apid like the machine API. */
  state: Client<typeof State>;
  /** Filesystem statistics (`talosctl df`), on Talos after 1.14. */
  storage: Client<typeof StorageService>;
  /** Skip this endpoint until then (ms since epoch) after it failed. */
  downUntil: number;
  warned: boolean;
}

/** How long an endpoint that could not be reached is passed over before it is tried again. */
const ENDPOINT_BACKOFF_MS = 15_000;

export class EndpointPool {
  private readonly connections: Connection[];
  private preferred = 0;
  readonly callTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly onWarning: (message: string) => void;
  private readonly now: () => number;
  /** Our certificate is not from the configured CA: a reset after the handshake is most likely a rejection. */
  private readonly certSuspect: boolean;

  constructor(config: Config, opts: EndpointPoolOptions) {
    this.callTimeoutMs = opts.callTimeoutMs;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.onWarning = opts.onWarning ?? (() => undefined);
    this.now = opts.now ?? (() => Date.now());
    this.certSuspect = !config.certIssuedByCa;
    const connect = opts.connect ?? ((endpoint: Endpoint) => grpcConnection(config, endpoint));
    this.connections = config.endpoints.map((endpoint) => {
      const { manager, transport } = connect(endpoint);
      return {
        address: endpointAddress(endpoint),
        manager,
        client: createClient(MachineService, transport),
        state: createClient(State, transport),
        storage: createClient(StorageService, transport),
        downUntil: 0,
        warned: false,
      };
    });
  }

  get size(): number {
    return this.connections.length;
  }

  /** Starts with the next endpoint from now on (after an endpoint's etcd could not answer). */
  rotate(): void {
    this.preferred = (this.preferred + 1) % this.connections.length;
  }

  /** Names the node behind the endpoint last used, for replies to calls without a `node`. */
  label(): string {
    return this.connections[this.preferred]?.address ?? "(endpoint)";
  }

  close(): void {
    for (const c of this.connections) c.manager.abort();
  }

  /**
   * Runs one call through the first endpoint that can be reached. Reads move on
   * to the next endpoint after any transport failure; a defragment only when
   * the connection could not even be opened, because once sent it may be running.
   */
  async invoke<T>(
    method: TalosMethod,
    node: string | undefined,
    signal: AbortSignal | undefined,
    call: (
      client: Client<typeof MachineService>,
      opts: CallOptions,
      state: Client<typeof State>,
      storage: Client<typeof StorageService>,
    ) => Promise<T>,
    /** This call's deadline; "none" for a stream that lasts as long as its caller wants (a followed log). */
    timeoutMs: number | "none" = this.callTimeoutMs,
    idempotent = true,
  ): Promise<T> {
    const failures: DefragError[] = [];
    for (const conn of this.order()) {
      signal?.throwIfAborted();
      const opened = await this.open(conn, signal);
      if (opened !== undefined) {
        failures.push(opened);
        this.markDown(conn, opened);
        continue;
      }
      const headers: Record<string, string> = node === undefined ? {} : { node };
      try {
        const result = await call(
          conn.client,
          { headers, ...(timeoutMs === "none" ? {} : { timeoutMs }), ...(signal ? { signal } : {}) },
          conn.state,
          conn.storage,
        );
        this.preferred = this.connections.indexOf(conn);
        return result;
      } catch (err) {
        if (signal?.aborted)
          throw new DefragError("aborted", `${method} was cancelled: stop requested`, { node });
        const mapped = callError(
          method,
          node ?? `the node behind endpoint ${conn.address}`,
          conn.address,
          err,
          this.certSuspect,
        );
        if (
          idempotent &&
          transportFailure(err, this.certSuspect) !== undefined &&
          mapped.kind !== "tls" &&
          !signal?.aborted
        ) {
          failures.push(mapped);
          this.markDown(conn, mapped);
          continue;
        }
        throw mapped;
      }
    }
    throw this.allFailed(method, node, failures);
  }

  private order(): Connection[] {
    const now = this.now();
    const n = this.connections.length;
    const rotated = Array.from({ length: n }, (_, i) => this.connections[(this.preferred + i) % n]).filter(
      (c): c is Connection => c !== undefined,
    );
    const up = rotated.filter((c) => c.downUntil <= now);
    // When every endpoint failed recently, try them all again rather than give up.
    return up.length > 0 ? [...up, ...rotated.filter((c) => c.downUntil > now)] : rotated;
  }

  private async open(conn: Connection, signal: AbortSignal | undefined): Promise<DefragError | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => {
        resolve("timeout");
      }, this.connectTimeoutMs);
    });
    // Removed in `finally`: one signal lives through every call of a run, so a listener left per call piles up.
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<"aborted">((resolve) => {
      onAbort = () => {
        resolve("aborted");
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const state = await Promise.race([conn.manager.connect(), timeout, aborted]);
      if (state === "aborted") throw new DefragError("aborted", "stopped before the call was sent");
      if (state === "timeout") {
        conn.manager.abort();
        return new DefragError(
          "unreachable",
          `cannot reach endpoint ${conn.address}: no connection after ${this.connectTimeoutMs} ms`,
          {
            endpoint: conn.address,
            hint: "check that the endpoint is a running control-plane node and port 50000 is open",
          },
        );
      }
      if (state === "error") return endpointError(conn.address, conn.manager.error(), this.certSuspect);
      return undefined;
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
    }
  }

  private markDown(conn: Connection, err: DefragError): void {
    conn.downUntil = this.now() + ENDPOINT_BACKOFF_MS;
    if (!conn.warned && this.connections.length > 1) {
      conn.warned = true;
      this.onWarning(`${err.message}; trying the other endpoints`);
    }
  }

  private allFailed(method: TalosMethod, node: string | undefined, failures: DefragError[]): DefragError {
    const first = failures[0];
    if (first === undefined) return new DefragError("internal", `${method}: no endpoint configured`);
    if (failures.length === 1)
      return new DefragError(first.kind, first.message, {
        node,
        endpoint: first.endpoint,
        hint: first.hint,
        cause: first,
      });
    const kind = failures.every((f) => f.kind === "tls") ? "tls" : "unreachable";
    return new DefragError(kind, `no endpoint could be used: ${failures.map((f) => f.message).join("; ")}`, {
      node,
      hint: first.hint,
      cause: first,
    });
  }
}

// Client load on every member separately while a tool defragments: sequential
// puts, linearizable gets and a lease keep-alive stream per member, each
// operation recorded with its start, latency and outcome.

import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { EndpointSession } from "../src/talos/session.js";
import { KV, Lease } from "../test/harness/etcdpb/gen/etcdserverpb/rpc_pb.js";

export interface Op {
  member: number;
  kind: "put" | "get" | "keepalive";
  start: number;
  latencyMs: number;
  ok: boolean;
}

const enc = new TextEncoder();
const now = (): number => performance.timeOrigin + performance.now();

/** A per-operation deadline, so that a blocked member shows up as slow, then failed, operations. */
const OP_TIMEOUT_MS = 10_000;

export class LoadGenerator {
  readonly ops: Op[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly sessions: EndpointSession[] = [];

  constructor(private readonly clientUrls: string[]) {}

  start(): void {
    this.clientUrls.forEach((url, member) => {
      // One connection per loop, so that one blocked stream does not delay the others.
      const kv = (): ReturnType<typeof createClient<typeof KV>> => {
        const session = new EndpointSession(url);
        this.sessions.push(session);
        return createClient(KV, createGrpcTransport({ baseUrl: url, sessionManager: session }));
      };
      const putClient = kv();
      const getClient = kv();
      this.loops.push(
        this.loop(member, "put", () =>
          putClient.put(
            { key: enc.encode(`/load/${member}`), value: enc.encode(String(now())) },
            { timeoutMs: OP_TIMEOUT_MS },
          ),
        ),
        this.loop(member, "get", () =>
          getClient.range({ key: enc.encode(`/load/${member}`) }, { timeoutMs: OP_TIMEOUT_MS }),
        ),
        this.keepAlive(member, url),
      );
    });
  }

  private async loop(member: number, kind: Op["kind"], op: () => Promise<unknown>): Promise<void> {
    while (!this.stopped) {
      const start = now();
      let ok = true;
      try {
        await op();
      } catch {
        ok = false;
        await new Promise((r) => setTimeout(r, 50));
      }
      this.ops.push({ member, kind, start, latencyMs: now() - start, ok });
    }
  }

  /** A 10 s lease kept alive every 250 ms; each answer is one operation, gaps show as latency. */
  private async keepAlive(member: number, url: string): Promise<void> {
    const session = new EndpointSession(url);
    this.sessions.push(session);
    const lease = createClient(Lease, createGrpcTransport({ baseUrl: url, sessionManager: session }));
    let granted: bigint;
    try {
      granted = (await lease.leaseGrant({ TTL: 10n })).ID;
    } catch {
      return;
    }
    const stopped = (): boolean => this.stopped;
    let sentAt = now();
    async function* requests(): AsyncGenerator<{ ID: bigint }> {
      while (!stopped()) {
        sentAt = now();
        yield { ID: granted };
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    try {
      for await (const answer of lease.leaseKeepAlive(requests())) {
        this.ops.push({
          member,
          kind: "keepalive",
          start: sentAt,
          latencyMs: now() - sentAt,
          ok: answer.TTL > 0n,
        });
        if (this.stopped) break;
      }
    } catch {
      this.ops.push({ member, kind: "keepalive", start: sentAt, latencyMs: now() - sentAt, ok: false });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.race([Promise.all(this.loops), new Promise((r) => setTimeout(r, OP_TIMEOUT_MS + 1000))]);
    for (const s of this.sessions) s.abort();
  }
}

/** Polls each member's etcd_disk_defrag_inflight: when each member was really defragmenting. */
export class DefragWatcher {
  readonly windows: { member: number; start: number; end: number }[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly clientUrls: string[]) {}

  start(intervalMs = 10): void {
    const open = new Map<number, number>();
    this.loop = (async () => {
      while (!this.stopped) {
        await Promise.all(
          this.clientUrls.map(async (url, member) => {
            try {
              const text = await (
                await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })
              ).text();
              const inflight = /^etcd_disk_defrag_inflight (\S+)$/m.exec(text)?.[1] === "1";
              const t = now();
              if (inflight && !open.has(member)) open.set(member, t);
              if (!inflight && open.has(member)) {
                this.windows.push({ member, start: open.get(member) ?? t, end: t });
                open.delete(member);
              }
            } catch {
              // A member busy answering /metrics is still whatever it was.
            }
          }),
        );
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      for (const [member, start] of open) this.windows.push({ member, start, end: now() });
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

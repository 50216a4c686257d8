/**
 * A JSON-RPC proxy in front of anvil for fault tests: every call (single or
 * inside a batch) is forwarded unless `intercept` answers it itself, which is
 * how a test plays a node that refuses some transactions or a load-balanced
 * backend that lags (null receipts), or a slow one (`delayMs`: the request
 * is answered that much later), or one with rules of its own about its pool
 * (`before` reads the node's state first). It counts calls per method.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface RpcCall {
  id: unknown;
  method: string;
  params: unknown[];
}

/** What the proxy answers instead of the node: a result, or a JSON-RPC error. */
export type RpcAnswer = { result: unknown } | { error: { code: number; message: string; data?: unknown } };

export interface RpcProxy {
  url: string;
  /** calls seen per method (answered or forwarded) */
  count(method: string): number;
  close(): Promise<void>;
}

export async function startRpcProxy(
  target: string,
  intercept: (call: RpcCall) => RpcAnswer | undefined,
  opts: {
    delayMs?: (call: RpcCall) => number;
    /** awaited before a request's calls are intercepted: read what the node holds now (e.g. its pool) */
    before?: (calls: RpcCall[]) => Promise<void>;
  } = {},
): Promise<RpcProxy> {
  const counts = new Map<string, number>();
  const forward = async (payload: unknown) => {
    const res = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) });
    return (await res.json()) as unknown;
  };
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      void (async () => {
        const parsed = JSON.parse(body) as RpcCall | RpcCall[];
        const calls = Array.isArray(parsed) ? parsed : [parsed];
        if (opts.before) await opts.before(calls);
        const answers = calls.map((c) => {
          counts.set(c.method, (counts.get(c.method) ?? 0) + 1);
          const a = intercept(c);
          return a ? { jsonrpc: "2.0", id: c.id, ...a } : undefined;
        });
        const rest = calls.filter((_, i) => answers[i] === undefined);
        const upstream = rest.length === 0 ? [] : Array.isArray(parsed) ? ((await forward(rest)) as { id: unknown }[]) : [await forward(rest[0])];
        const byId = new Map((upstream as { id: unknown }[]).map((r) => [r.id, r]));
        const out = calls.map((c, i) => answers[i] ?? byId.get(c.id));
        const delay = Math.max(0, ...calls.map((c) => opts.delayMs?.(c) ?? 0));
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(Array.isArray(parsed) ? out : out[0]));
      })().catch((e: unknown) => {
        res.statusCode = 502;
        res.end(String(e));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    count: (method) => counts.get(method) ?? 0,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

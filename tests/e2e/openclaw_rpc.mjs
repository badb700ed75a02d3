// A long-lived RPC client for the OpenClaw gateway, driven over stdin/stdout.
// The gateway's CLI pays ~3 s of start-up per call; this imports the client once.
// Usage: node openclaw_rpc.mjs <openclaw package dir> <port>
// Each stdin line is {"method": "...", "params": {...}}; each stdout line is
// {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [pkgDir, port] = process.argv.slice(2);
const sdk = await import(pathToFileURL(join(pkgDir, "dist/plugin-sdk/gateway-runtime.js")).href);
process.stdout.write(JSON.stringify({ ready: true }) + "\n");

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let reply;
  try {
    const { method, params } = JSON.parse(line);
    const result = await sdk.callGatewayFromCli(method, { port: String(port), timeout: "10000", json: true }, params ?? {});
    reply = { ok: true, result };
  } catch (err) {
    reply = { ok: false, error: String(err && err.stack ? err.stack : err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}

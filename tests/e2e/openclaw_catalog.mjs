// The skills catalog as OpenClaw itself builds it for an agent's prompt, driven over stdin/stdout.
// Usage: node openclaw_catalog.mjs <openclaw package dir>
// Each stdin line is {"workspaceDir", "managedSkillsDir"?, "config", "agentId"?} (or
// {"sort": [names]}); each stdout line is {"ok": true, "prompt", "eligible", "resolved"}
// from the gateway's buildSkillSnapshot (the function that makes the <available_skills>
// block of every agent's system prompt: discovery, the eligibility gate, allow-lists and
// prepareSkillsForPrompt), or {"sorted": [...]} from the localeCompare it sorts names with.
// The pinned 2026.9.6 dist keeps it in one hashed chunk: found by its file name.
import { createInterface } from "node:readline";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [pkgDir] = process.argv.slice(2);
const dist = join(pkgDir, "dist");
const chunk = readdirSync(dist).find((f) => /^workspace-skill-prompt-.*\.mjs$/.test(f));
const mod = await import(pathToFileURL(join(dist, chunk)).href);
const buildSkillSnapshot = mod.t;
if (typeof buildSkillSnapshot !== "function") throw new Error(`no buildSkillSnapshot in ${chunk}`);
process.stdout.write(JSON.stringify({ ready: true, chunk }) + "\n");

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let reply;
  try {
    const req = JSON.parse(line);
    if (req.sort) {
      reply = { ok: true, sorted: req.sort.toSorted((a, b) => a.localeCompare(b, "en")) };
    } else {
      const snap = await buildSkillSnapshot(req.workspaceDir, {
        config: req.config, agentId: req.agentId, managedSkillsDir: req.managedSkillsDir,
      });
      reply = {
        ok: true, prompt: snap.prompt, eligible: snap.skills.map((s) => s.name),
        resolved: snap.resolvedSkills.map((s) => s.name),
      };
    }
  } catch (err) {
    reply = { ok: false, error: String(err && err.stack ? err.stack : err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}

// Ask the real OpenClaw package what it makes of SKILL.md files, the way its
// local loader decides (frontmatter parser, name fallback, description rule, size cap).
// argv[2]: the package's dist/ folder. stdin: JSON [{b64, folder}]. stdout: JSON verdicts.
import fs from "node:fs";
import path from "node:path";

const dist = process.argv[2];
const MARK = "//#region src/skills/loading/frontmatter.ts";
const file = fs.readdirSync(dist)
  .filter((f) => f.startsWith("frontmatter-") && f.endsWith(".mjs"))
  .find((f) => fs.readFileSync(path.join(dist, f), "utf8").includes(MARK));
if (!file) throw new Error(`no module in ${dist} holds ${MARK}`);
const { t: parseSkillFrontmatter } = await import(path.join(dist, file));
const MAX_SKILL_FILE_BYTES = 256000; // skills.limits.maxSkillFileBytes default

const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const verdicts = cases.map(({ b64, folder }) => {
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length > MAX_SKILL_FILE_BYTES) return { loads: false, reason: "size" };
  const raw = bytes.toString("utf8");
  let fm;
  try {
    fm = parseSkillFrontmatter(raw);
  } catch (error) {
    return { loads: false, reason: String(error.message) };
  }
  const name = fm.name?.trim() || folder.trim();
  const description = fm.description?.trim();
  if (!name || !description) return { loads: false, reason: "description" };
  return { loads: true, name, description };
});
process.stdout.write(JSON.stringify(verdicts));

// A plain chokidar watcher, as a gateway would configure one, printing what it sees.
//
//   node watch.mjs ROOT              SKILL.md add/change/unlink under ROOT, with the
//                                   content read at the moment of the event
//   node watch.mjs ROOT --all        every event under ROOT (followSymlinks: false),
//                                   for watching the parent of the `current` link
//
// Options are chokidar's plain ones: ignoreInitial, awaitWriteFinish 250 ms.
// One JSON object per line on stdout; {"ready": true} once the initial scan is done.
import { readFileSync } from "node:fs";
import { basename, relative } from "node:path";
import { watch } from "chokidar";

const [root, flag] = process.argv.slice(2);
const all = flag === "--all";
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const watcher = watch(root, {
  ignoreInitial: true,
  awaitWriteFinish: { stabilityThreshold: 250, pollInterval: 50 },
  ...(all ? { followSymlinks: false, depth: 0 } : {}),
});

watcher.on("all", (event, path) => {
  const rel = relative(root, path) || ".";
  if (all) {
    say({ event, path: rel, t: Date.now() });
    return;
  }
  if (basename(path) !== "SKILL.md" || !["add", "change", "unlink"].includes(event)) return;
  let content = null;
  if (event !== "unlink") {
    try {
      content = readFileSync(path, "utf8");
    } catch (err) {
      content = { error: String(err.code || err) };
    }
  }
  say({ event, path: rel, content, t: Date.now() });
});
watcher.on("ready", () => say({ ready: true }));
watcher.on("error", (err) => say({ error: String(err) }));
process.stdin.on("end", () => watcher.close().then(() => process.exit(0)));
process.stdin.resume();

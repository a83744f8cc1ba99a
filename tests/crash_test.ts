/**
 * Staging survives a crash: `transfer` + `post_staging` killed with SIGKILL at random moments. After every
 * kill each landing file exists whole (same sha256) in at least one of landing, staging, archive; after a
 * re-run every file is exactly where the routine says, byte-identical, and no temporary file remains.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lakerunCommand, tempDir } from "./support/lakerun.ts";
import { digests, type Tree, treeOf } from "./support/trees.ts";
import { randomBytes, seededRandom } from "./support/zip_fixtures.ts";

const TRIALS = 24;

/** Landing files: a few large ones (so copies are caught mid-way) and many small ones, in nested folders. */
function landingFiles(): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 4; i++) files[`big/part-${i}.csv`] = randomBytes(6_000_000 + i * 1000, 100 + i);
  for (let i = 0; i < 40; i++) files[`small/${i % 4}/file-${i}.csv`] = randomBytes(1000 + i * 37, 200 + i);
  files["empty.csv"] = new Uint8Array();
  return files;
}

function runLakerun(cwd: string): Deno.ChildProcess {
  return lakerunCommand(["run", "routine.json"], { cwd, stdout: "null" }).spawn();
}

async function prepare(dir: string, files: Record<string, Uint8Array>) {
  await Deno.writeTextFile(
    join(dir, "routine.json"),
    JSON.stringify({
      routine_name: "crash",
      executors: {
        StagingExecutor: {
          params: {
            parent_directory: "data/landing",
            dump_directory: "data/staging",
            archive_or_delete: "archive",
          },
          tasks: ["transfer", "post_staging"],
        },
      },
    }),
  );
  for (const [path, bytes] of Object.entries(files)) {
    await Deno.mkdir(join(dir, "data/landing", path, ".."), { recursive: true });
    await Deno.writeFile(join(dir, "data/landing", path), bytes);
  }
}

Deno.test(`transfer + post_staging killed at ${TRIALS} random moments: nothing is lost, a re-run completes`, async () => {
  const files = landingFiles();
  const expected = digests(files);
  const random = seededRandom(Number(Deno.env.get("LAKERUN_CRASH_SEED") ?? 20261124));

  // how long an uninterrupted run takes here, to spread the kills over it
  let fullRunMs: number;
  {
    await using dir = await tempDir();
    await prepare(dir.path, files);
    const started = performance.now();
    const status = await runLakerun(dir.path).status;
    fullRunMs = performance.now() - started;
    assert.ok(status.success);
  }

  const killedIn = { landingOnly: 0, midway: 0, afterEverything: 0 };
  for (let trial = 0; trial < TRIALS; trial++) {
    await using dir = await tempDir();
    await prepare(dir.path, files);
    const child = runLakerun(dir.path);
    const delay = random() * fullRunMs * 1.1;
    await new Promise((resolve) => setTimeout(resolve, delay));
    try {
      child.kill("SIGKILL");
    } catch {
      // it already finished
    }
    await child.status;
    await child.stderr.cancel();

    // temporary names included, so a test can see them
    const where: Record<string, Tree> = {
      landing: await treeOf(join(dir.path, "data/landing"), { temporaries: true }),
      staging: await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
      archive: await treeOf(join(dir.path, "data/archive"), { temporaries: true }),
    };
    for (const [path, hash] of Object.entries(expected)) {
      const whole = [where.landing, where.staging, where.archive].some((place) => place[path] === hash);
      assert.ok(whole, `trial ${trial} (killed after ${delay.toFixed(0)} ms): ${path} exists whole nowhere`);
    }
    const count = (place: string) => Object.keys(where[place]).length;
    if (count("archive") === 0 && count("staging") === 0) killedIn.landingOnly++;
    else if (count("landing") === 0) killedIn.afterEverything++;
    else killedIn.midway++;

    const rerun = runLakerun(dir.path);
    const [status, stderr] = await Promise.all([rerun.status, new Response(rerun.stderr).text()]);
    assert.ok(status.success, `trial ${trial}: the re-run failed: ${stderr}`);
    for (const [place, tree] of [["staging", expected], ["archive", expected], ["landing", {}]] as const) {
      const stored = await treeOf(join(dir.path, "data", place), { temporaries: true });
      assert.deepEqual(stored, tree, `trial ${trial}: ${place}`);
    }
  }
  // the kills must really have landed in the middle of the work, or the test proves nothing
  assert.ok(killedIn.midway >= 3, `too few kills caught the run mid-way: ${JSON.stringify(killedIn)}`);
});

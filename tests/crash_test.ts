/**
 * Staging survives a crash: `transfer` + `post_staging` killed with SIGKILL at random moments. After every
 * kill each landing file exists whole (same sha256) in at least one of landing, staging, archive; after a
 * re-run every file is exactly where the routine says, byte-identical, and no temporary file remains.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { lakerunCommand, tempDir } from "./support/lakerun.ts";
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

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Every regular file under `dir`: path → sha256 (temporary names included, so a test can see them). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (path: string, prefix: string) => {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isDirectory) await walk(join(path, entry.name), `${prefix}${entry.name}/`);
      else if (entry.isFile) {
        out.set(prefix + entry.name, sha256(await Deno.readFile(join(path, entry.name))));
      }
    }
  };
  await walk(dir, "").catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return out;
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
  const expected = new Map(Object.entries(files).map(([path, bytes]) => [path, sha256(bytes)]));
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

    const where = {
      landing: await snapshot(join(dir.path, "data/landing")),
      staging: await snapshot(join(dir.path, "data/staging")),
      archive: await snapshot(join(dir.path, "data/archive")),
    };
    for (const [path, hash] of expected) {
      const whole = [where.landing, where.staging, where.archive].some((place) => place.get(path) === hash);
      assert.ok(whole, `trial ${trial} (killed after ${delay.toFixed(0)} ms): ${path} exists whole nowhere`);
    }
    if (where.archive.size === 0 && where.staging.size === 0) killedIn.landingOnly++;
    else if (where.landing.size === 0) killedIn.afterEverything++;
    else killedIn.midway++;

    const rerun = runLakerun(dir.path);
    const [status, stderr] = await Promise.all([rerun.status, new Response(rerun.stderr).text()]);
    assert.ok(status.success, `trial ${trial}: the re-run failed: ${stderr}`);
    assert.deepEqual(await snapshot(join(dir.path, "data/staging")), expected, `trial ${trial}: staging`);
    assert.deepEqual(await snapshot(join(dir.path, "data/archive")), expected, `trial ${trial}: archive`);
    assert.deepEqual(await snapshot(join(dir.path, "data/landing")), new Map(), `trial ${trial}: landing`);
  }
  // the kills must really have landed in the middle of the work, or the test proves nothing
  assert.ok(killedIn.midway >= 3, `too few kills caught the run mid-way: ${JSON.stringify(killedIn)}`);
});

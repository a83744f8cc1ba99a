/**
 * Many small files, side by side in one run: StagingExecutor (`transfer` + `post_staging`, archiving) on a
 * folder of small files vs `cp -r` and vs `cp -r` plus `sha256sum` of both trees (what "copy, then verify"
 * costs with the standard tools), and DownloaderExecutor extracting zips of many small entries, served on
 * loopback, vs `unzip` of the same file on disk (and `curl` + `unzip`). Every lakerun run is
 * `deno run -A main.ts run routine.json`, as a user runs it (no V8 flag). Variants alternate within each
 * run, each after `sync` and, where the bench may (root), dropping the kernel's caches: on this project's VMs
 * the cost of creating files swings several-fold with the state of the page and slab caches (`cp -r` of 5,000
 * files took 0.17 s at one moment and 4.2 s at another), so every variant starts from the same state. The
 * table gives medians and ranges (min–max) of wall time, and the load average.
 *
 * With `--fresh-fs` (root, `mkfs.ext4`), every variant writes to an ext4 file system made for it on a loop
 * device, so that none pays for another's deletions (ext4 skips recently freed inodes when it allocates).
 * With `--warm`, the caches are not dropped: Deno's 96 MB executable and lakerun's modules stay in memory, as
 * when routines run often (dropped, Deno's start-up reads them from disk: about 0.15 s more here; unzip is
 * 0.18 MB).
 *
 * The zips are served by nginx (sendfile: next to no CPU, as a remote server costs this machine), or with
 * `--server deno|python` by bench/serve_files.ts or Python's `http.server`, which share this machine's two
 * cores with the extraction.
 *
 * Usage: deno run -A bench/small_files.ts [--staging 5000,50000] [--zips 20000,70000] [--runs 3] [--fresh-fs]
 * [--warm] [--server nginx|deno|python] [--work-in DIR]
 * `--work-in` is the folder the variants' work folder is made in (default bench/data): a step's sandbox
 * resolves every component of each file's path when it creates the file, so the landing folder's depth,
 * given with the zips' table, counts.
 * Data (made once under bench/data/): trees of CSV-like files of 200–2,000 bytes in nested folders
 * (years/months/days), a Python zipfile of N entries of ~1 KB (deflated), and for 70,000 entries a Zip64
 * archive of ~100-byte entries (more than 65,535 entries: Zip64 end records), as in the issue.
 *
 * @module
 */
import { FreshFolders, median, type ServerKind, settleCommand, startServer, timeShell } from "./measure.ts";
import { parseArgs } from "node:util";
import { join } from "node:path";

const { values } = parseArgs({
  options: {
    staging: { type: "string", default: "5000,50000" },
    zips: { type: "string", default: "20000,70000" },
    runs: { type: "string", default: "3" },
    "fresh-fs": { type: "boolean", default: false },
    warm: { type: "boolean", default: false },
    server: { type: "string", default: "nginx" },
    "work-in": { type: "string" },
  },
});
const stagingSizes = values.staging ? values.staging.split(",").filter(Boolean).map(Number) : [];
const zipSizes = values.zips ? values.zips.split(",").filter(Boolean).map(Number) : [];
const runs = Number(values.runs);
const root = new URL("../", import.meta.url).pathname;
const data = join(root, "bench/data");
await Deno.mkdir(data, { recursive: true });
const lakerun =
  `${Deno.execPath()} run -A --quiet --config ${root}/deno.json ${root}/main.ts run routine.json`;

/** Runs `command` under GNU time in `cwd`: wall seconds and peak RSS. */
const sh = (command: string, cwd: string) => timeShell(command, cwd, "bash");

/** Runs `command` untimed, failing with its output. */
async function run(command: string, cwd: string): Promise<void> {
  const output = await new Deno.Command("bash", { args: ["-c", command], cwd, stderr: "piped" }).output();
  if (!output.success) throw new Error(`failed: ${command}\n${new TextDecoder().decode(output.stderr)}`);
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/** A tree of `n` small CSV-like files in nested folders (made once). */
async function ensureTree(n: number): Promise<string> {
  const tree = join(data, `small-tree-${n}`);
  if (await exists(tree)) return tree;
  console.error(`generating ${tree} …`);
  await run(
    `python3 - <<'EOF'
import os, random
random.seed(${n})
for i in range(${n}):
    d = os.path.join("${tree}.part", "y%d" % (i % 5), "m%02d" % (i // 5 % 12), "d%02d" % (i // 60 % 28))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d.csv" % i), "w") as f:
        f.write("".join(random.choice("0123456789,") for _ in range(random.randint(200, 2000))) + "\\n")
EOF
mv ${tree}.part ${tree}`,
    data,
  );
  return tree;
}

/** A Python zipfile of `n` small deflated entries (made once): ~1 KB each, ~100 bytes past 65,535 entries. */
async function ensureZip(n: number): Promise<string> {
  const zip = join(data, `small-${n}.zip`);
  if (await exists(zip)) return zip;
  console.error(`generating ${zip} …`);
  await run(
    `python3 - <<'EOF'
import random, zipfile
random.seed(${n})
with zipfile.ZipFile("${zip}.part", "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(${n}):
        size = 1000 if ${n} <= 65535 else 100
        z.writestr("d%03d/f%06d.csv" % (i // 1000, i), "".join(random.choice("0123456789,") for _ in range(size)) + "\\n")
EOF
mv ${zip}.part ${zip}`,
    data,
  );
  return zip;
}

type Sample = { seconds: number; maxRssKiB: number };
const cell = (samples: Sample[]) => {
  const s = samples.map((r) => r.seconds);
  return `${median(s).toFixed(2)} s (${Math.min(...s).toFixed(2)}–${Math.max(...s).toFixed(2)})`;
};
/**
 * Written to the shell before each variant: pending writes flushed, caches dropped where permitted (with
 * `--warm`, kept: the programs and the archive stay in memory, as after an earlier run).
 */
const SETTLE = settleCommand(values.warm);

const load = async () => (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

const work = await Deno.makeTempDir({ prefix: "lakerun-bench-small-", dir: values["work-in"] ?? data });
/** Where lakerun extracts a zip, and how many folders deep that is: a step's sandbox resolves every one. */
const lines: string[] = [];
const folders = new FreshFolders(work, values["fresh-fs"]);
const zipLanding = join(folders.folder, "out-lakerun");
const zipLandingDepth = zipLanding.split("/").filter(Boolean).length;
const variantFolder = () => folders.next();

try {
  if (stagingSizes.length) {
    lines.push(
      `Staging small files (transfer + post_staging with archive), median (min–max) of ${runs} runs; load average before each size:`,
      "",
      "| files | lakerun | cp -r | cp -r + sha256sum of both trees | lakerun ÷ (cp -r + sha256sum) | load |",
      "| --- | --- | --- | --- | --- | --- |",
    );
    await Deno.writeTextFile(
      join(work, "routine.json"),
      JSON.stringify({
        routine_name: "bench_staging",
        executors: {
          StagingExecutor: {
            params: { parent_directory: "landing", dump_directory: "staging", archive_directory: "archive" },
            tasks: ["transfer", "post_staging"],
          },
        },
      }),
    );
    for (const n of stagingSizes) {
      const tree = await ensureTree(n);
      const before = await load();
      const samples: Record<string, Sample[]> = { lakerun: [], cp: [], cpSha: [] };
      const sums = "find . -type f -print0 | sort -z | xargs -0 sha256sum > /dev/null";
      for (let r = 0; r < runs; r++) {
        let dir = await variantFolder();
        await run(`rm -rf landing staging archive .lakerun cp-out && cp ${work}/routine.json .`, dir);
        await run(`cp -r ${tree} landing && ${SETTLE}`, dir);
        samples.lakerun.push(await sh(lakerun, dir));
        // lakerun's staged and archived trees must be the source's
        await run(`diff -r ${tree} staging && diff -r ${tree} archive`, dir);
        dir = await variantFolder();
        await run(`rm -rf cp-out && ${SETTLE}`, dir);
        samples.cp.push(await sh(`cp -r ${tree} cp-out`, dir));
        dir = await variantFolder();
        await run(`rm -rf cp-out && ${SETTLE}`, dir);
        samples.cpSha.push(
          await sh(`cp -r ${tree} cp-out && (cd ${tree} && ${sums}) && (cd cp-out && ${sums})`, dir),
        );
        console.error(
          `staging ${n} run ${r + 1}: ${JSON.stringify(Object.values(samples).map((s) => s.at(-1)))}`,
        );
      }
      const ratio = median(samples.lakerun.map((s) => s.seconds)) /
        median(samples.cpSha.map((s) => s.seconds));
      lines.push(
        `| ${n.toLocaleString("en")} | ${cell(samples.lakerun)} | ${cell(samples.cp)} | ${
          cell(samples.cpSha)
        } | ${ratio.toFixed(2)}× | ${before} |`,
      );
    }
    lines.push("");
  }

  if (zipSizes.length) {
    const server = await startServer(values.server as ServerKind, data);
    const port = server.port;
    try {
      lines.push(
        `Zips of many small entries, served on loopback by ${values.server}, caches ${
          values.warm ? "kept (--warm)" : "dropped before each variant"
        }, landing folder ${zipLandingDepth} levels deep (${zipLanding}), median (min–max) of ${runs} runs:`,
        "",
        "| archive | lakerun (plain `deno run`) | peak RSS | unzip (file on disk) | curl + unzip | lakerun ÷ unzip | load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
      );
      for (const n of zipSizes) {
        const zip = await ensureZip(n);
        const name = zip.split("/").at(-1)!;
        const url = `http://127.0.0.1:${port}/${name}`;
        await Deno.writeTextFile(
          join(work, "routine.json"),
          JSON.stringify({
            routine_name: "bench_unzip",
            executors: {
              DownloaderExecutor: {
                params: { requests_arguments: { url }, landing_directory: "out-lakerun", unzip: "unzip" },
                tasks: ["download"],
              },
            },
          }),
        );
        const before = await load();
        const samples: Record<string, Sample[]> = { lakerun: [], unzip: [], curl: [] };
        // unzip's tree, once, untimed: what lakerun's must be
        await run(`rm -rf reference && unzip -q -o ${zip} -d reference`, work);
        for (let r = 0; r < runs; r++) {
          let dir = await variantFolder();
          await run(`rm -rf out-lakerun .lakerun && cp ${work}/routine.json . && ${SETTLE}`, dir);
          samples.lakerun.push(await sh(lakerun, dir));
          await run(`diff -r ${work}/reference out-lakerun`, dir);
          dir = await variantFolder();
          await run(`rm -rf out-unzip && ${SETTLE}`, dir);
          samples.unzip.push(await sh(`unzip -q -o ${zip} -d out-unzip`, dir));
          dir = await variantFolder();
          await run(`rm -rf out-curl x.zip && ${SETTLE}`, dir);
          samples.curl.push(await sh(`curl -sS -o x.zip ${url} && unzip -q -o x.zip -d out-curl`, dir));
          console.error(
            `zip ${n} run ${r + 1}: ${JSON.stringify(Object.values(samples).map((s) => s.at(-1)))}`,
          );
        }
        const ratio = median(samples.lakerun.map((s) => s.seconds)) /
          median(samples.unzip.map((s) => s.seconds));
        const size = ((await Deno.stat(zip)).size / 1e6).toFixed(1);
        lines.push(
          `| ${n.toLocaleString("en")} entries (${size} MB) | ${cell(samples.lakerun)} | ${
            (median(samples.lakerun.map((s) => s.maxRssKiB)) / 1024).toFixed(0)
          } MiB | ${cell(samples.unzip)} | ${cell(samples.curl)} | ${ratio.toFixed(2)}× | ${before} |`,
        );
      }
    } finally {
      await server.stop();
    }
  }
} finally {
  await folders.close();
  await Deno.remove(work, { recursive: true });
}
console.log(
  [
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${
      new Date().toISOString().slice(0, 10)
    }.`,
    "",
    ...lines,
  ].join("\n"),
);

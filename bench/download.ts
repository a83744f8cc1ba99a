/**
 * Download + extract benchmark, side by side in one run, on a loopback server: lakerun's DownloaderExecutor
 * (inflating while the bytes arrive) vs `curl -o x.zip && unzip` vs the notebook's Python (`requests.get`,
 * then `zipfile` on the bytes in memory). Wall time and peak memory (GNU time's maximum resident set size).
 * Each archive is served in turn by bench/serve_files.ts (Deno), nginx (Debian's `nginx-light` or `nginx`,
 * sendfile) and Python's `http.server`, the servers users' data providers run.
 *
 * Usage: deno run -A bench/download.ts [--sizes 200,800] [--runs 3] [--servers deno,nginx,python]
 * Archives (MB of zip) are generated once under bench/data/ (CSV of random digits, deflating about 2.1:1,
 * like the notebook's 200 MB survey zip holding 430 MB of CSV).
 *
 * @module
 */
import { median, type ServerKind, startServer, timeShell } from "./measure.ts";
import { parseArgs } from "node:util";
import { join } from "node:path";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "200,800" },
    runs: { type: "string", default: "3" },
    servers: { type: "string", default: "deno,nginx,python" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const servers = values.servers.split(",") as ServerKind[];
const runs = Number(values.runs);
const root = new URL("../", import.meta.url).pathname;
const data = join(root, "bench/data");
await Deno.mkdir(data, { recursive: true });

const sh = (command: string, cwd = root) => timeShell(command, cwd, "sh");

/** A zip of about `mb` MB holding 4 CSV files of random digits (about 2.15 times the zip's size inflated). */
async function ensureArchive(mb: number): Promise<string> {
  const zip = join(data, `survey-${mb}.zip`);
  if (await Deno.stat(zip).then(() => true, () => false)) return zip;
  console.error(`generating ${zip} …`);
  const work = await Deno.makeTempDir({ dir: data });
  const bytesPerFile = Math.round((mb * 1_000_000 * 2.04) / 4);
  let seed = mb;
  for (let f = 0; f < 4; f++) {
    const file = await Deno.open(join(work, `survey-part-${f}.csv`), { write: true, create: true });
    const writer = file.writable.getWriter();
    await writer.write(new TextEncoder().encode("period,series,region,value,checksum\n"));
    let written = 0;
    const row = new Uint8Array(100);
    const chunk = new Uint8Array(1 << 20);
    while (written < bytesPerFile) {
      let at = 0;
      while (at + row.length <= chunk.length) {
        for (let i = 0; i < 99; i++) {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
          row[i] = 48 + ((seed >>> 16) % 10);
        }
        row[7] =
          row[20] =
          row[31] =
          row[60] =
            44; // commas
        row[99] = 10;
        chunk.set(row, at);
        at += row.length;
      }
      await writer.write(chunk.slice(0, at));
      written += at;
    }
    await writer.close();
  }
  await sh(`zip -q -j -6 ${zip} ${work}/*.csv`);
  await Deno.remove(work, { recursive: true });
  return zip;
}

const PYTHON_NOTEBOOK = `
import io, sys, zipfile, requests
r = requests.get(sys.argv[1])
r.raise_for_status()
zipfile.ZipFile(io.BytesIO(r.content)).extractall(sys.argv[2])
`;

const work = await Deno.makeTempDir({ prefix: "lakerun-bench-dl-" });
await Deno.writeTextFile(join(work, "notebook.py"), PYTHON_NOTEBOOK);

type Tool = "lakerun" | "lakerun, plain deno run" | "curl + unzip" | "notebook (requests + zipfile)";
const results: Record<string, Record<Tool, Array<{ seconds: number; maxRssKiB: number }>>> = {};
for (const mb of sizes) await ensureArchive(mb);
for (const kind of servers) {
  const server = await startServer(kind, data);
  const port = server.port;
  console.error(`== ${kind} server on port ${port}`);
  try {
    for (const mb of sizes) {
      const zip = await ensureArchive(mb);
      const name = zip.split("/").at(-1)!;
      const url = `http://127.0.0.1:${port}/${name}`;
      const zipBytes = (await Deno.stat(zip)).size;
      await Deno.writeTextFile(
        join(work, "routine.json"),
        JSON.stringify({
          routine_name: "bench_download",
          executors: {
            DownloaderExecutor: {
              params: {
                requests_arguments: { url, timeout: 60 },
                landing_directory: "out-lakerun",
                unzip: "unzip",
              },
              tasks: ["download"],
            },
          },
        }),
      );
      // "lakerun" is what `deno task run` and the compiled binary execute: V8 flags cannot be set from inside
      // a running process, so the tasks pass a small young generation (freed buffers are returned sooner)
      const lakerun = `${Deno.execPath()} run -A --quiet --config ${root}/deno.json`;
      const commands: Record<Tool, string> = {
        "lakerun": `${lakerun} --v8-flags=--max-semi-space-size=1 ${root}/main.ts run routine.json`,
        "lakerun, plain deno run": `${lakerun} ${root}/main.ts run routine.json`,
        "curl + unzip": `curl -sS -o x.zip ${url} && unzip -q -o x.zip -d out-curl`,
        "notebook (requests + zipfile)": `python3 notebook.py ${url} out-python`,
      };
      const label = `${(zipBytes / 1e6).toFixed(0)} MB zip, ${kind} server`;
      results[label] = {
        "lakerun": [],
        "lakerun, plain deno run": [],
        "curl + unzip": [],
        "notebook (requests + zipfile)": [],
      };
      for (let run = 0; run < runs; run++) {
        for (const tool of Object.keys(commands) as Tool[]) {
          const output: string = {
            "lakerun": "out-lakerun",
            "lakerun, plain deno run": "out-lakerun",
            "curl + unzip": "out-curl",
            "notebook (requests + zipfile)": "out-python",
          }[tool];
          await Deno.remove(join(work, output), { recursive: true }).catch(() => {});
          await Deno.remove(join(work, "x.zip")).catch(() => {});
          results[label][tool].push(await sh(commands[tool], work));
          console.error(`${label} run ${run + 1}: ${tool} ${JSON.stringify(results[label][tool].at(-1))}`);
        }
      }
      // the extracted trees must be identical
      const listing = async (dir: string) => {
        await sh(`cd ${dir} && find . -type f -exec sha256sum {} + | sort > ../${dir}.sums`, work);
        return await Deno.readTextFile(join(work, `${dir}.sums`));
      };
      const [a, b, c] = [
        await listing("out-lakerun"),
        await listing("out-curl"),
        await listing("out-python"),
      ];
      if (a !== b || a !== c) throw new Error("the tools extracted different bytes");
    }
  } finally {
    await server.stop();
  }
}
await Deno.remove(work, { recursive: true });

const lines = [
  `Download + extract on loopback, median of ${runs} runs (wall s / peak RSS MiB). Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${
    new Date().toISOString().slice(0, 10)
  }.`,
  "",
  "| archive, server | lakerun (`deno task run`) | lakerun, plain `deno run` | curl + unzip | notebook (requests + zipfile) | plain `deno run` ÷ curl+unzip |",
  "| --- | --- | --- | --- | --- | --- |",
];
for (const [label, byTool] of Object.entries(results)) {
  const cell = (tool: Tool) =>
    `${median(byTool[tool].map((r) => r.seconds)).toFixed(2)} s / ${
      (median(byTool[tool].map((r) => r.maxRssKiB)) / 1024).toFixed(0)
    } MiB`;
  const ratio = median(byTool["lakerun, plain deno run"].map((r) => r.seconds)) /
    median(byTool["curl + unzip"].map((r) => r.seconds));
  lines.push(
    `| ${label} | ${cell("lakerun")} | ${cell("lakerun, plain deno run")} | ${cell("curl + unzip")} | ${
      cell("notebook (requests + zipfile)")
    } | ${ratio.toFixed(2)}× |`,
  );
}
console.log(lines.join("\n"));

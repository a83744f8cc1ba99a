/**
 * What creating many small files costs inside a step's sandbox, against unzip: why a zip of many small entries
 * extracts slower with lakerun than with unzip. Side by side in one run, variants alternated, the kernel's
 * caches dropped (after `sync`, where the bench may) before each:
 *
 * - `unzip` of the zip of N ~1 KB entries (bench/data/small-N.zip, made by bench/small_files.ts);
 * - the same files written by a Worker with inherited (unrestricted) permissions: one `Deno.writeFileSync`
 *   each, the least a Deno program can do;
 * - the same writes in a Worker with a step's permissions (read and write on the target folder only), where
 *   Deno resolves every path it checks (a `readlink` per path component, twice for a file not there yet),
 *   one `Deno.writeFileSync` each and through a LocalStorage write batch (staged, then moved into place);
 * - lakerun's extraction of the zip in that sandbox into a write batch (what a step does, less the download
 *   and the process start), streamed from the file as a download is, and with random access as a
 *   self-extracting archive is (small files in batches, on the step's thread and on a helper thread the host
 *   starts with the same permissions, as for a step); and the streamed extraction alone, each entry dropped
 *   (parsing, inflating, checking).
 *
 * Times are inside the process (the Worker's own clock for the Deno variants), so lakerun's start-up is not
 * counted; unzip's are whole runs.
 *
 * With `--fresh-fs` (root, `mkfs.ext4`), each variant writes to an ext4 file system made for it (see
 * `FreshFolders` in bench/measure.ts).
 *
 * Usage: deno run -A bench/file_creation.ts [--entries 20000] [--runs 3] [--fresh-fs]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { FreshFolders, median, settleCommand } from "./measure.ts";
import { type HelperThread, helperThreadOf } from "../lib/helper_threads.ts";

const { values } = parseArgs({
  options: {
    entries: { type: "string", default: "20000" },
    runs: { type: "string", default: "3" },
    "fresh-fs": { type: "boolean", default: false },
  },
});
const entries = Number(values.entries);
const runs = Number(values.runs);
const root = new URL("../", import.meta.url).pathname;
const zip = join(root, `bench/data/small-${entries}.zip`);
try {
  await Deno.stat(zip);
} catch {
  console.error(
    `${zip} is missing: run 'deno run -A bench/small_files.ts --staging "" --zips ${entries}' once`,
  );
  Deno.exit(2);
}

const work = await Deno.makeTempDir({ prefix: "lakerun-bench-create-", dir: join(root, "bench/data") });
const folders = new FreshFolders(work, values["fresh-fs"]);
let target = join(work, "out");

async function sh(command: string): Promise<void> {
  const output = await new Deno.Command("bash", { args: ["-c", command], stderr: "piped" }).output();
  if (!output.success) throw new Error(`${command}: ${new TextDecoder().decode(output.stderr)}`);
}
/** A new target folder (on a file system of its own with `--fresh-fs`), then pending writes flushed and caches dropped. */
async function settle(): Promise<void> {
  target = join(await folders.next(), "out");
  await sh(`rm -rf '${target}' && ${settleCommand(false)}`);
}

/**
 * Runs one variant in a Worker with `permissions`, starting the helper threads it asks for with the same ones
 * (as the host of a step does); resolves to the Worker's own milliseconds.
 */
async function inWorker(mode: string, permissions: Deno.PermissionOptions): Promise<number> {
  await Deno.mkdir(target, { recursive: true });
  const worker = new Worker(new URL("./file_creation_worker.ts", import.meta.url), {
    type: "module",
    deno: { permissions },
  });
  const helpers: HelperThread[] = [];
  try {
    const done = new Promise<number>((resolve, reject) => {
      worker.onmessage = ({ data }) => {
        if (data?.type === "helper-start") {
          const helper = helperThreadOf(
            new Worker(data.url, { type: "module", name: data.name, deno: { permissions } }),
          );
          helpers.push(helper);
          worker.postMessage({ type: "helper-started", id: data.id, port: helper.port }, [helper.port]);
        } else if (typeof data === "number") resolve(data);
        else reject(new Error(String(data)));
      };
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
    });
    worker.postMessage({ mode, zip, target, entries });
    return await done;
  } finally {
    worker.terminate();
    for (const helper of helpers) helper.terminate();
  }
}

/** A step's permissions for the current target. */
const scoped = (): Deno.PermissionOptions => ({
  read: [zip, target, root],
  write: [target],
  net: false,
  env: false,
  run: false,
  ffi: false,
  sys: false,
  import: false,
});
const variants: Record<string, () => Promise<number>> = {
  "unzip": async () => {
    const start = performance.now();
    await sh(`unzip -q -o '${zip}' -d '${target}'`);
    return performance.now() - start;
  },
  "writes, unrestricted Worker": () => inWorker("write", "inherit"),
  "writes, a step's sandbox": () => inWorker("write", scoped()),
  "writes through a write batch, a step's sandbox": () => inWorker("batch", scoped()),
  "lakerun extraction, streamed (a download), a step's sandbox": () => inWorker("stream", scoped()),
  "lakerun extraction, random access (self-extracting), a step's sandbox": () => inWorker("file", scoped()),
  "extraction only, streamed (entries dropped)": () => inWorker("parse", scoped()),
};

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
try {
  for (let run = 0; run < runs; run++) {
    for (const [name, variant] of Object.entries(variants)) {
      await settle();
      samples[name].push(await variant());
    }
    console.error(
      `run ${run + 1}: ${JSON.stringify(Object.values(samples).map((s) => Math.round(s.at(-1)!)))}`,
    );
  }
} finally {
  await folders.close();
  await Deno.remove(work, { recursive: true });
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);
const unzip = median(samples.unzip);
console.log(`Creating ${entries.toLocaleString("en")} small files, median (min–max) of ${runs} runs:\n`);
console.log("| variant | seconds | ÷ unzip |");
console.log("| --- | --- | --- |");
for (const [name, xs] of Object.entries(samples)) {
  const range = `${seconds(Math.min(...xs))}–${seconds(Math.max(...xs))}`;
  console.log(`| ${name} | ${seconds(median(xs))} (${range}) | ${(median(xs) / unzip).toFixed(2)}× |`);
}

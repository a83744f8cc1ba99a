/**
 * Benchmark: streaming ZIP extraction (lib/zip.ts) against Info-ZIP `unzip`.
 *
 * ```sh
 * deno run -A bench/zip_extract.ts                    # generates ~200 MB of zipped CSV in a temp folder
 * deno run -A bench/zip_extract.ts --zip data.zip     # uses an existing archive
 * deno run -A bench/zip_extract.ts --keep             # keeps the temp folder (and the generated zip)
 * ```
 *
 * Each run is a separate process writing real files: `stream` (extractZipStream from `Deno.open().readable`),
 * `file` (extractZipFile) and `unzip -o -q`. Reported: wall time, MB/s of archive and of output, peak RSS
 * (sampled `Deno.memoryUsage().rss` for Deno runs, and the kernel's maximum RSS for every run).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { extractZipFile, extractZipStream, type ZipEntrySink } from "../lib/zip/mod.ts";
import { timeCommand } from "./measure.ts";

/** A sink writing each entry to `root/<path>`. */
function fileSink(root: string): ZipEntrySink {
  return {
    async writeEntry(path, data) {
      const target = join(root, path);
      await Deno.mkdir(dirname(target), { recursive: true });
      const file = await Deno.open(target, { write: true, create: true, truncate: true });
      await data.pipeTo(file.writable);
    },
  };
}

/** Child mode: one extraction, printing a JSON line. */
async function child(mode: "stream" | "file", zip: string, out: string) {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 10);
  const started = performance.now();
  const sink = fileSink(out);
  const summary = mode === "stream"
    ? await extractZipStream((await Deno.open(zip)).readable, sink)
    : await extractZipFile(zip, sink);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(timer);
  peak = Math.max(peak, Deno.memoryUsage().rss);
  console.log(JSON.stringify({ seconds, sampledPeakRss: peak, ...summary }));
}

/** Writes ~430 MB of CSV in 4 deflated entries (~200 MB of zip) with Python's zipfile. */
async function generate(dir: string): Promise<string> {
  const zip = join(dir, "bench.zip");
  const script = `
import random, sys, zipfile
random.seed(42)
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for part in range(4):
        with z.open(f"sales/part-{part}.csv", "w") as w:
            w.write(b"id,region,store,amount,ratio,ref,label\\n")
            rows = []
            for i in range(1_920_000):
                rows.append(f"{part * 10_000_000 + i},R{random.randrange(50)},S{random.randrange(5000):05d},"
                            f"{random.random() * 1e6:.2f},{random.random():.6f},{random.getrandbits(40):010x},"
                            f"item-{random.randrange(1000)}\\n")
                if len(rows) == 50_000:
                    w.write("".join(rows).encode())
                    rows = []
            w.write("".join(rows).encode())
`;
  const result = await new Deno.Command("python3", { args: ["-c", script, zip] }).output();
  if (!result.success) throw new Error(new TextDecoder().decode(result.stderr));
  return zip;
}

const mb = (n: number) => n / 1e6;

async function main() {
  const args = Deno.args;
  if (args[0] === "--child") return await child(args[1] as "stream" | "file", args[2], args[3]);
  const keep = args.includes("--keep");
  const zipIndex = args.indexOf("--zip");
  const work = await Deno.makeTempDir({ prefix: "zip-bench-" });
  try {
    let zip = zipIndex >= 0 ? args[zipIndex + 1] : undefined;
    if (!zip) {
      console.log("generating CSV zip…");
      zip = await generate(work);
    }
    const archiveBytes = (await Deno.stat(zip)).size;
    const rounds = 3;
    const rows: string[] = [];
    let outputBytes: number | undefined;
    for (const mode of ["stream", "file", "unzip"] as const) {
      for (let round = 0; round < rounds; round++) {
        const out = join(work, `out-${mode}-${round}`);
        await Deno.mkdir(out);
        const cmd = mode === "unzip"
          ? ["unzip", "-o", "-q", zip, "-d", out]
          : [Deno.execPath(), "run", "-A", import.meta.filename!, "--child", mode, zip, out];
        const { seconds, maxRss, stdout } = await timeCommand(cmd);
        const child = mode === "unzip" ? undefined : JSON.parse(stdout.trim().split("\n").at(-1)!);
        outputBytes ??= child?.bytes;
        const bytes = child?.bytes ?? outputBytes;
        const inner = child?.seconds ?? seconds;
        const rates = `${(mb(archiveBytes) / inner).toFixed(0)} MB/s of archive` +
          (bytes ? `, ${(mb(bytes) / inner).toFixed(0)} MB/s of output` : "");
        const memory = `max RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB` +
          (child ? `, sampled peak RSS ${(child.sampledPeakRss / 2 ** 20).toFixed(0)} MiB` : "");
        const times = `${seconds.toFixed(2)} s wall (extraction ${inner.toFixed(2)} s)`;
        rows.push(`${mode.padEnd(6)} round ${round}: ${times}, ${rates}, ${memory}`);
        console.log(rows.at(-1));
        await Deno.remove(out, { recursive: true });
      }
    }
    console.log(`archive: ${zip}, ${mb(archiveBytes).toFixed(0)} MB`);
  } finally {
    if (!keep) await Deno.remove(work, { recursive: true });
    else console.log(`kept ${work}`);
  }
}

await main();

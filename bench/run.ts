/**
 * Runs every benchmark in one go and writes their tables to bench/RESULTS.md (`deno task bench`).
 * Each benchmark prints a markdown table on standard output; progress goes to standard error.
 *
 * Usage: deno run -A bench/run.ts [--only sandbox,download,s3] [--quick]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";

const { values } = parseArgs({
  options: { only: { type: "string" }, quick: { type: "boolean", default: false } },
});
const root = new URL("../", import.meta.url).pathname;

const benchmarks: Record<string, { title: string; args: string[]; quickArgs: string[] }> = {
  sandbox: {
    title: "Sandbox cost (issue: core)",
    args: ["bench/sandbox.ts"],
    quickArgs: ["bench/sandbox.ts", "--steps", "50", "--runs", "2"],
  },
  download: {
    title: "Download + extract vs curl + unzip vs the notebook (issue: downloads and archives)",
    args: ["bench/download.ts"],
    quickArgs: ["bench/download.ts", "--sizes", "50", "--runs", "1", "--servers", "deno"],
  },
  small_files: {
    title:
      "Many small files: staging vs cp -r (+ sha256sum), small-entry zips vs unzip (issue: real-world archives)",
    args: ["bench/small_files.ts"],
    quickArgs: [
      "bench/small_files.ts",
      "--staging",
      "2000",
      "--zips",
      "5000",
      "--runs",
      "1",
      "--server",
      "deno",
    ],
  },
  file_creation: {
    title: "Creating many small files in a step's sandbox vs unzip (issue: real-world archives)",
    args: ["bench/file_creation.ts"],
    quickArgs: ["bench/file_creation.ts", "--entries", "5000", "--runs", "1"],
  },
  s3: {
    title: "S3 transfers vs rclone (issue: S3 everywhere)",
    args: ["bench/s3.ts"],
    quickArgs: ["bench/s3.ts", "--quick"],
  },
  postgres: {
    title: "PostgreSQL load and upsert vs psql (issue: PostgresExecutor)",
    args: ["bench/postgres_load.ts"],
    quickArgs: ["bench/postgres_load.ts", "--quick"],
  },
  cloud_poll: {
    title: "Cloud job polling: lakerun's adaptive poller vs Airflow's fixed intervals (issue: Glue)",
    args: ["bench/cloud_poll.ts"],
    quickArgs: ["bench/cloud_poll.ts", "--runs", "1"],
  },
};

const selected = values.only ? values.only.split(",") : Object.keys(benchmarks);
const sections: string[] = [];
for (const name of selected) {
  const bench = benchmarks[name];
  if (!bench) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(benchmarks).join(", ")}`);
  console.error(`== ${bench.title}`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      join(root, "deno.json"),
      ...(values.quick ? bench.quickArgs : bench.args),
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  console.log(text);
  sections.push(`## ${bench.title}\n\n${output.success ? text : `failed (exit ${output.code})\n\n${text}`}`);
}

if (!values.quick && !values.only) {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() =>
    ""
  )).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  const header = [
    "# Benchmark results",
    "",
    `Written by \`deno task bench\` on ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC:`,
    `${cpu}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}. Every comparison ran side by side in one run.`,
  ].join("\n");
  await Deno.writeTextFile(join(root, "bench/RESULTS.md"), `${header}\n\n${sections.join("\n\n")}\n`);
  console.error("wrote bench/RESULTS.md");
}

/**
 * Benchmark: S3TransferExecutor (through lakerun's real command line) against rclone, on one real S3 server
 * (Ceph radosgw on loopback), side by side in one run:
 *
 * - a 1 GiB file local → S3 and S3 → local;
 * - 5,000 small objects S3 → S3 (server-side copies for both).
 *
 * ```sh
 * deno run -A bench/s3.ts                         # starts its own server (or reuses LAKERUN_TEST_S3_ENV)
 * deno run -A bench/s3.ts --runs 5 --size-mib 256 --objects 1000
 * deno run -A bench/s3.ts --concurrency 4,16      # S3 → S3 at each: lakerun concurrency = rclone --transfers
 * deno run -A bench/s3.ts --quick                 # 1 run, 64 MiB, 300 objects; writes no results file
 * deno run -A bench/s3.ts --large-only            # only the 1 GiB file, up and down
 * ```
 *
 * Each measurement is a separate process under `/usr/bin/time` (wall time measured here, peak RSS from the
 * kernel). lakerun runs its command line, `deno run -A --v8-flags=--max-semi-space-size=1 main.ts run
 * routine.json` as `deno task run` does (and once more without the flag), with a routine holding one
 * S3TransferExecutor step and an `"s3": {"endpoint": …}` block, credentials from the environment; rclone runs
 * `rclone copy` with a config for the same endpoint and `AWS_CA_BUNDLE` unset (rclone 1.60 fails with it),
 * twice: as users run it (checksums on: an MD5 stored with each upload and checked after each download) and
 * with `--s3-disable-checksum` (nothing checked after a multipart download). Before each measurement the destination is emptied (and radosgw's garbage
 * collected: its store is in memory); after each one the bytes are checked: sha256 of the 1 GiB object or
 * file, ETag and size of every copied small object against its source. The table goes to stdout (for
 * `deno task bench`) and, with its heading, to the file named by `--out`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import {
  createS3Client,
  createTestBucket,
  parseEnvFile,
  S3_SERVER_SCRIPT,
  type S3TestServer,
  SHARED_ENV_VARIABLE,
} from "../tests/support/s3_server.ts";
import { randomBytes } from "../tests/support/zip_fixtures.ts";
import { type Measurement, median, timeCommand } from "./measure.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const MiB = 1024 * 1024;

const args = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    "size-mib": { type: "string", default: "1024" },
    objects: { type: "string", default: "5000" },
    concurrency: { type: "string", default: "4,16" },
    out: { type: "string" },
    quick: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "large-only": { type: "boolean", default: false },
  },
});
const QUICK = args.values.quick;
const RUNS = QUICK ? 1 : Number(args.values.runs);
const SIZE = (QUICK ? 64 : Number(args.values["size-mib"])) * MiB;
/** `--large-only`: only the large file's two scenarios (no small objects). */
const LARGE_ONLY = args.values["large-only"];
const OBJECTS = LARGE_ONLY ? 0 : QUICK ? 300 : Number(args.values.objects);
/** Where the results also go, with their heading: `--out FILE` (`deno task bench` collects the table itself). */
const OUT = args.values.out;
/** S3 → S3 runs at each of these (lakerun `concurrency`, rclone `--transfers`); the first is also used for the
 * single large file, where it does not matter (one file; both tools upload 4 parts at a time). */
const CONCURRENCIES = args.values.concurrency!.split(",").map(Number);
const CONCURRENCY = CONCURRENCIES[0];
/** The concurrencies the small-object scenarios run at: none with `--large-only`. */
const SMALL_OBJECT_CONCURRENCIES = LARGE_ONLY ? [] : CONCURRENCIES;

// ---------------------------------------------------------------------------------------------------------
// the server

interface BenchServer extends S3TestServer {
  /** The server's folder (holds ceph.conf), to run radosgw-admin. */
  dir: string;
}

async function script(argv: string[]): Promise<string> {
  const out = await new Deno.Command("bash", { args: [S3_SERVER_SCRIPT, ...argv], stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`s3_server.sh ${argv.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** The shared server named by LAKERUN_TEST_S3_ENV, or a private one (its folder is needed for gc). */
async function startServer(): Promise<BenchServer> {
  const shared = Deno.env.get(SHARED_ENV_VARIABLE);
  let dir: string;
  let stop = () => Promise.resolve();
  if (shared) {
    dir = dirname(shared);
  } else {
    dir = await Deno.makeTempDir({ prefix: "lakerun-bench-s3-" });
    await script(["start", dir, "--watch-pid", String(Deno.pid)]);
    stop = async () => {
      await script(["stop", dir]).catch(() => "");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    };
  }
  const env = parseEnvFile(await Deno.readTextFile(join(dir, "env")));
  return {
    dir,
    endpoint: env.AWS_ENDPOINT_URL,
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    region: env.AWS_REGION,
    env,
    stop,
  };
}

/** Frees the space of deleted objects now (radosgw otherwise waits hours), so memstore does not fill up. */
async function collectGarbage(server: BenchServer) {
  const out = await new Deno.Command("radosgw-admin", {
    args: ["-c", join(server.dir, "ceph.conf"), "gc", "process", "--include-all"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`radosgw-admin gc process: ${new TextDecoder().decode(out.stderr)}`);
}

// ---------------------------------------------------------------------------------------------------------
// S3 helpers

interface Listed {
  key: string;
  size: number;
  etag: string;
}

async function listAll(client: S3Client, bucket: string, prefix: string): Promise<Listed[]> {
  const out: Listed[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0, etag: o.ETag ?? "" });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

async function emptyPrefix(client: S3Client, bucket: string, prefix: string) {
  const keys = (await listAll(client, bucket, prefix)).map((o) => o.key);
  for (let i = 0; i < keys.length; i += 1000) {
    await client.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
      }),
    );
  }
}

async function objectSha256(client: S3Client, bucket: string, key: string): Promise<string> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash("sha256");
  for await (const chunk of res.Body!.transformToWebStream()) hash.update(chunk);
  return hash.digest("hex");
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

/** Writes `size` pseudo-random bytes to `path`, returning their sha256. */
async function writeBigFile(path: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = 8 * MiB;
  for (let done = 0, seed = 1; done < size; done += chunk, seed++) {
    const bytes = randomBytes(Math.min(chunk, size - done), seed);
    hash.update(bytes);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
  }
  file.close();
  return hash.digest("hex");
}

// ---------------------------------------------------------------------------------------------------------
// measuring

// ---------------------------------------------------------------------------------------------------------
// the benchmark

async function main() {
  for (const program of ["/usr/bin/time", "rclone", "radosgw-admin"]) {
    const found = await new Deno.Command("bash", { args: ["-c", `command -v ${program}`], stdout: "null" })
      .output();
    if (!found.success) {
      throw new Error(
        `${program} is missing (apt-get install ${program === "/usr/bin/time" ? "time" : program})`,
      );
    }
  }
  const work = await Deno.makeTempDir({ prefix: "lakerun-bench-s3-work-" });
  const t0 = performance.now();
  const server = await startServer();
  console.error(`S3 server ${server.endpoint} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const client = createS3Client(server);
  try {
    await benchmark(server, client, work);
  } finally {
    client.destroy();
    await server.stop();
    if (!args.values.keep) await Deno.remove(work, { recursive: true }).catch(() => {});
    else console.error(`kept ${work}`);
  }
}

/**
 * "lakerun" is what `deno task run` executes (V8 flags cannot be set from inside a running process, so the task
 * passes a small young generation); "lakerun, plain deno run" is `deno run -A main.ts run` without it.
 */
const TOOLS = ["lakerun", "lakerun, plain deno run", "rclone", "rclone, no checksums"] as const;
type Tool = typeof TOOLS[number];
const V8_FLAGS = "--v8-flags=--max-semi-space-size=1";

function emptyResults(): Record<Tool, Measurement[]> {
  return Object.fromEntries(TOOLS.map((tool) => [tool, []])) as unknown as Record<Tool, Measurement[]>;
}

interface Scenario {
  name: string;
  bytes: number;
  objects: number;
  results: Record<Tool, Measurement[]>;
}

async function benchmark(server: BenchServer, client: S3Client, work: string) {
  const bucket = await createTestBucket(server, "bench-s3");
  let scenarios: Scenario[];
  try {
    scenarios = await measureAll(server, client, work, bucket);
  } finally {
    // leave a shared server as it was (radosgw's store is in memory)
    await emptyPrefix(client, bucket, "");
    await collectGarbage(server);
  }
  const body = await report(scenarios);
  console.log(body);
  if (OUT) {
    await Deno.writeTextFile(OUT, `# S3 transfers: S3TransferExecutor against rclone\n\n${body}`);
    // as `deno fmt --check` (CI) wants it
    await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", OUT], cwd: ROOT }).output();
    console.error(`written to ${OUT}`);
  }
}

async function measureAll(server: BenchServer, client: S3Client, work: string, bucket: string) {
  // inputs
  console.error(`writing a ${(SIZE / MiB).toFixed(0)} MiB file and ${OBJECTS} small objects…`);
  await Deno.mkdir(join(work, "big"));
  const bigSha = await writeBigFile(join(work, "big/big.bin"), SIZE);
  let smallBytes = 0;
  const small = Array.from({ length: OBJECTS }, (_, i) => {
    const size = 1024 + ((i * 7919) % (15 * 1024)); // 1–16 KiB
    smallBytes += size;
    return { key: `small-src/d${i % 50}/obj-${String(i).padStart(5, "0")}.bin`, size, seed: 1000 + i };
  });
  await pool(small, 32, async ({ key, size, seed }) => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: randomBytes(size, seed) }));
  });
  const smallSource = new Map(
    (await listAll(client, bucket, "small-src/")).map((o) => [o.key.slice("small-src/".length), o]),
  );
  if (smallSource.size !== OBJECTS) {
    throw new Error(`expected ${OBJECTS} source objects, found ${smallSource.size}`);
  }

  // tools
  const rcloneConfig = join(work, "rclone.conf");
  await Deno.writeTextFile(
    rcloneConfig,
    [
      "[bench]",
      "type = s3",
      "provider = Ceph",
      "env_auth = false",
      `access_key_id = ${server.accessKeyId}`,
      `secret_access_key = ${server.secretAccessKey}`,
      `endpoint = ${server.endpoint}`,
      `region = ${server.region}`,
      "force_path_style = true",
      "",
    ].join("\n"),
  );
  const baseEnv = Deno.env.toObject();
  delete baseEnv.AWS_CA_BUNDLE; // rclone 1.60 fails with it; lakerun's runs get the same environment
  for (const key of Object.keys(baseEnv)) {
    if (key.startsWith("AWS_") || key.startsWith("RCLONE_")) delete baseEnv[key];
  }
  const lakerunEnv = {
    ...baseEnv,
    NO_COLOR: "1",
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_REGION: server.region,
  };
  /** rclone as users run it ("rclone": checksums on, its default) or with `--s3-disable-checksum`. */
  const rclone = (tool: Tool, from: string, to: string, concurrency = CONCURRENCY) => [
    "rclone",
    "copy",
    from,
    to,
    "--config",
    rcloneConfig,
    ...(tool === "rclone, no checksums" ? ["--s3-disable-checksum"] : []),
    "--transfers",
    String(concurrency),
    "--checkers",
    String(Math.max(8, concurrency * 2)),
  ];
  let routineCount = 0;
  const lakerun = async (tool: Tool, source: string, destination: string, concurrency = CONCURRENCY) => {
    const file = join(work, `routine-${++routineCount}.json`);
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        routine_name: "bench-s3",
        s3: { endpoint: server.endpoint },
        executors: {
          S3TransferExecutor: { params: { source, destination, concurrency }, tasks: ["copy"] },
        },
      }),
    );
    return [
      "deno",
      "run",
      "-A",
      "--quiet",
      "--config",
      join(ROOT, "deno.json"),
      ...(tool === "lakerun" ? [V8_FLAGS] : []),
      join(ROOT, "main.ts"),
      "run",
      file,
    ];
  };
  const run = (tool: Tool, cmd: string[]) =>
    timeCommand(cmd, { cwd: work, env: tool.startsWith("rclone") ? baseEnv : lakerunEnv });

  // warm Deno's module cache so that the first measured run does not pay for it
  await Deno.mkdir(join(work, "warm"));
  await Deno.writeTextFile(join(work, "warm/x"), "x");
  await run("lakerun", await lakerun("lakerun", "warm", `s3://${bucket}/warm`));

  const scenarios: Scenario[] = [
    {
      name: `${(SIZE / MiB).toFixed(0)} MiB file, local → S3`,
      bytes: SIZE,
      objects: 1,
      results: emptyResults(),
    },
    {
      name: `${(SIZE / MiB).toFixed(0)} MiB file, S3 → local`,
      bytes: SIZE,
      objects: 1,
      results: emptyResults(),
    },
    ...SMALL_OBJECT_CONCURRENCIES.map((concurrency) => ({
      name: `${OBJECTS.toLocaleString("en")} small objects, S3 → S3, ${concurrency} at a time`,
      bytes: smallBytes,
      objects: OBJECTS,
      results: emptyResults(),
    })),
  ];

  for (let i = 0; i < RUNS; i++) {
    // a different tool goes first in each run
    const order = TOOLS.map((_, k) => TOOLS[(k + i) % TOOLS.length]);
    for (const tool of order) {
      const slug = tool.replace(/[^a-z]+/g, "-");
      const up = `up-${slug}/`;
      const down = join(work, `down-${slug}`);

      // local → S3
      const upload = await run(
        tool,
        tool.startsWith("rclone")
          ? rclone(tool, join(work, "big"), `bench:${bucket}/${up}`)
          : await lakerun(tool, "big", `s3://${bucket}/${up}`),
      );
      const uploaded = await objectSha256(client, bucket, `${up}big.bin`);
      if (uploaded !== bigSha) throw new Error(`${tool} upload: sha256 ${uploaded}, expected ${bigSha}`);
      scenarios[0].results[tool].push(upload);

      // S3 → local
      await Deno.remove(down, { recursive: true }).catch(() => {});
      const download = await run(
        tool,
        tool.startsWith("rclone")
          ? rclone(tool, `bench:${bucket}/${up}`, down)
          : await lakerun(tool, `s3://${bucket}/${up}`, down),
      );
      const downloaded = await fileSha256(join(down, "big.bin"));
      if (downloaded !== bigSha) {
        throw new Error(`${tool} download: sha256 ${downloaded}, expected ${bigSha}`);
      }
      await Deno.remove(down, { recursive: true });
      scenarios[1].results[tool].push(download);
      // one large object at a time: radosgw's store is in memory
      await emptyPrefix(client, bucket, up);
      await collectGarbage(server);

      // S3 → S3, small objects, at each concurrency
      const copies: Measurement[] = [];
      for (const [c, concurrency] of SMALL_OBJECT_CONCURRENCIES.entries()) {
        const prefix = `small-${slug}-${concurrency}/`;
        await emptyPrefix(client, bucket, prefix);
        const copy = await run(
          tool,
          tool.startsWith("rclone")
            ? rclone(tool, `bench:${bucket}/small-src`, `bench:${bucket}/${prefix}`, concurrency)
            : await lakerun(tool, `s3://${bucket}/small-src`, `s3://${bucket}/${prefix}`, concurrency),
        );
        const copied = await listAll(client, bucket, prefix);
        if (copied.length !== OBJECTS) {
          throw new Error(`${tool} S3 → S3: ${copied.length} objects, expected ${OBJECTS}`);
        }
        for (const object of copied) {
          const original = smallSource.get(object.key.slice(prefix.length));
          if (!original || original.size !== object.size || original.etag !== object.etag) {
            throw new Error(`${tool} S3 → S3: ${object.key} differs from its source (size or ETag)`);
          }
        }
        await emptyPrefix(client, bucket, prefix);
        scenarios[2 + c].results[tool].push(copy);
        copies.push(copy);
      }
      console.error(
        `run ${i + 1}/${RUNS} ${tool.padEnd(23)} up ${upload.seconds.toFixed(2)} s, down ${
          download.seconds.toFixed(2)
        } s, S3→S3 ${copies.map((m) => `${m.seconds.toFixed(2)} s`).join(" / ")}`,
      );
    }
  }
  return scenarios;
}

// ---------------------------------------------------------------------------------------------------------
// the report

async function commandLine(cmd: string, argv: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args: argv, stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout).split("\n")[0].trim();
  } catch {
    return "?";
  }
}

async function report(scenarios: Scenario[]): Promise<string> {
  const cpu = /model name\s*:\s*(.*)/.exec(await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))?.[1] ??
    "?";
  const memKb = Number(
    /MemTotal:\s*(\d+)/.exec(await Deno.readTextFile("/proc/meminfo").catch(() => ""))?.[1],
  );
  const rows = [
    "| scenario | tool | wall time, median (min–max) | throughput (median) | CPU time, user + system (median) | peak RSS (max) |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const scenario of scenarios) {
    for (const tool of TOOLS) {
      const results = scenario.results[tool];
      const times = results.map((r) => r.seconds);
      const t = median(times);
      const mbps = scenario.bytes / 1e6 / t;
      const throughput = scenario.objects > 1
        ? `${(scenario.objects / t).toFixed(0)} objects/s (${mbps.toFixed(1)} MB/s)`
        : `${mbps.toFixed(0)} MB/s`;
      const rss = Math.max(...results.map((r) => r.maxRss)) / MiB;
      const cpu = median(results.map((r) => r.cpu));
      const system = median(results.map((r) => r.system));
      rows.push(
        `| ${scenario.name} | ${tool} | ${t.toFixed(2)} s (${Math.min(...times).toFixed(2)}–${
          Math.max(...times).toFixed(2)
        }) | ${throughput} | ${cpu.toFixed(1)} s (${(cpu - system).toFixed(1)} + ${system.toFixed(1)}) | ${
          rss.toFixed(0)
        } MiB |`,
      );
    }
  }
  const deno = await commandLine("deno", ["--version"]);
  const rclone = await commandLine("rclone", ["version"]);
  const radosgw = await commandLine("radosgw", ["--version"]);
  return [
    `Measured ${
      new Date().toISOString().slice(0, 10)
    } with \`deno run -A bench/s3.ts --runs ${RUNS} --size-mib ${SIZE / MiB}${
      LARGE_ONLY ? " --large-only" : ` --objects ${OBJECTS} --concurrency ${CONCURRENCIES.join(",")}`
    }\`.`,
    "",
    `- machine: ${cpu}, ${navigator.hardwareConcurrency} cores, ${
      (memKb / 1024 / 1024).toFixed(0)
    } GiB RAM, ${Deno.build.os} ${Deno.build.arch}`,
    `- ${deno}; ${rclone}; ${radosgw.replace(/\s*\(.*$/, "")} (one-node Ceph, memstore, on loopback)`,
    `- lakerun: \`deno run -A ${V8_FLAGS} main.ts run routine.json\` (what \`deno task run\` runs; \"plain deno run\": without the flag), one S3TransferExecutor step (task \`copy\`, \`concurrency\` as shown; 4 is its default), \`"s3": {"endpoint": …}\`, credentials from the environment`,
    `- rclone: \`rclone copy --transfers N --checkers max(8, 2N)\` (N as shown; 4 is its default) with a config for the same endpoint (AWS_CA_BUNDLE unset); "rclone" is its default, checksums on (it stores an MD5 with each upload, in metadata for multipart ones, and checks it after each download); "rclone, no checksums" adds \`--s3-disable-checksum\`, so that nothing is checked after downloading a multipart object`,
    `- ${RUNS} run${
      RUNS === 1 ? "" : "s"
    } per tool, a different tool going first each time; each run is a fresh process into an emptied destination. Wall time includes process start-up. Peak RSS: the kernel's maximum resident set size (\`/usr/bin/time\`).`,
    "- every run's bytes were checked: sha256 of the uploaded object and of the downloaded file; size and ETag of each copied object against its source.",
    "",
    ...rows,
    "",
    "Where the time goes (one core's hashing speed here: " +
    `MD5 ${(await hashRate("md5")).toFixed(0)} MB/s, sha256 ${(await hashRate("sha256")).toFixed(0)} MB/s):`,
    "",
    "- local → S3: both tools upload 4 parts at a time. lakerun sends every part with its Content-MD5 and checks",
    "  the stored ETag against the MD5s it sent; rclone (checksums on) first reads the whole file once for its MD5.",
    "- S3 → local: lakerun downloads objects of 128 MiB and more in 64 MiB ranges, one per core (2 here): one",
    "  on the step's thread, the other on a helper thread the host starts with the step's permissions. Each",
    "  body is read into one reused buffer, its 8 MiB parts hashed as they arrive, so the parts' MD5s check the",
    "  multipart ETag before the file is renamed into place, with no second read. rclone 1.60 downloads files",
    "  over 250 MiB in 4 parallel ranged streams, then (checksums on) reads the file again for its MD5; with",
    "  `--s3-disable-checksum` it checks nothing but the size. Hashing 1 GiB of MD5 takes ~1.7 s of one core",
    "  here, on a machine whose 2 cores also run the S3 server: no tool that checks every byte can match one",
    "  that checks none.",
    "- S3 → S3: every copy is server-side for both tools (no bytes through either). lakerun sends one",
    "  CopyObject per object, conditional on the ETag it listed, and compares the ETag of the answer with it;",
    "  rclone sends CopyObject then a HEAD of the copy. radosgw takes ~50 ms per CopyObject here, so both tools",
    "  are bound by request latency and scale with `concurrency`.",
    "",
  ].join("\n");
}

/** Single-core hashing speed in MB/s. */
async function hashRate(algorithm: "md5" | "sha256"): Promise<number> {
  const chunk = randomBytes(MiB, 7);
  const hash = createHash(algorithm);
  const started = performance.now();
  for (let i = 0; i < 256; i++) hash.update(chunk);
  hash.digest();
  await Promise.resolve();
  return (256 * MiB) / 1e6 / ((performance.now() - started) / 1000);
}

if (import.meta.main) {
  await main();
}

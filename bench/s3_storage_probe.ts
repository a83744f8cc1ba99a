/**
 * Throughput and peak memory of lakerun's S3 Storage (lib/storage_s3.ts) on a real S3 server (radosgw on
 * loopback): a local file uploaded with `write` (streamed, multipart), then downloaded with `read` into a
 * local `write`, each in its own process so that its peak RSS (VmHWM) is its own.
 *
 * Run: deno run -A bench/s3_storage_probe.ts [--mb 300] [--runs 3] [--small-young-gen]
 *
 * It always starts a private server: the test server keeps its data in a 4 GiB memstore, radosgw reclaims
 * overwritten and deleted objects only hours later, and a full store blocks writes instead of failing them,
 * so a benchmark must not fill a server other tests share.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { closeS3Clients } from "../lib/aws/s3/client.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { openS3Location } from "../lib/aws/s3/storage.ts";
import { createTestBucket, startS3Server } from "../tests/support/s3_server.ts";

/** Peak resident set size of this process so far, in MiB (Linux). */
function peakRssMiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** One measured transfer in this process; prints a JSON line. */
async function child(mode: "up" | "down", url: string, endpoint: string, file: string) {
  const settings = { endpoint };
  const s3 = openS3Location(url, settings);
  const local = new LocalStorage(join(file, ".."));
  const name = file.slice(file.lastIndexOf("/") + 1);
  const before = peakRssMiB();
  const t0 = performance.now();
  let size: number;
  if (mode === "up") {
    const info = await Deno.stat(file);
    size = (await s3.write("probe.bin", await local.read(name), { size: info.size })).size;
  } else {
    const target = new LocalStorage(`${file}.down`);
    size = (await target.write(name, await s3.read("probe.bin"))).size;
  }
  const seconds = (performance.now() - t0) / 1000;
  closeS3Clients();
  console.log(
    JSON.stringify({
      mode,
      size,
      seconds,
      mbPerS: size / 1e6 / seconds,
      rssBefore: before,
      peak: peakRssMiB(),
    }),
  );
}

async function main() {
  const args = parseArgs({
    args: Deno.args,
    options: {
      mb: { type: "string", default: "300" },
      runs: { type: "string", default: "3" },
      // what `deno task run` passes (see README): a small young generation frees churned buffers sooner
      "small-young-gen": { type: "boolean", default: false },
    },
  });
  Deno.env.delete("LAKERUN_TEST_S3_ENV"); // a private server, see above
  const server = await startS3Server();
  const bucket = await createTestBucket(server, "probe");
  const dir = await Deno.makeTempDir({ prefix: "lakerun-s3-probe-" });
  const file = join(dir, "probe.bin");
  try {
    // incompressible bytes, written in 1 MiB blocks
    const block = crypto.getRandomValues(new Uint8Array(65536));
    const mib = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 16; i++) mib.set(block.map((b) => b ^ i), i * 65536);
    const out = await Deno.open(file, { write: true, create: true, truncate: true });
    for (let i = 0; i < Number(args.values.mb) * 1e6 / mib.length; i++) await out.write(mib);
    out.close();
    const env = { ...server.env, AWS_ENDPOINT_URL: server.endpoint };
    for (let run = 0; run < Number(args.values.runs); run++) {
      for (const mode of ["up", "down"]) {
        const result = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            ...(args.values["small-young-gen"] ? ["--v8-flags=--max-semi-space-size=1"] : []),
            import.meta.filename!,
            "--child",
            mode,
            `s3://${bucket}/probe`,
            server.endpoint,
            file,
          ],
          env,
          stderr: "inherit",
        }).output();
        const line = new TextDecoder().decode(result.stdout).trim();
        const r = JSON.parse(line);
        console.log(
          `${mode === "up" ? "local→S3" : "S3→local"}  ${(r.size / 1e6).toFixed(0)} MB  ${
            r.seconds.toFixed(2)
          } s  ` +
            `${r.mbPerS.toFixed(0)} MB/s  peak RSS ${r.peak.toFixed(0)} MiB (${
              r.rssBefore.toFixed(0)
            } MiB before)`,
        );
        await Deno.remove(`${file}.down`, { recursive: true }).catch(() => {});
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await server.stop();
  }
}

if (Deno.args[0] === "--child") {
  await child(Deno.args[1] as "up" | "down", Deno.args[2], Deno.args[3], Deno.args[4]);
} else if (import.meta.main) {
  await main();
}

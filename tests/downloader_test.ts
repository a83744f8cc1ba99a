/**
 * DownloaderExecutor end to end: each case runs a routine whose step Worker downloads from a fault-injecting
 * server on loopback. Every success is checked byte for byte; every failure leaves the landing folder as it
 * was (no partial file, no half-extracted archive, no temporary name).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Route, startFaultServer } from "./support/fault_server.ts";
import { lakerun, runRoutineJson, tempDir } from "./support/lakerun.ts";
import { buildZip, randomBytes, sha256, surveyArchive } from "./support/zip_fixtures.ts";

function downloadRoutine(params: Record<string, unknown>, requestArguments: Record<string, unknown>) {
  return {
    routine_name: "download",
    executors: {
      DownloaderExecutor: {
        params: {
          landing_directory: "landing",
          retry_delay: 0.01,
          ...params,
          requests_arguments: requestArguments,
        },
        tasks: ["download"],
      },
    },
  };
}

/** Every file under `dir` with its sha256, temporary names included (they must never remain). */
async function filesIn(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (path: string, prefix: string) => {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isDirectory) await walk(join(path, entry.name), `${prefix}${entry.name}/`);
      else out[prefix + entry.name] = sha256(await Deno.readFile(join(path, entry.name)));
    }
  };
  await walk(dir, "").catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

async function download(
  routes: Record<string, Route>,
  path: string,
  params: Record<string, unknown> = {},
  args: Record<string, unknown> = {},
) {
  await using server = await startFaultServer(routes);
  await using dir = await tempDir();
  const result = await runRoutineJson(
    downloadRoutine({ unzip: "unzip", ...params }, { url: server.url(path), ...args }),
    { cwd: dir.path },
  );
  return {
    ...result,
    landing: await filesIn(join(dir.path, "landing")),
    requests: server.requestsFor(path.split("?")[0]),
  };
}

const { archive, sales, files: expected } = surveyArchive();

Deno.test("unzip: the archive's files land with their folders, byte for byte", async () => {
  const { error, landing, lines } = await download({ "/survey.zip": { body: archive } }, "/survey.zip");
  assert.equal(error, undefined, lines.join("\n"));
  assert.deepEqual(landing, expected);
  assert.ok(lines.some((l) => /✓ download {2}3 files/.test(l)), lines.join("\n"));
});

Deno.test("without unzip: a file path, a folder ending in '/', and an existing folder", async () => {
  await using server = await startFaultServer({ "/data/report%20q1.csv": { body: sales } });
  await using dir = await tempDir();
  const url = server.url("/data/report%20q1.csv");
  const asFile = await runRoutineJson(downloadRoutine({ landing_directory: "out/sales.csv" }, { url }), {
    cwd: dir.path,
  });
  assert.equal(asFile.error, undefined, asFile.lines.join("\n"));
  assert.deepEqual(await filesIn(join(dir.path, "out")), { "sales.csv": sha256(sales) });

  const asFolder = await runRoutineJson(downloadRoutine({ landing_directory: "folder/" }, { url }), {
    cwd: dir.path,
  });
  assert.equal(asFolder.error, undefined);
  assert.deepEqual(await filesIn(join(dir.path, "folder")), { "report q1.csv": sha256(sales) });

  await Deno.mkdir(join(dir.path, "existing"));
  const existing = await runRoutineJson(downloadRoutine({ landing_directory: "existing" }, { url }), {
    cwd: dir.path,
  });
  assert.equal(existing.error, undefined);
  assert.deepEqual(await filesIn(join(dir.path, "existing")), { "report q1.csv": sha256(sales) });
});

Deno.test("file:// URLs download from the local disk", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(join(dir.path, "survey.zip"), archive);
  const url = pathToFileURL(join(dir.path, "survey.zip")).href;
  const { error, lines } = await runRoutineJson(downloadRoutine({ unzip: "unzip" }, { url }), {
    cwd: dir.path,
  });
  assert.equal(error, undefined, lines.join("\n"));
  assert.deepEqual(await filesIn(join(dir.path, "landing")), expected);
});

Deno.test("params, headers, cookies and auth reach the server; the password never reaches the output", async () => {
  const { error, requests, lines } = await download(
    { "/q": { body: archive, requireBasicAuth: ["user", "pa55word"] } },
    "/q",
    {},
    {
      params: { year: 2024, tag: ["a", "b"], skip: null },
      headers: { "X-Api": "k" },
      cookies: { session: "abc" },
      auth: ["user", "pa55word"],
      timeout: 10,
    },
  );
  assert.equal(error, undefined, lines.join("\n"));
  const request = requests.at(-1)!;
  assert.equal(request.target, "/q?year=2024&tag=a&tag=b");
  assert.equal(request.headers.get("x-api"), "k");
  assert.equal(request.headers.get("cookie"), "session=abc");
  assert.ok(!lines.join("\n").includes("pa55word"));
});

Deno.test("404 fails at once, naming the status, and lands nothing", async () => {
  const { error, landing, requests } = await download(
    { "/gone.zip": { status: 404, body: "no" } },
    "/gone.zip",
  );
  assert.match(error?.message ?? "", /task 'download' failed: .*HTTP 404/);
  assert.equal(requests.length, 1, "a 404 is not retried");
  assert.deepEqual(landing, {});
});

Deno.test("503s then success: retried, landed whole", async () => {
  const { error, landing, requests, lines } = await download({
    "/f.zip": { body: archive, failFirst: [503, 503] },
  }, "/f.zip");
  assert.equal(error, undefined, lines.join("\n"));
  assert.equal(requests.length, 3);
  assert.ok(lines.some((l) => /attempt 1 failed \(.*503.*\); retrying/.test(l)), lines.join("\n"));
  assert.deepEqual(landing, expected);
});

Deno.test("429 with Retry-After is honoured", async () => {
  const { error, landing, requests } = await download(
    { "/r.zip": { body: archive, failFirst: [{ status: 429, retryAfter: 1 }] } },
    "/r.zip",
  );
  assert.equal(error, undefined);
  assert.ok(requests[1].time - requests[0].time >= 900, `waited ${requests[1].time - requests[0].time} ms`);
  assert.deepEqual(landing, expected);
});

Deno.test("a connection cut mid-body resumes with Range when the server accepts ranges", async () => {
  const { error, landing, requests, lines } = await download(
    { "/c.zip": { body: archive, cutAfterBytes: 100_000, acceptRanges: true, etag: '"v1"' } },
    "/c.zip",
  );
  assert.equal(error, undefined, lines.join("\n"));
  assert.equal(requests.length, 2);
  assert.match(requests[1].headers.get("range") ?? "", /^bytes=\d+-$/);
  assert.equal(requests[1].headers.get("if-range"), '"v1"');
  assert.deepEqual(landing, expected);
});

Deno.test("a connection cut mid-body restarts from scratch when ranges are not accepted", async () => {
  const { error, landing, requests } = await download(
    { "/n.zip": { body: archive, cutAfterBytes: 100_000, acceptRanges: false } },
    "/n.zip",
  );
  assert.equal(error, undefined);
  assert.equal(requests.length, 2);
  assert.equal(requests[1].headers.get("range"), null);
  assert.deepEqual(landing, expected);
});

Deno.test("a short body is never accepted as complete; a body cut on every attempt fails and lands nothing", async () => {
  const { error, landing, requests } = await download(
    { "/s.csv": { body: sales, cutAfterBytes: 1000, cutTimes: 100, acceptRanges: false } },
    "/s.csv",
    { unzip: null, landing_directory: "landing/s.csv", retries: 2 },
  );
  assert.match(error?.message ?? "", /failed after 3 attempts/);
  assert.equal(requests.length, 3);
  assert.deepEqual(landing, {});
});

Deno.test("a server that stalls longer than the timeout is a failed attempt, then retried", async () => {
  const { error, landing, requests } = await download(
    { "/stall.zip": { body: archive, stallAfterBytes: 50_000, stallMs: 3000, stallTimes: 1 } },
    "/stall.zip",
    {},
    { timeout: 0.5 },
  );
  assert.equal(error, undefined);
  assert.ok(requests.length >= 2);
  assert.deepEqual(landing, expected);
});

Deno.test("sha256: a wrong checksum lands nothing; the right one lands", async () => {
  const wrong = await download({ "/k.zip": { body: archive } }, "/k.zip", { sha256: "0".repeat(64) });
  assert.match(wrong.error?.message ?? "", /sha256 mismatch .*nothing was landed/);
  assert.deepEqual(wrong.landing, {});
  const right = await download({ "/k.zip": { body: archive } }, "/k.zip", {
    checksum: `sha256:${sha256(archive)}`,
  });
  assert.equal(right.error, undefined);
  assert.deepEqual(right.landing, expected);
  const plain = await download({ "/k.csv": { body: sales } }, "/k.csv", {
    unzip: null,
    landing_directory: "landing/",
    sha256: "f".repeat(64),
  });
  assert.match(plain.error?.message ?? "", /sha256 mismatch/);
  assert.deepEqual(plain.landing, {});
  // two digests that disagree: neither is ignored, the routine is refused
  await assert.rejects(
    download({ "/k.zip": { body: archive } }, "/k.zip", {
      sha256: sha256(archive),
      checksum: `sha256:${"0".repeat(64)}`,
    }),
    /params\.checksum: sha256 and checksum name different digests: give one/,
  );
  const both = await download({ "/k.zip": { body: archive } }, "/k.zip", {
    sha256: sha256(archive).toUpperCase(),
    checksum: `sha256:${sha256(archive)}`,
  });
  assert.equal(both.error, undefined);
  assert.deepEqual(both.landing, expected);
});

Deno.test("hostile archives fail naming the entry, and nothing is written anywhere", async () => {
  const hostile: Array<[string, Uint8Array, RegExp]> = [
    [
      "zip-slip",
      buildZip([{ name: "ok.csv", data: "a" }, { name: "../escape.csv", data: "x" }]),
      /'\.\.\/escape\.csv'/,
    ],
    ["absolute", buildZip([{ name: "/etc/cron.d/x", data: "x" }]), /\/etc\/cron\.d\/x/],
    ["drive letter", buildZip([{ name: "C:/x.csv", data: "x" }]), /C:\/x\.csv/],
    ["backslash", buildZip([{ name: "..\\..\\x.csv", data: "x" }]), /x\.csv/],
    ["symlink", buildZip([{ name: "link", data: "/etc/passwd", mode: 0o120777 }]), /'link'/],
    ["duplicate", buildZip([{ name: "a.csv", data: "1" }, { name: "a.csv", data: "2" }]), /'a\.csv'/],
  ];
  for (const [kind, body, entry] of hostile) {
    await using server = await startFaultServer({ "/h.zip": { body } });
    await using dir = await tempDir();
    await Deno.mkdir(join(dir.path, "landing"));
    await Deno.writeTextFile(join(dir.path, "landing/before.csv"), "kept");
    const { error } = await runRoutineJson(
      downloadRoutine({ unzip: "unzip" }, { url: server.url("/h.zip") }),
      { cwd: dir.path },
    );
    assert.ok(error, kind);
    assert.match(error.message, entry, `${kind}: ${error.message}`);
    assert.deepEqual(await filesIn(join(dir.path, "landing")), {
      "before.csv": sha256(new TextEncoder().encode("kept")),
    }, kind);
    const top: string[] = [];
    for await (const e of Deno.readDir(dir.path)) top.push(e.name);
    assert.deepEqual(top.sort(), [".lakerun", "landing"], kind);
  }
});

Deno.test("very compressible data lands; a bomb fails naming max_unzip_ratio, and removes what it wrote", async () => {
  // 50 MiB that deflate ~1000:1, as a CSV of mostly empty columns can: under 1 GiB, the ratio is not applied
  const sparse = buildZip([{ name: "small.csv", data: "ok" }, {
    name: "zeros.bin",
    data: new Uint8Array(50 * 1024 * 1024),
  }]);
  const landed = await download({ "/s.zip": { body: sparse } }, "/s.zip");
  assert.equal(landed.error, undefined, landed.lines.join("\n"));
  assert.deepEqual(Object.keys(landed.landing), ["small.csv", "zeros.bin"]);
  // an entry declaring 3 GiB in a small archive: refused before its data is inflated
  const bomb = buildZip([{ name: "small.csv", data: "ok" }, {
    name: "bomb.bin",
    data: new Uint8Array(1000),
    local: { size: 3 * 2 ** 30 },
    central: { size: 3 * 2 ** 30 },
  }]);
  const byRatio = await download({ "/b.zip": { body: bomb } }, "/b.zip");
  assert.match(
    byRatio.error?.message ?? "",
    /zip entry 'bomb\.bin': declares \d+ inflated bytes so far, over max_unzip_ratio \(200 × \d+ archive bytes\), past the first 1 GiB: a zip bomb, .*raise max_unzip_ratio \(now 200\)/,
  );
  assert.deepEqual(byRatio.landing, {});
  const byBytes = await download({ "/b.zip": { body: archive } }, "/b.zip", { max_unzip_bytes: 100_000 });
  assert.match(byBytes.error?.message ?? "", /over max_unzip_bytes \(100000 bytes\); raise max_unzip_bytes/);
  assert.deepEqual(byBytes.landing, {});
});

Deno.test("an HTML page served with 200 instead of a zip gets a clear error", async () => {
  const { error, landing } = await download(
    {
      "/x.zip": { body: "<!DOCTYPE html><html><body>Please log in</body></html>", contentType: "text/html" },
    },
    "/x.zip",
  );
  assert.match(error?.message ?? "", /not a zip archive \(starts with "<!DOCTYPE html>/);
  assert.deepEqual(landing, {});
});

Deno.test("an archive that cannot be streamed (STORED with a data descriptor) is downloaded first, then extracted", async () => {
  const stored = buildZip([{ name: "a.bin", data: randomBytes(200_000, 3), method: 0, descriptor: true }, {
    name: "b.csv",
    data: sales,
  }]);
  const { error, landing, lines } = await download({ "/st.zip": { body: stored } }, "/st.zip");
  assert.equal(error, undefined, lines.join("\n"));
  assert.ok(lines.some((l) => l.includes("downloading it first")));
  assert.deepEqual(landing, { "a.bin": sha256(randomBytes(200_000, 3)), "b.csv": sha256(sales) });
});

Deno.test("a redirect to another host is refused unless listed in extra_hosts", async () => {
  await using target = await startFaultServer({ "/real.zip": { body: archive } });
  const redirect = {
    handler: () =>
      new Response(null, { status: 302, headers: { location: `http://localhost:${target.port}/real.zip` } }),
  };
  const denied = await download({ "/moved.zip": redirect }, "/moved.zip");
  assert.match(
    denied.error?.message ?? "",
    new RegExp(
      `redirected to http://localhost:${target.port}/real\\.zip, a host this step may not reach .*; ` +
        `add "localhost:${target.port}" to extra_hosts to follow it`,
    ),
  );
  assert.deepEqual(denied.landing, {});
  const allowed = await download({ "/moved.zip": redirect }, "/moved.zip", {
    extra_hosts: [`localhost:${target.port}`],
  });
  assert.equal(allowed.error, undefined, allowed.lines.join("\n"));
  assert.deepEqual(allowed.landing, expected);
});

Deno.test("allow_redirects: false fails on a redirect, naming it", async () => {
  const redirect = {
    handler: () => new Response(null, { status: 302, headers: { location: "/elsewhere.zip" } }),
  };
  const { error, landing, requests } = await download({ "/moved.zip": redirect }, "/moved.zip", {}, {
    allow_redirects: false,
  });
  assert.match(
    error?.message ?? "",
    /HTTP 302 Found \(redirect to http:\/\/127\.0\.0\.1:\d+\/elsewhere\.zip not followed\)/,
  );
  assert.equal(requests.length, 1);
  assert.deepEqual(landing, {});
});

/** A tmpfs of `mib` MiB mounted on a new folder (needs root: CI and this project's machines run tests as root). */
async function smallFileSystem(mib: number): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "lakerun-tmpfs-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", path],
    stderr: "piped",
  }).output();
  if (!mount.success) {
    throw new Error(`mount tmpfs on ${path}: ${new TextDecoder().decode(mount.stderr).trim()}`);
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path] }).output();
      await Deno.remove(path, { recursive: true });
    },
  };
}

Deno.test({
  name:
    "an archive larger than the landing file system's free space fails before filling it, naming what is free",
  ignore: Deno.uid() !== 0, // mounting a small file system needs root (CI runs as root)
  fn: async () => {
    await using disk = await smallFileSystem(32);
    // 80 MiB of zeros: far under the ratio floor (1 GiB) and no max_unzip_bytes, so only the free space stops it
    const big = buildZip([{ name: "small.csv", data: "a,b\n" }, {
      name: "zeros.bin",
      data: new Uint8Array(80 << 20),
    }]);
    const landing = join(disk.path, "landing");
    const declared = await download({ "/big.zip": { body: big } }, "/big.zip", {
      landing_directory: landing,
    });
    assert.match(
      declared.error?.message ?? "",
      /zip entry 'zeros\.bin': declares \d+ inflated bytes so far, more than the landing file system can take \(3\d(\.\d)? MiB free, of which 3\.\d MiB is kept free\); nothing was landed: free some space, or land it elsewhere/,
    );
    assert.deepEqual(await filesIn(landing), {});
    // sizes only in a data descriptor: stopped while inflating, still before the disk is full
    const streamed = buildZip([{ name: "zeros.bin", data: new Uint8Array(80 << 20), descriptor: true }]);
    const counted = await download({ "/s.zip": { body: streamed } }, "/s.zip", {
      landing_directory: landing,
    });
    assert.match(
      counted.error?.message ?? "",
      /zip entry 'zeros\.bin': inflated data is more than the landing file system can take \(/,
    );
    assert.deepEqual(await filesIn(landing), {});
    // what fits lands
    const fits = await download({ "/s.zip": { body: archive } }, "/s.zip", { landing_directory: landing });
    assert.equal(fits.error, undefined, fits.lines.join("\n"));
    assert.deepEqual(await filesIn(landing), expected);
  },
});

Deno.test("plan: extracting into a local folder gets statfs (its free space), nothing else does", async () => {
  await using dir = await tempDir();
  const sysOf = async (params: Record<string, unknown>) => {
    const routine = downloadRoutine(params, { url: "https://example.com/data/survey.zip" });
    await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routine));
    const plan = await lakerun(["plan", "--json", "r.json"], { cwd: dir.path });
    assert.equal(plan.code, 0, plan.stdout + plan.stderr);
    return JSON.parse(plan.stdout).steps[0].permissions.sys;
  };
  assert.deepEqual(await sysOf({ unzip: "unzip" }), ["statfs"]);
  assert.deepEqual(await sysOf({ unzip: false, landing_directory: "landing/" }), []);
  assert.deepEqual(await sysOf({ unzip: "unzip", landing_directory: "s3://bucket/landing" }), []);
});

Deno.test("a secret in a URL's path is masked in every form the URL shows it, percent-encoded too", async () => {
  await using server = await startFaultServer({});
  await using dir = await tempDir();
  const secret = "p@ss w/rd%+é";
  await Deno.writeTextFile(
    join(dir.path, "r.json"),
    JSON.stringify(
      downloadRoutine({ retries: 0, landing_directory: "landing/" }, {
        url: server.url("/x/${{ secrets.LAKERUN_URL_PASS }}/nope.zip"),
      }),
    ),
  );
  const result = await lakerun(["run", "r.json"], { cwd: dir.path, env: { LAKERUN_URL_PASS: secret } });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  let state = "";
  const walk = async (path: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isDirectory) await walk(join(path, entry.name));
      else state += await Deno.readTextFile(join(path, entry.name));
    }
  };
  await walk(join(dir.path, ".lakerun"));
  const shown = `${result.stdout}\n${result.stderr}\n${state}`;
  assert.match(result.stdout + result.stderr, /\/x\/\*\*\*\/nope\.zip/);
  for (
    const form of [
      secret,
      new URL(`http://h/${secret}`).pathname.slice(1),
      "rd%+%C3%A9",
      encodeURIComponent(secret),
    ]
  ) {
    assert.ok(!shown.includes(form), `${form} appears in:\n${shown}`);
  }
});

Deno.test("a URL whose file name holds a % that is no percent-encoding is downloaded under that name", async () => {
  await using server = await startFaultServer({ "/x/%zz.csv": { body: "a,b\n" } });
  await using dir = await tempDir();
  const { error, lines } = await runRoutineJson(
    downloadRoutine({ landing_directory: "landing/" }, { url: server.url("/x/%zz.csv") }),
    { cwd: dir.path },
  );
  assert.equal(error, undefined, lines.join("\n"));
  assert.equal(await Deno.readTextFile(join(dir.path, "landing/%zz.csv")), "a,b\n");
});

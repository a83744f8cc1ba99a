/**
 * Routines on S3 end to end, each step in its real Worker, against a real S3 server (Ceph radosgw on loopback)
 * and a loopback HTTP server: the notebook's routine with landing, staging and archive on s3://, local→S3,
 * S3→local and S3→S3 staging, the py_exec transform on S3 folders, downloads straight into S3, the scope
 * `lakerun plan` shows and the Worker enforces, and clear errors. Every result is checked on the bytes.
 *
 * Run: deno test -A tests/s3_routines_test.ts (set LAKERUN_TEST_S3_ENV to reuse a running server)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { S3_ENV_VARS } from "../lib/aws/s3/scope.ts";
import { openS3Location, PART_SIZE_METADATA } from "../lib/aws/s3/storage.ts";
import { startFaultServer } from "./support/fault_server.ts";
import { lakerun, ROOT, runRoutineJson, tempDir } from "./support/lakerun.ts";
import { s3Test, stopS3ServerAfterTests } from "./support/s3_server.ts";
import { s3Location, s3TestServer, treeOf } from "./support/trees.ts";
import { buildZip, csvText, randomBytes, sha256, streamOf, surveyArchive } from "./support/zip_fixtures.ts";

// fails the whole file, loudly, when no server can start: there is no skipping
const server = await s3TestServer();
const s3 = { endpoint: server.endpoint, region: server.region };
const encoder = new TextEncoder();

async function putObjects(url: string, files: Record<string, Uint8Array | string>) {
  const storage = openS3Location(url, s3);
  for (const [path, body] of Object.entries(files)) {
    await storage.write(path, streamOf(typeof body === "string" ? encoder.encode(body) : body));
  }
}

const { archive, sales, files: entries } = surveyArchive();

/**
 * routines/retail_trade_survey_s3.json pointed at the test servers: only the URL, the lake's location
 * (`s3://my-data-lake` becomes `lake`) and the endpoint change.
 */
async function exampleRoutine(url: string, lake: string) {
  const text = await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_s3.json"));
  const routine = JSON.parse(text.replaceAll("s3://my-data-lake/", `${lake}/`));
  routine.executors.DownloaderExecutor.params.requests_arguments.url = url;
  routine.s3 = s3;
  return routine;
}

s3Test(
  "the S3 example differs from the notebook's routine only in its folder strings and s3 block",
  async () => {
    const notebook = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey.json")));
    const example = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_s3.json")));
    const folders = (r: { executors: Record<string, { params: Record<string, unknown> }> }) => {
      const p = structuredClone(r.executors);
      delete p.DownloaderExecutor.params.landing_directory;
      delete p.StagingExecutor.params.parent_directory;
      delete p.StagingExecutor.params.dump_directory;
      return p;
    };
    assert.deepEqual(folders(example), folders(notebook));
    assert.deepEqual(Object.keys(example), ["routine_name", "s3", "executors"]);
    const result = await lakerun(["validate", "routines/retail_trade_survey_s3.json"]);
    assert.equal(result.code, 0, result.stderr);
  },
);

s3Test(
  "the notebook's routine with landing, staging and archive on s3:// lands, stages and archives the bytes",
  async () => {
    await using lake = await s3Location("notebook");
    await using http = await startFaultServer({ "/survey.zip": { body: archive } });
    await using dir = await tempDir();
    const routine = await exampleRoutine(http.url("/survey.zip"), lake.url);
    const { error, lines } = await runRoutineJson(routine, { cwd: dir.path });
    assert.equal(error, undefined, lines.join("\n"));
    const base = `${lake.url}/retail_trade_survey`;
    assert.deepEqual(await treeOf(`${base}/staging`, { s3 }), entries);
    assert.deepEqual(await treeOf(`${base}/archive`, { s3 }), entries);
    assert.deepEqual(await treeOf(`${base}/landing`, { s3 }), {});
    assert.deepEqual(await lake.unfinishedUploads(), []);
    assert.ok(lines.some((l) => /✓ transfer {2}3 files/.test(l)), lines.join("\n"));

    // the next quarter: same names, other bytes; the archived files are never overwritten
    const next = buildZip([{ name: "sales.csv", data: csvText(1000, 9) }]);
    await using http2 = await startFaultServer({ "/survey.zip": { body: next } });
    const again = await runRoutineJson(await exampleRoutine(http2.url("/survey.zip"), lake.url), {
      cwd: dir.path,
    });
    assert.equal(again.error, undefined, again.lines.join("\n"));
    const archived = await treeOf(`${base}/archive`, { s3 });
    assert.equal(archived["sales.csv"], sha256(sales));
    const stamped = Object.keys(archived).filter((k) => /^sales\.\d{8}T\d{6}Z\.csv$/.test(k));
    assert.equal(stamped.length, 1, JSON.stringify(archived));
    assert.equal(archived[stamped[0]], sha256(csvText(1000, 9)));
    assert.equal((await treeOf(`${base}/staging`, { s3 }))["sales.csv"], sha256(csvText(1000, 9)));
  },
);

s3Test("local → S3 staging, then S3 → local staging, each archived after verification", async () => {
  await using lake = await s3Location("local-s3");
  await using dir = await tempDir();
  const files = {
    "a.csv": "a\n",
    "empty.csv": "",
    "ünïcødé dir/b+c d.csv": "b\n",
    "nested/deeper/big.bin": randomBytes(9 * 1024 * 1024, 4),
  };
  for (const [path, body] of Object.entries(files)) {
    await Deno.mkdir(join(dir.path, "landing", path, ".."), { recursive: true });
    await Deno.writeFile(
      join(dir.path, "landing", path),
      typeof body === "string" ? encoder.encode(body) : body,
    );
  }
  const expected = Object.fromEntries(
    Object.entries(files).map(([k, v]) => [k, sha256(typeof v === "string" ? encoder.encode(v) : v)]),
  );
  const up = await runRoutineJson({
    routine_name: "up",
    s3,
    executors: {
      StagingExecutor: {
        params: { parent_directory: "landing", dump_directory: `${lake.url}/staging` },
        tasks: ["transfer", "post_staging"],
      },
    },
  }, { cwd: dir.path });
  assert.equal(up.error, undefined, up.lines.join("\n"));
  assert.deepEqual(await treeOf(`${lake.url}/staging`, { s3 }), expected);
  assert.deepEqual(await treeOf(join(dir.path, "archive"), { temporaries: true }), expected);
  assert.deepEqual(await treeOf(join(dir.path, "landing"), { temporaries: true }), {});

  const down = await runRoutineJson({
    routine_name: "down",
    s3,
    executors: {
      StagingExecutor: {
        params: {
          parent_directory: `${lake.url}/staging`,
          dump_directory: "curated",
          archive_directory: `${lake.url}/archive/2024`,
        },
        tasks: ["transfer", "post_staging"],
      },
    },
  }, { cwd: dir.path });
  assert.equal(down.error, undefined, down.lines.join("\n"));
  assert.deepEqual(await treeOf(join(dir.path, "curated"), { temporaries: true }), expected);
  assert.deepEqual(await treeOf(`${lake.url}/archive/2024`, { s3 }), expected);
  assert.deepEqual(await treeOf(`${lake.url}/staging`, { s3 }), {});
  assert.deepEqual(await lake.unfinishedUploads(), []);
});

s3Test("S3 → S3 staging copies server-side (ETag and metadata kept) and post_staging deletes", async () => {
  await using lake = await s3Location("s3-s3");
  // land through a batch, as the downloader does: objects with lakerun's part-size metadata
  const landing = openS3Location(`${lake.url}/landing`, s3);
  const batch = await landing.batch();
  const body = randomBytes(2_000_000, 8);
  await batch.write("x/data.bin", streamOf(body));
  await batch.write("y z.csv", new Blob(["y\n"]).stream());
  await batch.commit();
  const before = await lake.client.send(
    new HeadObjectCommand({ Bucket: lake.bucket, Key: lake.key("landing/x/data.bin") }),
  );

  await using dir = await tempDir();
  const { error, lines } = await runRoutineJson({
    routine_name: "s3s3",
    s3,
    executors: {
      StagingExecutor: {
        params: {
          parent_directory: `${lake.url}/landing`,
          dump_directory: `${lake.url}/staging`,
          archive_or_delete: "delete",
        },
        tasks: ["transfer", "post_staging"],
      },
    },
  }, { cwd: dir.path });
  assert.equal(error, undefined, lines.join("\n"));
  assert.deepEqual(await treeOf(`${lake.url}/staging`, { s3 }), {
    "x/data.bin": sha256(body),
    "y z.csv": sha256(encoder.encode("y\n")),
  });
  assert.deepEqual(await treeOf(`${lake.url}/landing`, { s3 }), {});
  const after = await lake.client.send(
    new HeadObjectCommand({ Bucket: lake.bucket, Key: lake.key("staging/x/data.bin") }),
  );
  assert.equal(after.ETag, before.ETag, "a server-side copy keeps the ETag");
  // a streamed copy of a 2 MB file would be a PutObject without lakerun's metadata
  assert.equal(after.Metadata?.[PART_SIZE_METADATA], before.Metadata?.[PART_SIZE_METADATA]);
});

s3Test(
  "the py_exec transform works on S3 folders through local working folders, which are removed",
  async () => {
    await using lake = await s3Location("transform");
    const csv = "Series_reference,Period,Data_value\nRTT.1,2019.12,1\nRTT.1,2020.03,2\nRTT.1,2024.06,3\n";
    await putObjects(`${lake.url}/landing`, { "retail/q.csv": csv, "notes.txt": "not a csv" });
    await using dir = await tempDir();
    const routine = {
      routine_name: "transform",
      s3,
      executors: {
        StagingExecutor: {
          params: {
            parent_directory: `${lake.url}/landing`,
            dump_directory: `${lake.url}/staging`,
            py_exec_path: join(ROOT, "routines/transforms/retail"),
            py_exec_args: { min_period: "2020.03" },
          },
          tasks: ["transfer", "post_staging"],
        },
      },
    };
    const { error, lines } = await runRoutineJson(routine, { cwd: dir.path });
    assert.equal(error, undefined, lines.join("\n"));
    assert.ok(lines.some((l) => l.includes("py_exec: retail/q.csv: kept 2 rows")), lines.join("\n"));
    const filtered = "Series_reference,Period,Data_value\r\nRTT.1,2020.03,2\r\nRTT.1,2024.06,3\r\n";
    assert.deepEqual(await treeOf(`${lake.url}/staging`, { s3 }), {
      "retail/q.filtered.csv": sha256(encoder.encode(filtered)),
    });
    assert.deepEqual(await treeOf(`${lake.url}/archive`, { s3 }), {
      "notes.txt": sha256(encoder.encode("not a csv")),
      "retail/q.csv": sha256(encoder.encode(csv)),
    });
    assert.deepEqual(await treeOf(`${lake.url}/landing`, { s3 }), {});
    // the working folders lived in the step's state folder and are gone
    const state = await treeOf(join(dir.path, ".lakerun"), { temporaries: true });
    assert.ok(
      Object.keys(state).every((p) => !p.includes(".lakerun-tmp-")),
      JSON.stringify(Object.keys(state)),
    );

    // a failing transform uploads nothing and archives nothing
    await putObjects(`${lake.url}/landing`, { "bad.csv": "Period\n" }); // no Data_value: fine; no Period → KeyError
    await putObjects(`${lake.url}/landing`, { "worse.csv": "Other\nx\n" });
    const failed = await runRoutineJson(routine, { cwd: dir.path });
    assert.match(failed.error?.message ?? "", /py_exec failed \(exit 1\).*KeyError: 'Period'/);
    assert.deepEqual(Object.keys(await treeOf(`${lake.url}/staging`, { s3 })), ["retail/q.filtered.csv"]);
    assert.deepEqual(Object.keys(await treeOf(`${lake.url}/landing`, { s3 })), ["bad.csv", "worse.csv"]);
    assert.deepEqual(await lake.unfinishedUploads(), []);
  },
);

s3Test("a download lands straight in S3 (multipart), and a failed one leaves nothing", async () => {
  await using lake = await s3Location("download");
  const body = randomBytes(12 * 1024 * 1024 + 5, 6);
  await using http = await startFaultServer({
    "/files/big%20file.bin": { body, cutAfterBytes: 3 * 1024 * 1024 },
    "/bad.bin": { body: "short" },
  });
  await using dir = await tempDir();
  const download = (url: string, landing: string, extra: Record<string, unknown> = {}) =>
    runRoutineJson({
      routine_name: "download",
      s3,
      executors: {
        DownloaderExecutor: {
          params: { requests_arguments: { url }, landing_directory: landing, retry_delay: 0.01, ...extra },
          tasks: ["download"],
        },
      },
    }, { cwd: dir.path });
  // a folder (trailing slash) receives the URL's file name; the first attempt is cut and retried
  const ok = await download(http.url("/files/big%20file.bin"), `${lake.url}/landing/`);
  assert.equal(ok.error, undefined, ok.lines.join("\n"));
  assert.deepEqual(await treeOf(`${lake.url}/landing`, { s3 }), { "big file.bin": sha256(body) });
  const head = await lake.client.send(
    new HeadObjectCommand({ Bucket: lake.bucket, Key: lake.key("landing/big file.bin") }),
  );
  assert.match(head.ETag ?? "", /-2"$/, "uploaded in 8 MiB parts");
  // a key that does not exist yet is the file to write
  const named = await download(http.url("/files/big%20file.bin"), `${lake.url}/named/copy.bin`);
  assert.equal(named.error, undefined, named.lines.join("\n"));
  assert.deepEqual(await treeOf(`${lake.url}/named`, { s3 }), { "copy.bin": sha256(body) });

  const bad = await download(http.url("/bad.bin"), `${lake.url}/failed/`, { sha256: "0".repeat(64) });
  assert.match(bad.error?.message ?? "", /sha256 mismatch .*nothing was landed/);
  assert.deepEqual(await treeOf(`${lake.url}/failed`, { s3 }), {});
  const badZip = await download(http.url("/bad.bin"), `${lake.url}/failed`, {
    unzip: "unzip",
    retries: 0,
  });
  assert.ok(badZip.error, "a body that is not a zip fails");
  assert.deepEqual(await treeOf(`${lake.url}/failed`, { s3 }), {});
  assert.deepEqual(await lake.unfinishedUploads(), []);
});

s3Test(
  "lakerun plan shows an S3 step's exact scope: the endpoint, the AWS variables, the shared files",
  async () => {
    await using dir = await tempDir();
    await using http = await startFaultServer({});
    const routine = await exampleRoutine(http.url("/survey.zip"), "s3://plan-bucket");
    await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routine));
    const env = {
      AWS_CONFIG_FILE: join(dir.path, "aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(dir.path, "creds"),
    };
    const result = await lakerun(["plan", "--json", "r.json"], { cwd: dir.path, env });
    assert.equal(result.code, 0, result.stderr);
    const [download, staging] = JSON.parse(result.stdout).steps;
    const endpoint = `127.0.0.1:${new URL(server.endpoint).port}`;
    assert.deepEqual(download.permissions.net, [`127.0.0.1:${http.port}`, endpoint].sort());
    assert.deepEqual(staging.permissions.net, [endpoint]);
    for (const step of [download, staging]) {
      assert.deepEqual(step.permissions.env, [...S3_ENV_VARS].sort());
      assert.deepEqual(step.permissions.run, []);
      // S3 folders need no local write access: only the step's own state folder
      assert.equal(step.permissions.write.length, 1);
      assert.ok(step.permissions.write[0].includes("/.lakerun/"));
      const read = step.permissions.read.filter((p: string) => !p.includes("/.lakerun/"));
      const bundle = Deno.env.get("AWS_CA_BUNDLE");
      assert.deepEqual(
        read,
        [env.AWS_CONFIG_FILE, env.AWS_SHARED_CREDENTIALS_FILE, ...(bundle ? [bundle] : [])].sort(),
      );
    }
  },
);

/** A plugin whose tasks use an S3 location inside the scope lakerun computes for it, or try to leave it. */
async function writeProbePlugin(folder: string) {
  const lib = (path: string) => JSON.stringify(pathToFileURL(join(ROOT, path)).href);
  await Deno.writeTextFile(
    join(folder, "S3ProbeExecutor.ts"),
    `import { defineExecutor } from ${lib("sdk/executor.ts")};
import { locationScope, openLocation } from ${lib("lib/storage/locations.ts")};

export default defineExecutor({
  name: "S3ProbeExecutor",
  description: "Test plugin: S3 inside its scope, and attempts outside it.",
  params: (z) => z.strictObject({ location: z.string(), target: z.string().default("") }),
  permissions: (params, context) => locationScope(params.location, "write", context),
  tasks: {
    roundtrip: {
      description: "Writes, reads back and removes an object.",
      run: async (context) => {
        const storage = await openLocation(context.params.location, context);
        await storage.write("probe.txt", new Blob(["probe ✓"]).stream());
        context.log("read back: " + await new Response(await storage.read("probe.txt")).text());
        await storage.remove("probe.txt");
      },
    },
    fetch_target: {
      description: "GETs target.",
      run: async ({ params }) => { await (await fetch(params.target)).body?.cancel(); },
    },
    read_env: {
      description: "Reads the variable named by target.",
      run: ({ params, log }) => { log(String(Deno.env.get(params.target))); return Promise.resolve(); },
    },
    read_file: {
      description: "Reads the file at target.",
      run: async ({ params }) => { await Deno.readTextFile(params.target); },
    },
    credentials: {
      description: "Resolves credentials through the default chain.",
      run: async (context) => {
        const { s3Client } = await import(${lib("lib/aws/s3/client.ts")});
        const credentials = await s3Client(context.s3).config.credentials();
        context.log("credentials for " + credentials.accessKeyId);
      },
    },
  },
});
`,
  );
}

s3Test("an S3 step's Worker reaches its endpoint and nothing else", async () => {
  await using lake = await s3Location("scope");
  await using dir = await tempDir();
  await writeProbePlugin(dir.path);
  await using other = await startFaultServer({ "/": { body: "elsewhere" } });
  const probe = (task: string, target = "") =>
    runRoutineJson({
      routine_name: "scope",
      s3,
      executors: {
        probe: {
          executor: "S3ProbeExecutor",
          params: { location: `${lake.url}/p`, target },
          tasks: [task],
        },
      },
    }, { cwd: dir.path, executorDirs: [dir.path] });

  const ok = await probe("roundtrip");
  assert.equal(ok.error, undefined, ok.lines.join("\n"));
  assert.ok(ok.lines.some((l) => l.includes("read back: probe ✓")), ok.lines.join("\n"));
  assert.deepEqual(await treeOf(`${lake.url}/p`, { s3 }), {});

  const net = await probe("fetch_target", other.url("/"));
  assert.match(
    net.error?.message ?? "",
    new RegExp(`permission denied: net access to 127\\.0\\.0\\.1:${other.port}`),
  );
  const env = await probe("read_env", "PATH");
  assert.match(env.error?.message ?? "", /permission denied: env access to PATH/);
  const file = await probe("read_file", join(ROOT, "deno.json"));
  assert.match(file.error?.message ?? "", /permission denied: read access to .*deno\.json/);
  assert.equal(other.hits("/"), 0);
});

s3Test(
  "web identity inside the Worker: GitHub's OIDC token, then STS, within the granted hosts",
  async () => {
    // GitHub's token service and STS are played by loopback servers (there is no AWS here); the chain, the
    // nested STS client and the scope are lakerun's and the SDK's own
    const seen: { token?: string; audience?: string; sts?: string } = {};
    await using github = await startFaultServer({
      "/token": {
        handler: (request) => {
          seen.token = request.headers.get("authorization") ?? "";
          seen.audience = new URL(request.url).searchParams.get("audience") ?? "";
          return Response.json({ value: "github-oidc-jwt" });
        },
      },
    });
    // the fault server does not hand request bodies to handlers: STS's form body needs Deno.serve
    const stsServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
      seen.sts = await request.text();
      return new Response(
        `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAFROMSTS</AccessKeyId>
<SecretAccessKey>sts-secret</SecretAccessKey><SessionToken>sts-session</SessionToken>
<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/lake/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`,
        { headers: { "content-type": "text/xml" } },
      );
    });
    await using _sts = { [Symbol.asyncDispose]: () => stsServer.shutdown() };
    const sts = { origin: `http://127.0.0.1:${stsServer.addr.port}` };
    await using dir = await tempDir();
    await writeProbePlugin(dir.path);
    const env: Record<string, string | undefined> = {
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_PROFILE: undefined,
      AWS_ENDPOINT_URL: undefined,
      AWS_ENDPOINT_URL_S3: undefined,
      AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
      AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/lake",
      AWS_ENDPOINT_URL_STS: sts.origin,
      AWS_EC2_METADATA_DISABLED: "true",
      ACTIONS_ID_TOKEN_REQUEST_URL: `${github.origin}/token?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "actions-request-token",
    };
    // a lakerun process of its own: the test process's environment (shared by every test file running in
    // parallel) is never changed; an empty value is an unset one for the SDK and for lakerun
    await Deno.writeTextFile(
      join(dir.path, "oidc.json"),
      JSON.stringify({
        routine_name: "oidc",
        s3: { region: "eu-west-1" },
        executors: {
          probe: {
            executor: "S3ProbeExecutor",
            params: { location: "s3://lake/raw" },
            tasks: ["credentials"],
          },
        },
      }),
    );
    const childEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v ?? ""]));
    const result = await lakerun(["run", "--executors", dir.path, "oidc.json"], {
      cwd: dir.path,
      env: childEnv,
    });
    const lines = `${result.stdout}\n${result.stderr}`.split("\n");
    assert.equal(result.code, 0, lines.join("\n"));
    assert.ok(lines.some((l) => l.includes("credentials for ASIAFROMSTS")), lines.join("\n"));
    assert.equal(seen.token, "bearer actions-request-token");
    assert.equal(seen.audience, "sts.amazonaws.com");
    const form = new URLSearchParams(seen.sts);
    assert.equal(form.get("Action"), "AssumeRoleWithWebIdentity");
    assert.equal(form.get("WebIdentityToken"), "github-oidc-jwt");
    assert.equal(form.get("RoleArn"), env.AWS_ROLE_ARN);
  },
);

s3Test("a missing bucket fails the step with one line naming it", async () => {
  await using dir = await tempDir();
  const { error } = await runRoutineJson({
    routine_name: "missing",
    s3,
    executors: {
      StagingExecutor: {
        params: { parent_directory: "s3://lakerun-missing-bucket/landing", dump_directory: "staging" },
        tasks: ["transfer"],
      },
    },
  }, { cwd: dir.path });
  assert.match(
    error?.message ?? "",
    /task 'transfer' failed: bucket 'lakerun-missing-bucket' does not exist at http:\/\/127\.0\.0\.1:\d+: create it or correct the s3:\/\/ location$/,
  );
});

s3Test(
  "a transform on S3: a landing object rewritten with other bytes of the same size is never taken for transformed",
  async () => {
    await using lake = await s3Location("rewritten");
    await using dir = await tempDir();
    await Deno.writeTextFile(
      join(dir.path, "upper.ts"),
      `export default async (parent: string, dump: string) => {
      for await (const entry of Deno.readDir(parent)) {
        const text = await Deno.readTextFile(parent + "/" + entry.name);
        await Deno.writeTextFile(dump + "/" + entry.name, text.toUpperCase());
      }
    };`,
    );
    const routine = (archive_or_delete: string, tasks: string[]) => ({
      routine_name: "rewritten",
      s3,
      executors: {
        StagingExecutor: {
          params: {
            parent_directory: `${lake.url}/tl`,
            dump_directory: `${lake.url}/ts`,
            archive_directory: `${lake.url}/ta`,
            transform_module: "upper.ts",
            archive_or_delete,
          },
          tasks,
        },
      },
    });
    const run = async (archive_or_delete: string, tasks: string[]) => {
      const result = await runRoutineJson(routine(archive_or_delete, tasks), { cwd: dir.path });
      return { ...result, log: result.lines.join("\n") };
    };
    const digest = (text: string) => sha256(encoder.encode(text));

    // the QA repro: day 1 transformed, day 2 the same size with other bytes
    await putObjects(`${lake.url}/tl`, { "data.csv": "day1-data\n" });
    const day1 = await run("delete", ["transfer"]);
    assert.equal(day1.error, undefined, day1.log);
    await putObjects(`${lake.url}/tl`, { "data.csv": "day2-DATA\n" });
    const day2 = await run("delete", ["transfer", "post_staging"]);
    assert.equal(day2.error, undefined, day2.log);
    assert.ok(!day2.log.includes("already transformed"), day2.log);
    assert.deepEqual(await treeOf(`${lake.url}/ts`, { s3 }), { "data.csv": digest("DAY2-DATA\n") });
    assert.deepEqual(await treeOf(`${lake.url}/tl`, { s3 }), {});

    // post_staging failed (or was killed) on day 1; day 2 lands the same names and sizes
    await putObjects(`${lake.url}/tl`, { "a.csv": "day1-a\n", "data.csv": "day3-data\n" });
    const day3 = await run("archive", ["transfer"]);
    assert.equal(day3.error, undefined, day3.log);
    // an unchanged object is known by its ETag: not transformed twice
    const again = await run("archive", ["transfer"]);
    assert.ok(again.log.includes("already transformed"), again.log);
    await putObjects(`${lake.url}/tl`, { "data.csv": "day4-DATA\n" });
    const refused = await run("archive", ["post_staging"]);
    assert.match(
      refused.error?.message ?? "",
      /data\.csv changed since the transform read it; run 'transfer' again/,
    );
    assert.equal((await treeOf(`${lake.url}/tl`, { s3 }))["data.csv"], digest("day4-DATA\n"));
    assert.ok(!("data.csv" in await treeOf(`${lake.url}/ta`, { s3 })), "never archived unread");
    const day4 = await run("archive", ["transfer", "post_staging"]);
    assert.equal(day4.error, undefined, day4.log);
    assert.deepEqual(await treeOf(`${lake.url}/ts`, { s3 }), {
      "a.csv": digest("DAY1-A\n"),
      "data.csv": digest("DAY4-DATA\n"),
    });
    assert.deepEqual(await treeOf(`${lake.url}/ta`, { s3 }), {
      "a.csv": digest("day1-a\n"),
      "data.csv": digest("day4-DATA\n"),
    });
    assert.deepEqual(await treeOf(`${lake.url}/tl`, { s3 }), {});
  },
);

stopS3ServerAfterTests(server);

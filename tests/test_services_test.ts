/**
 * Proves the test services work: a private PostgreSQL 15 cluster (tests/support/postgres.ts) takes its
 * password over TCP and refuses a wrong one, is reused through `LAKERUN_TEST_PG_ENV`, and is gone (process
 * and folder) after `stop()` or when the test process dies; a moto server (tests/support/moto.ts) answers raw
 * awsJson1_1 calls, holds a Glue job run in STARTING/RUNNING under a manual transition, serves seeded Athena
 * results, and is gone after `stop()` or when the test process dies.
 *
 * Run: deno test -A tests/test_services_test.ts
 */
import assert from "node:assert/strict";
import { runPsql, SHARED_PG_ENV_VARIABLE, startPostgres } from "./support/postgres.ts";
import { motoAuthorization, type MotoServer, startMoto } from "./support/moto.ts";

const SUPPORT = new URL("./support/", import.meta.url);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Is `pid` gone (no such process, or a zombie waiting for its parent to reap it)? */
function processGone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return true;
  }
}

function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function portRefuses(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch {
    return true;
  }
}

/** Polls `check` every 100 ms until it is true or `ms` ran out; returns its last value. */
async function eventually(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Runs `fn` with `name` removed from this process's environment (tests of one file run one at a time). */
async function withoutEnv<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const saved = Deno.env.get(name);
  Deno.env.delete(name);
  try {
    return await fn();
  } finally {
    if (saved !== undefined) Deno.env.set(name, saved);
  }
}

/**
 * Runs `code` (a module body) in a child `deno eval`, waits for its first stdout line (JSON), then kills the
 * child with SIGKILL (no `stop()`, no unload handlers) and returns that line parsed.
 */
async function runAndKill(code: string, env: Record<string, string> = {}): Promise<any> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // it exited already
    }
    await reader.cancel();
    await child.status;
  }
  const line = text.split("\n")[0];
  if (!line) throw new Error(`the child printed nothing; its stderr:\n${await stderr}`);
  await stderr;
  return JSON.parse(line);
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

Deno.test("postgres: the password works over TCP, a wrong or missing one is refused", async () => {
  const pg = await startPostgres();
  try {
    assert.equal(pg.host, "127.0.0.1");
    assert.equal(pg.user, "postgres");
    assert.equal(pg.database, "lakerun");
    assert.equal(pg.url, `postgres://postgres@127.0.0.1:${pg.port}/lakerun`);
    assert.ok(!pg.url.includes(pg.password), "the url carries no password");
    assert.deepEqual(Object.keys(pg.env).sort(), ["PGDATABASE", "PGHOST", "PGPASSWORD", "PGPORT", "PGUSER"]);
    assert.equal(pg.env.PGPORT, String(pg.port));

    // A TCP connection (PGHOST is an address, not a socket folder), authenticated by scram-sha-256.
    const who = await pg.psql(
      "SELECT current_user, current_database(), inet_server_addr(), " +
        "current_setting('server_version_num')::int / 10000, " +
        "(SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user)",
    );
    assert.equal(who, "postgres|lakerun|127.0.0.1|15|t\n");
    const method = await pg.psql(
      "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' ORDER BY line_number LIMIT 1",
    );
    assert.equal(method.trim(), "scram-sha-256");

    // Several statements in one call; only rows come back.
    const table = `t_${crypto.randomUUID().slice(0, 8)}`;
    assert.equal(await pg.psql(`CREATE TABLE ${table} (a int); INSERT INTO ${table} VALUES (1), (2);`), "");
    assert.equal(await pg.psql(`SELECT sum(a) FROM ${table}; SELECT 'x', 'y';`), "3\nx|y\n");
    await assert.rejects(
      () => pg.psql("SELECT * FROM no_such_table"),
      /relation "no_such_table" does not exist/,
    );
    await pg.psql(`DROP TABLE ${table}`);

    await assert.rejects(
      () => runPsql({ ...pg.env, PGPASSWORD: `${pg.password}x` }, "SELECT 1"),
      /password authentication failed for user "postgres"/,
    );
    const { PGPASSWORD: _, ...noPassword } = pg.env;
    await assert.rejects(() => runPsql(noPassword, "SELECT 1"), /no password supplied/);
  } finally {
    await pg.stop();
  }
});

Deno.test("postgres: a shared server is reused; stop() of a private one removes its folder and process", async () => {
  await withoutEnv(SHARED_PG_ENV_VARIABLE, async () => {
    const pg = await startPostgres();
    try {
      assert.ok(pg.dir && pg.pid, "a private server has a folder and a pid");
      assert.ok(pathExists(`${pg.dir}/data/PG_VERSION`));
      assert.ok(!processGone(pg.pid), `postmaster ${pg.pid} runs`);

      // The same server through LAKERUN_TEST_PG_ENV: its stop() leaves the server alone.
      Deno.env.set(SHARED_PG_ENV_VARIABLE, `${pg.dir}/env`);
      const shared = await startPostgres();
      Deno.env.delete(SHARED_PG_ENV_VARIABLE);
      assert.equal(shared.port, pg.port);
      assert.equal(shared.password, pg.password);
      assert.equal(shared.dir, undefined);
      assert.equal(await shared.psql("SELECT 1"), "1\n");
      await shared.stop();
      assert.equal(await pg.psql("SELECT 2"), "2\n");
    } finally {
      await pg.stop();
    }
    await pg.stop(); // twice is fine
    assert.ok(!pathExists(pg.dir!), `${pg.dir} is removed`);
    assert.ok(processGone(pg.pid!), `postmaster ${pg.pid} is gone`);
    assert.ok(await portRefuses(pg.port), `port ${pg.port} is closed`);
  });
});

Deno.test("postgres: the server dies with the test process that started it (watchdog)", async () => {
  const started = await runAndKill(
    `import { startPostgres } from ${JSON.stringify(new URL("postgres.ts", SUPPORT).href)};
     const pg = await startPostgres();
     console.log(JSON.stringify({ pid: pg.pid, dir: pg.dir, port: pg.port }));
     setInterval(() => {}, 1000);`,
    { [SHARED_PG_ENV_VARIABLE]: "" },
  );
  assert.ok(started.pid > 0 && started.dir, JSON.stringify(started));
  assert.ok(
    await eventually(() => processGone(started.pid) && !pathExists(started.dir), 15_000),
    `postmaster ${started.pid} and ${started.dir} outlived the process that started them`,
  );
  assert.ok(await portRefuses(started.port));
});

// ---------------------------------------------------------------------------------------------------
// moto

/** A raw awsJson1_1 call: `POST /` with `X-Amz-Target` and a (never checked) SigV4-looking Authorization. */
async function awsJson(
  moto: MotoServer,
  service: string,
  target: string,
  body: unknown,
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${moto.endpoint}/`, {
    method: "POST",
    headers: {
      "X-Amz-Target": target,
      "Content-Type": "application/x-amz-json-1.1",
      "Authorization": motoAuthorization(service),
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    throw new Error(`${target} answered ${res.status} with a non-JSON body: ${text.slice(0, 200)}`);
  }
}

Deno.test("moto: raw Glue calls; a manual transition holds a job run in STARTING/RUNNING", async () => {
  const moto = await startMoto();
  try {
    assert.match(moto.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(moto.env, {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: moto.env.AWS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: moto.env.AWS_SECRET_ACCESS_KEY,
      AWS_REGION: "us-east-1",
    });
    const glue = (op: string, body: unknown) => awsJson(moto, "glue", `AWSGlue.${op}`, body);
    const job = {
      Role: "arn:aws:iam::123456789012:role/glue",
      Command: { Name: "glueetl", ScriptLocation: "s3://b/j.py" },
    };

    assert.deepEqual(await glue("CreateJob", { Name: "held", ...job }), {
      status: 200,
      json: { Name: "held" },
    });
    await moto.setTransition("glue::job_run", { progression: "manual", times: 3 });
    assert.deepEqual(await moto.getTransition("glue::job_run"), { progression: "manual", times: 3 });

    const started = await glue("StartJobRun", { JobName: "held" });
    assert.equal(started.status, 200);
    const runId: string = started.json.JobRunId;
    assert.match(runId, /^jr_/);
    const states: string[] = [];
    for (let i = 0; i < 5; i++) {
      const got = await glue("GetJobRun", { JobName: "held", RunId: runId });
      assert.equal(got.status, 200);
      states.push(got.json.JobRun.JobRunState);
    }
    assert.ok(states.every((s) => s === "STARTING" || s === "RUNNING"), `held: ${states}`);
    assert.equal(states[0], "STARTING", `${states}`);
    assert.equal(states[4], "RUNNING", `${states}`);
    // Still running, so a second run of the job (MaxConcurrentRuns 1) is refused.
    const second = await glue("StartJobRun", { JobName: "held" });
    assert.equal(second.status, 400);
    assert.equal(second.json.__type, "ConcurrentRunsExceededException");
    // Reads go on moving it, to SUCCEEDED.
    let state = "";
    for (let i = 0; i < 10 && state !== "SUCCEEDED"; i++) {
      state = (await glue("GetJobRun", { JobName: "held", RunId: runId })).json.JobRun.JobRunState;
    }
    assert.equal(state, "SUCCEEDED");

    // reset() wipes the backends but leaves the override; unsetAllTransitions() removes it.
    await moto.reset();
    assert.equal((await glue("GetJob", { JobName: "held" })).json.__type, "EntityNotFoundException");
    assert.deepEqual(await moto.getTransition("glue::job_run"), { progression: "manual", times: 3 });
    await moto.unsetAllTransitions();
    assert.deepEqual(await moto.getTransition("glue::job_run"), { progression: "immediate" });
    await glue("CreateJob", { Name: "quick", ...job });
    const quick = (await glue("StartJobRun", { JobName: "quick" })).json.JobRunId;
    const read = await glue("GetJobRun", { JobName: "quick", RunId: quick });
    assert.equal(read.json.JobRun.JobRunState, "SUCCEEDED", "the default transition is immediate");
  } finally {
    await moto.stop();
  }
});

Deno.test("moto: seeded Athena results come back from GetQueryResults", async () => {
  const moto = await startMoto();
  try {
    const athena = (op: string, body: unknown) => awsJson(moto, "athena", `AmazonAthena.${op}`, body);
    await moto.seedAthenaResults([{
      rows: [{ Data: [{ VarCharValue: "n" }] }, { Data: [{ VarCharValue: "42" }] }],
      column_info: [{ Name: "n", Type: "integer" }],
    }]);
    const started = await athena("StartQueryExecution", {
      QueryString: "SELECT 42 AS n",
      WorkGroup: "primary",
    });
    assert.equal(started.status, 200, JSON.stringify(started.json));
    const id = started.json.QueryExecutionId;
    const exec = await athena("GetQueryExecution", { QueryExecutionId: id });
    assert.equal(exec.json.QueryExecution.Status.State, "SUCCEEDED");
    const results = await athena("GetQueryResults", { QueryExecutionId: id });
    assert.deepEqual(
      results.json.ResultSet.Rows.map((r: any) => r.Data.map((d: any) => d.VarCharValue)),
      [["n"], ["42"]],
    );
    assert.equal(results.json.ResultSet.ResultSetMetadata.ColumnInfo[0].Name, "n");
  } finally {
    await moto.stop();
  }
});

Deno.test("moto: stop() ends the server process and closes its port", async () => {
  const moto = await startMoto();
  const port = Number(new URL(moto.endpoint).port);
  assert.ok(!processGone(moto.pid), `moto ${moto.pid} runs`);
  await moto.stop();
  await moto.stop(); // twice is fine
  assert.ok(processGone(moto.pid), `moto ${moto.pid} is gone`);
  assert.ok(await portRefuses(port), `port ${port} is closed`);
});

Deno.test("moto: the server dies with the test process that started it (watchdog)", async () => {
  const started = await runAndKill(
    `import { startMoto } from ${JSON.stringify(new URL("moto.ts", SUPPORT).href)};
     const moto = await startMoto();
     console.log(JSON.stringify({ pid: moto.pid, endpoint: moto.endpoint }));
     setInterval(() => {}, 1000);`,
  );
  assert.ok(started.pid > 0, JSON.stringify(started));
  assert.ok(
    await eventually(() => processGone(started.pid), 15_000),
    `moto ${started.pid} outlived the process that started it`,
  );
  assert.ok(await portRefuses(Number(new URL(started.endpoint).port)));
});

Deno.test("moto: without Python's moto, startMoto fails with a one-line reason", async () => {
  // A child whose PATH has no python3: the importability check fails before anything starts.
  const empty = await Deno.makeTempDir({ prefix: "lakerun-nopath-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--quiet",
        `import { startMoto } from ${JSON.stringify(new URL("moto.ts", SUPPORT).href)};
         try { await startMoto(); console.log("started"); } catch (e) { console.log(e.message); }`,
      ],
      env: { PATH: empty },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const message = new TextDecoder().decode(out.stdout).trim();
    assert.match(
      message,
      /^moto \(Python\) is not installed: it is part of this machine image; PyPI is not reachable to install it/,
    );
    assert.equal(message.split("\n").length, 1, message);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

/**
 * Exercises the Athena/Glue FAKE (tests/support/aws_fake.ts) with plain `fetch` calls in the awsJson1_1
 * protocol, for the behaviours moto lacks: ClientRequestToken idempotency, result paging, FAILED queries and
 * job runs, throttling, BatchStopJobRun, GetJobRuns paging, crawler errors and time-based transitions.
 *
 * Run: deno test -A tests/aws_fake_test.ts
 */
import assert from "node:assert/strict";
import { type AwsFake, startAwsFake } from "./support/aws_fake.ts";

interface Answer {
  status: number;
  errorType: string | null;
  headers: Headers;
  json: any;
}

async function post(fake: AwsFake, target: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(fake.endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": target, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const json = await res.json();
  return { status: res.status, errorType: res.headers.get("x-amzn-errortype"), headers: res.headers, json };
}

const athena = (fake: AwsFake, op: string, body: unknown): Promise<Answer> =>
  post(fake, `AmazonAthena.${op}`, body);
const glue = (fake: AwsFake, op: string, body: unknown): Promise<Answer> => post(fake, `AWSGlue.${op}`, body);

/** A ClientRequestToken of the allowed length (32–128). */
const token = (name: string) => `lakerun-test-token-${name}`.padEnd(40, "0");

function assertError(answer: Answer, type: string, message?: RegExp | string): void {
  assert.equal(answer.status, 400, JSON.stringify(answer.json));
  assert.equal(answer.errorType, type);
  assert.equal(answer.json.__type, type);
  const text = answer.json.Message ?? answer.json.message;
  if (typeof message === "string") assert.equal(text, message);
  else if (message) assert.match(text, message);
}

async function startQuery(
  fake: AwsFake,
  query: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const answer = await athena(fake, "StartQueryExecution", { QueryString: query, ...extra });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json.QueryExecutionId;
}

async function queryState(fake: AwsFake, id: string): Promise<any> {
  const answer = await athena(fake, "GetQueryExecution", { QueryExecutionId: id });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json.QueryExecution;
}

async function startRun(fake: AwsFake, job: string, extra: Record<string, unknown> = {}): Promise<string> {
  const answer = await glue(fake, "StartJobRun", { JobName: job, ...extra });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json.JobRunId;
}

async function runState(fake: AwsFake, job: string, id: string): Promise<any> {
  const answer = await glue(fake, "GetJobRun", { JobName: job, RunId: id });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json.JobRun;
}

async function crawlerState(fake: AwsFake, name: string): Promise<any> {
  const answer = await glue(fake, "GetCrawler", { Name: name });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json.Crawler;
}

Deno.test("athena: a repeated ClientRequestToken returns the same QueryExecutionId", async () => {
  await using fake = await startAwsFake();
  const request = {
    QueryString: "SELECT * FROM events WHERE day = ?",
    ClientRequestToken: token("a"),
    WorkGroup: "etl",
    ExecutionParameters: ["'2026-11-30'"],
    QueryExecutionContext: { Database: "lake", Catalog: "AwsDataCatalog" },
    ResultConfiguration: { OutputLocation: "s3://results/athena/" },
  };
  const first = await athena(fake, "StartQueryExecution", request);
  const again = await athena(fake, "StartQueryExecution", request);
  assert.equal(first.status, 200);
  assert.match(first.json.QueryExecutionId, /^[0-9a-f-]{36}$/);
  assert.equal(again.json.QueryExecutionId, first.json.QueryExecutionId);
  assert.equal(fake.athena.queries.length, 1);

  const [query] = fake.athena.queries;
  assert.equal(query.starts, 2);
  assert.equal(query.clientRequestToken, token("a"));
  assert.equal(query.workGroup, "etl");
  assert.deepEqual(query.executionParameters, ["'2026-11-30'"]);
  assert.deepEqual(query.queryExecutionContext, { Database: "lake", Catalog: "AwsDataCatalog" });
  assert.deepEqual(query.resultConfiguration, { OutputLocation: "s3://results/athena/" });

  const other = await athena(fake, "StartQueryExecution", { ...request, ClientRequestToken: token("b") });
  assert.notEqual(other.json.QueryExecutionId, first.json.QueryExecutionId);
  assert.equal(fake.athena.queries.length, 2);

  const changed = await athena(fake, "StartQueryExecution", { ...request, QueryString: "SELECT 2" });
  assertError(changed, "InvalidRequestException", "Idempotent parameters do not match");
  const otherParams = await athena(fake, "StartQueryExecution", { ...request, ExecutionParameters: ["'x'"] });
  assertError(otherParams, "InvalidRequestException", "Idempotent parameters do not match");
  assertError(
    await athena(fake, "StartQueryExecution", { QueryString: "SELECT 1", ClientRequestToken: "short" }),
    "InvalidRequestException",
    /clientRequestToken.*length greater than or equal to 32/,
  );
  assert.equal(fake.athena.queries.length, 2);

  const described = await queryState(fake, first.json.QueryExecutionId);
  assert.equal(described.WorkGroup, "etl");
  assert.equal(described.StatementType, "DML");
  assert.deepEqual(described.QueryExecutionContext, { Database: "lake", Catalog: "AwsDataCatalog" });
  assert.equal(
    described.ResultConfiguration.OutputLocation,
    `s3://results/athena/${described.QueryExecutionId}.csv`,
  );
  assert.equal(described.ExecutionParameters, undefined, "AWS does not return the parameters");
});

Deno.test("athena: scripted states come one per GetQueryExecution, timestamps in epoch seconds", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("FROM t", {
    states: ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"],
    statistics: { DataScannedInBytes: 1234 },
  });
  const before = Date.now() / 1000;
  const id = await startQuery(fake, "SELECT a FROM t");
  const seen = [];
  for (let i = 0; i < 5; i++) seen.push(await queryState(fake, id));
  assert.deepEqual(seen.map((q) => q.Status.State), [
    "QUEUED",
    "RUNNING",
    "RUNNING",
    "SUCCEEDED",
    "SUCCEEDED",
  ]);

  const running = seen[1].Status;
  assert.equal(typeof running.SubmissionDateTime, "number");
  assert.ok(running.SubmissionDateTime >= before - 1 && running.SubmissionDateTime <= Date.now() / 1000 + 1);
  assert.equal(running.CompletionDateTime, undefined);
  const done = seen[3];
  assert.equal(typeof done.Status.CompletionDateTime, "number");
  assert.ok(done.Status.CompletionDateTime >= done.Status.SubmissionDateTime);
  assert.equal(done.Status.AthenaError, undefined);
  assert.equal(done.Statistics.DataScannedInBytes, 1234);
  assert.equal(typeof done.Statistics.TotalExecutionTimeInMillis, "number");
  assert.equal(typeof done.Statistics.EngineExecutionTimeInMillis, "number");
  assert.equal(fake.athena.query(id)?.completedAt, done.Status.CompletionDateTime * 1000);

  // Unscripted queries read QUEUED, RUNNING, SUCCEEDED; only GetQueryExecution advances them.
  const plain = await startQuery(fake, "SELECT 1");
  assertError(await athena(fake, "GetQueryResults", { QueryExecutionId: plain }), "InvalidRequestException");
  const states = [];
  for (let i = 0; i < 4; i++) states.push((await queryState(fake, plain)).Status.State);
  assert.deepEqual(states, ["QUEUED", "RUNNING", "SUCCEEDED", "SUCCEEDED"]);
});

Deno.test("athena: scripts are matched first-added-first, for `times` queries", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("flaky", { states: ["FAILED"], error: { Retryable: true }, times: 1 });
  fake.athena.script((r) => r.QueryString.startsWith("CREATE"), { states: ["RUNNING", "SUCCEEDED"] });
  fake.athena.script(() => true, { states: ["SUCCEEDED"] });
  const flaky1 = await startQuery(fake, "SELECT flaky");
  const flaky2 = await startQuery(fake, "SELECT flaky");
  const ddl = await startQuery(fake, "CREATE EXTERNAL TABLE x (a string) LOCATION 's3://b/x/'");
  assert.equal((await queryState(fake, flaky1)).Status.State, "FAILED");
  assert.equal((await queryState(fake, flaky2)).Status.State, "SUCCEEDED");
  const ddlQuery = await queryState(fake, ddl);
  assert.equal(ddlQuery.Status.State, "RUNNING");
  assert.equal(ddlQuery.StatementType, "DDL");
  assert.throws(() => fake.athena.script("x", { states: ["RUNNING"], runningForMs: 5 }), TypeError);
});

Deno.test("athena: a FAILED query carries AthenaError and StateChangeReason; no results", async () => {
  await using fake = await startAwsFake();
  const error = {
    ErrorCategory: 1,
    ErrorType: 401,
    Retryable: true,
    ErrorMessage: "Failed to write query results",
  };
  fake.athena.script((r) => r.QueryString.includes("broken"), {
    states: ["QUEUED", "RUNNING", "FAILED"],
    error,
  });
  const id = await startQuery(fake, "SELECT * FROM broken");
  assert.equal((await queryState(fake, id)).Status.State, "QUEUED");
  const running = await queryState(fake, id);
  assert.equal(running.Status.State, "RUNNING");
  assert.equal(running.Status.AthenaError, undefined);
  assertError(
    await athena(fake, "GetQueryResults", { QueryExecutionId: id }),
    "InvalidRequestException",
    "Query has not yet finished. Current state: RUNNING",
  );

  const failed = await queryState(fake, id);
  assert.equal(failed.Status.State, "FAILED");
  assert.deepEqual(failed.Status.AthenaError, error);
  assert.equal(failed.Status.StateChangeReason, "Failed to write query results");
  assert.equal(typeof failed.Status.CompletionDateTime, "number");
  assertError(
    await athena(fake, "GetQueryResults", { QueryExecutionId: id }),
    "InvalidRequestException",
    /Final query state: FAILED/,
  );

  // Defaults: a user error (category 2, type 1000), not retryable.
  fake.athena.script("bare", { states: ["FAILED"] });
  const bare = await queryState(fake, await startQuery(fake, "SELECT bare"));
  assert.equal(bare.Status.AthenaError.ErrorCategory, 2);
  assert.equal(bare.Status.AthenaError.ErrorType, 1000);
  assert.equal(bare.Status.AthenaError.Retryable, false);
  assertError(
    await athena(fake, "GetQueryExecution", { QueryExecutionId: "00000000-0000-0000-0000-000000000000" }),
    "InvalidRequestException",
    /was not found/,
  );
});

Deno.test("athena: GetQueryResults pages 2,500 rows into 3 pages, header only on page 1", async () => {
  await using fake = await startAwsFake();
  const rows = Array.from({ length: 2500 }, (_, i) => [String(i), i % 7 === 0 ? null : `v${i}`]);
  fake.athena.script("big", {
    states: ["SUCCEEDED"],
    columns: ["id", { Name: "value", Type: "varchar" }],
    rows,
  });
  const id = await startQuery(fake, "SELECT id, value FROM big");
  assert.equal((await queryState(fake, id)).Status.State, "SUCCEEDED");

  const pages = [];
  let next: string | undefined;
  do {
    const answer = await athena(fake, "GetQueryResults", { QueryExecutionId: id, NextToken: next });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    pages.push(answer.json);
    next = answer.json.NextToken;
  } while (next !== undefined);

  assert.equal(pages.length, 3);
  assert.deepEqual(pages.map((p) => p.ResultSet.Rows.length), [1000, 1000, 501]);
  assert.deepEqual(pages[0].ResultSet.Rows[0], { Data: [{ VarCharValue: "id" }, { VarCharValue: "value" }] });
  assert.deepEqual(pages[1].ResultSet.Rows[0].Data[0], { VarCharValue: "999" }, "page 2 starts with data");
  assert.deepEqual(pages[2].ResultSet.Rows[0].Data[0], { VarCharValue: "1999" }, "page 3 starts with data");
  const data = pages.flatMap((p, i) => (i === 0 ? p.ResultSet.Rows.slice(1) : p.ResultSet.Rows));
  assert.deepEqual(data, rows.map((r) => ({ Data: r.map((v) => (v === null ? {} : { VarCharValue: v })) })));
  for (const page of pages) {
    assert.deepEqual(page.ResultSet.ResultSetMetadata.ColumnInfo.map((c: any) => c.Name), ["id", "value"]);
    assert.equal(page.UpdateCount, 0);
  }

  const small = await athena(fake, "GetQueryResults", { QueryExecutionId: id, MaxResults: 500 });
  assert.equal(small.json.ResultSet.Rows.length, 500);
  assert.equal(typeof small.json.NextToken, "string");
  assertError(
    await athena(fake, "GetQueryResults", { QueryExecutionId: id, MaxResults: 1001 }),
    "InvalidRequestException",
    /maxResults.*less than or equal to 1000/,
  );
  assertError(
    await athena(fake, "GetQueryResults", { QueryExecutionId: id, MaxResults: 0 }),
    "InvalidRequestException",
  );
  assertError(
    await athena(fake, "GetQueryResults", { QueryExecutionId: id, NextToken: "not-a-token" }),
    "InvalidRequestException",
  );
  const other = await startQuery(fake, "SELECT 1 FROM big");
  await queryState(fake, other);
  assertError(
    await athena(fake, "GetQueryResults", { QueryExecutionId: other, NextToken: pages[0].NextToken }),
    "InvalidRequestException",
    /NextToken/,
  );
});

Deno.test("athena: StopQueryExecution cancels a running query and leaves a finished one alone", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("hold", { states: ["QUEUED", "RUNNING"] });
  const id = await startQuery(fake, "SELECT hold");
  await queryState(fake, id);
  assert.equal((await queryState(fake, id)).Status.State, "RUNNING");
  const stopped = await athena(fake, "StopQueryExecution", { QueryExecutionId: id });
  assert.equal(stopped.status, 200);
  assert.deepEqual(stopped.json, {});
  const cancelled = await queryState(fake, id);
  assert.equal(cancelled.Status.State, "CANCELLED");
  assert.equal(typeof cancelled.Status.CompletionDateTime, "number");
  const record = fake.athena.query(id)!;
  assert.equal(record.completedAt, record.stoppedAt);
  assert.deepEqual(record.transitions.map((t) => t.state), ["QUEUED", "RUNNING", "CANCELLED"]);
  assertError(await athena(fake, "GetQueryResults", { QueryExecutionId: id }), "InvalidRequestException");

  fake.athena.script("done", { states: ["SUCCEEDED"] });
  const done = await startQuery(fake, "SELECT done");
  await queryState(fake, done);
  assert.equal((await athena(fake, "StopQueryExecution", { QueryExecutionId: done })).status, 200);
  assert.equal((await queryState(fake, done)).Status.State, "SUCCEEDED");
  assert.equal(fake.athena.query(done)!.stoppedAt, undefined);
  assertError(
    await athena(fake, "StopQueryExecution", { QueryExecutionId: "00000000-0000-0000-0000-000000000000" }),
    "InvalidRequestException",
  );
});

Deno.test("throttle: the next N calls of an operation answer throttling errors, then it works", async () => {
  await using fake = await startAwsFake();
  fake.throttle("StartQueryExecution", 2);
  for (let i = 0; i < 2; i++) {
    const answer = await athena(fake, "StartQueryExecution", {
      QueryString: "SELECT 1",
      ClientRequestToken: token("t"),
    });
    assertError(
      answer,
      "TooManyRequestsException",
      /limit for the number of queries you can run concurrently/,
    );
    assert.equal(answer.json.Reason, "CONCURRENT_QUERY_LIMIT_EXCEEDED");
  }
  assert.equal(fake.athena.queries.length, 0, "a throttled start starts nothing");
  const id = await startQuery(fake, "SELECT 1", { ClientRequestToken: token("t") });
  assert.equal(fake.athena.queries.length, 1);

  fake.throttle("AmazonAthena.GetQueryExecution", 1);
  const throttled = await athena(fake, "GetQueryExecution", { QueryExecutionId: id });
  assertError(throttled, "ThrottlingException", "Rate exceeded");
  assert.equal(throttled.json.message, "Rate exceeded", "the unmodelled Athena throttle uses `message`");
  assert.equal((await queryState(fake, id)).Status.State, "QUEUED", "a throttled read does not advance");

  fake.glue.scriptJob("etl");
  const run = await startRun(fake, "etl");
  fake.throttle("GetJobRun", 2);
  fake.throttle("GetCrawler", 1, { type: "ThrottlingException", message: "slow down" });
  assertError(
    await glue(fake, "GetJobRun", { JobName: "etl", RunId: run }),
    "ThrottlingException",
    "Rate exceeded",
  );
  assert.equal((await glue(fake, "GetJobRun", { JobName: "etl", RunId: run })).json.Message, "Rate exceeded");
  assert.equal((await runState(fake, "etl", run)).JobRunState, "STARTING");
  assertError(await glue(fake, "GetCrawler", { Name: "none" }), "ThrottlingException", "slow down");

  const starts = fake.callsOf("StartQueryExecution");
  assert.deepEqual(starts.map((c) => c.errorType), [
    "TooManyRequestsException",
    "TooManyRequestsException",
    undefined,
  ]);
  assert.deepEqual(starts.map((c) => c.status), [400, 400, 200]);
  assert.equal(fake.callsOf("AWSGlue.GetJobRun").length, 3);
  assert.throws(() => fake.throttle("GetNothing", 1), TypeError);
});

Deno.test("fail(applied): the work is done but the reply is an error; a retried token finds it", async () => {
  await using fake = await startAwsFake();
  fake.fail("StartQueryExecution", 1, { type: "InternalServerException", status: 500, applied: true });
  const request = { QueryString: "INSERT INTO t SELECT 1", ClientRequestToken: token("lost") };
  const lost = await athena(fake, "StartQueryExecution", request);
  assert.equal(lost.status, 500);
  assert.equal(lost.errorType, "InternalServerException");
  assert.equal(fake.athena.queries.length, 1, "the query was started although the caller saw an error");
  const retry = await athena(fake, "StartQueryExecution", request);
  assert.equal(retry.json.QueryExecutionId, fake.athena.queries[0].id);
  assert.equal(fake.athena.queries[0].starts, 2);

  fake.fail("StartJobRun", 1, { type: "InternalServiceException", status: 500 });
  fake.glue.createJob("etl");
  assert.equal((await glue(fake, "StartJobRun", { JobName: "etl" })).status, 500);
  assert.equal(fake.glue.runs("etl").length, 0, "a plain fault does nothing");
});

Deno.test("glue: run states, ErrorMessage, Attempt, ExecutionTime; ConcurrentRunsExceeded", async () => {
  await using fake = await startAwsFake();
  fake.glue.createJob("etl", {
    defaultArguments: { "--env": "test", "--mode": "full" },
    nonOverridableArguments: { "--lock": "yes" },
  });
  fake.glue.scriptJob("etl", {
    states: ["STARTING", "RUNNING", "FAILED"],
    errorMessage: "OOM",
    attempt: 1,
    times: 1,
  });
  const id = await startRun(fake, "etl", {
    Arguments: { "--mode": "delta", "--lock": "no" },
    WorkerType: "G.1X",
    NumberOfWorkers: 2,
    Timeout: 60,
  });
  assert.match(id, /^jr_[0-9a-f]{64}$/);
  assertError(
    await glue(fake, "StartJobRun", { JobName: "etl" }),
    "ConcurrentRunsExceededException",
    /Concurrent runs exceeded/,
  );

  const states = [];
  for (let i = 0; i < 3; i++) states.push(await runState(fake, "etl", id));
  assert.deepEqual(states.map((r) => r.JobRunState), ["STARTING", "RUNNING", "FAILED"]);
  assert.equal(states[1].ErrorMessage, undefined);
  assert.equal(states[1].CompletedOn, undefined);
  const failed = states[2];
  assert.equal(failed.ErrorMessage, "OOM");
  assert.equal(failed.Attempt, 1);
  assert.equal(typeof failed.ExecutionTime, "number");
  assert.equal(typeof failed.StartedOn, "number");
  assert.ok(failed.CompletedOn >= failed.StartedOn);
  assert.deepEqual(failed.Arguments, { "--env": "test", "--mode": "delta", "--lock": "yes" });
  assert.equal(failed.WorkerType, "G.1X");
  assert.equal(failed.NumberOfWorkers, 2);
  assert.equal(failed.Timeout, 60);

  const [record] = fake.glue.runs("etl");
  assert.equal(record.id, id);
  assert.deepEqual(record.arguments, failed.Arguments);
  assert.equal(record.numberOfWorkers, 2);
  assert.equal(record.completedAt, failed.CompletedOn * 1000);

  // The slot is free again; the next run gets the default timeline (the script was for one run).
  const next = await startRun(fake, "etl", { JobRunId: id });
  const reads = [];
  for (let i = 0; i < 3; i++) reads.push((await runState(fake, "etl", next)).JobRunState);
  assert.deepEqual(reads, ["STARTING", "RUNNING", "SUCCEEDED"]);
  assert.equal(fake.glue.runs("etl")[1].previousRunId, id);

  fake.glue.createJob("many", { maxConcurrentRuns: 10 });
  for (const end of ["TIMEOUT", "ERROR", "EXPIRED"] as const) {
    fake.glue.scriptJob("many", { states: ["RUNNING", end], times: 1 });
    const run = await startRun(fake, "many");
    await runState(fake, "many", run);
    const last = await runState(fake, "many", run);
    assert.equal(last.JobRunState, end);
    assert.match(last.ErrorMessage, new RegExp(end));
  }
  assertError(await glue(fake, "StartJobRun", { JobName: "nope" }), "EntityNotFoundException");
  assertError(await glue(fake, "GetJobRun", { JobName: "etl", RunId: "jr_nope" }), "EntityNotFoundException");
});

Deno.test("glue: BatchStopJobRun answers per run, and the run reads STOPPING then STOPPED", async () => {
  await using fake = await startAwsFake();
  fake.glue.scriptJob("long", { states: ["STARTING", "RUNNING"] });
  const id = await startRun(fake, "long");
  await runState(fake, "long", id);
  assert.equal((await runState(fake, "long", id)).JobRunState, "RUNNING");

  const stop = await glue(fake, "BatchStopJobRun", { JobName: "long", JobRunIds: [id, "jr_missing"] });
  assert.equal(stop.status, 200);
  assert.deepEqual(stop.json.SuccessfulSubmissions, [{ JobName: "long", JobRunId: id }]);
  assert.equal(stop.json.Errors.length, 1);
  assert.equal(stop.json.Errors[0].JobRunId, "jr_missing");
  assert.equal(stop.json.Errors[0].ErrorDetail.ErrorCode, "EntityNotFoundException");

  const stopping = await runState(fake, "long", id);
  assert.equal(stopping.JobRunState, "STOPPING");
  assert.equal(stopping.CompletedOn, undefined);
  const stopped = await runState(fake, "long", id);
  assert.equal(stopped.JobRunState, "STOPPED");
  assert.equal(typeof stopped.CompletedOn, "number");
  assert.equal(stopped.ErrorMessage, undefined);
  const record = fake.glue.runs("long")[0];
  assert.equal(typeof record.stopRequestedAt, "number");
  assert.deepEqual(record.transitions.map((t) => t.state), ["STARTING", "RUNNING", "STOPPING", "STOPPED"]);

  const again = await glue(fake, "BatchStopJobRun", { JobName: "long", JobRunIds: [id] });
  assert.deepEqual(again.json.SuccessfulSubmissions, []);
  assert.equal(again.json.Errors[0].ErrorDetail.ErrorCode, "InvalidInputException");
  assertError(
    await glue(fake, "BatchStopJobRun", { JobName: "long", JobRunIds: [] }),
    "InvalidInputException",
  );
});

Deno.test("glue: GetJobRuns pages newest first with MaxResults / NextToken", async () => {
  await using fake = await startAwsFake();
  fake.glue.createJob("many", { maxConcurrentRuns: 100 });
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push(await startRun(fake, "many", { Arguments: { "--n": String(i) } }));

  const pages = [];
  let next: string | undefined;
  do {
    const answer = await glue(fake, "GetJobRuns", { JobName: "many", MaxResults: 3, NextToken: next });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    pages.push(answer.json.JobRuns.map((r: any) => r.Id));
    next = answer.json.NextToken;
    if (pages.length === 1) await startRun(fake, "many"); // a run started mid-scan shifts nothing
  } while (next !== undefined);
  assert.deepEqual(pages.map((p) => p.length), [3, 3, 1]);
  assert.deepEqual(pages.flat(), [...ids].reverse());

  const all = await glue(fake, "GetJobRuns", { JobName: "many" });
  assert.equal(all.json.JobRuns.length, 8);
  assert.equal(all.json.NextToken, undefined);
  assert.equal(all.json.JobRuns[7].Arguments["--n"], "0");
  assertError(
    await glue(fake, "GetJobRuns", { JobName: "many", MaxResults: 201 }),
    "InvalidInputException",
    /less than or equal to 200/,
  );
  assertError(
    await glue(fake, "GetJobRuns", { JobName: "many", NextToken: "bogus" }),
    "InvalidInputException",
  );
  assertError(await glue(fake, "GetJobRuns", { JobName: "unknown" }), "EntityNotFoundException");
});

Deno.test("glue: crawler states, running/stopping errors, LastCrawl, metrics and tables", async () => {
  await using fake = await startAwsFake();
  fake.glue.createCrawler("lake", { databaseName: "raw" });
  fake.glue.scriptCrawl("lake", {
    tables: [{ name: "events", columns: [{ Name: "id", Type: "bigint" }] }, { name: "users" }],
  });
  assertError(await glue(fake, "StopCrawler", { Name: "lake" }), "CrawlerNotRunningException");
  assert.equal((await glue(fake, "StartCrawler", { Name: "lake" })).status, 200);
  assertError(
    await glue(fake, "StartCrawler", { Name: "lake" }),
    "CrawlerRunningException",
    /already started/,
  );

  const running = await crawlerState(fake, "lake");
  assert.equal(running.State, "RUNNING");
  assert.equal(running.LastCrawl, undefined);
  assert.equal((await crawlerState(fake, "lake")).State, "STOPPING");
  assertError(await glue(fake, "StartCrawler", { Name: "lake" }), "CrawlerRunningException");
  assertError(await glue(fake, "StopCrawler", { Name: "lake" }), "CrawlerStoppingException");
  const ready = await crawlerState(fake, "lake");
  assert.equal(ready.State, "READY");
  assert.equal(ready.LastCrawl.Status, "SUCCEEDED");
  assert.equal(typeof ready.LastCrawl.StartTime, "number");

  const metrics = await glue(fake, "GetCrawlerMetrics", { CrawlerNameList: ["lake"] });
  assert.equal(metrics.json.CrawlerMetricsList[0].TablesCreated, 2);
  assert.equal(metrics.json.CrawlerMetricsList[0].TablesUpdated, 0);
  const tables = await glue(fake, "GetTables", { DatabaseName: "raw" });
  assert.deepEqual(tables.json.TableList.map((t: any) => t.Name), ["events", "users"]);
  assert.deepEqual(tables.json.TableList[0].StorageDescriptor.Columns, [{ Name: "id", Type: "bigint" }]);
  const filtered = await glue(fake, "GetTables", { DatabaseName: "raw", Expression: "ev.*" });
  assert.deepEqual(filtered.json.TableList.map((t: any) => t.Name), ["events"]);
  assertError(await glue(fake, "GetTables", { DatabaseName: "nope" }), "EntityNotFoundException");

  // A second crawl updates the same tables; a stopped crawl is CANCELLED.
  await glue(fake, "StartCrawler", { Name: "lake" });
  for (let i = 0; i < 3; i++) await crawlerState(fake, "lake");
  const second = await glue(fake, "GetCrawlerMetrics", {});
  assert.equal(second.json.CrawlerMetricsList[0].TablesCreated, 0);
  assert.equal(second.json.CrawlerMetricsList[0].TablesUpdated, 2);
  await glue(fake, "StartCrawler", { Name: "lake" });
  assert.equal((await crawlerState(fake, "lake")).State, "RUNNING");
  assert.equal((await glue(fake, "StopCrawler", { Name: "lake" })).status, 200);
  assert.equal((await crawlerState(fake, "lake")).State, "STOPPING");
  const cancelled = await crawlerState(fake, "lake");
  assert.equal(cancelled.State, "READY");
  assert.equal(cancelled.LastCrawl.Status, "CANCELLED");
  assert.deepEqual(fake.glue.crawls("lake").map((c) => c.status), ["SUCCEEDED", "SUCCEEDED", "CANCELLED"]);

  fake.glue.scriptCrawl("bad", {
    states: ["RUNNING", "READY"],
    outcome: "FAILED",
    errorMessage: "no access",
  });
  await glue(fake, "StartCrawler", { Name: "bad" });
  await crawlerState(fake, "bad");
  const bad = await crawlerState(fake, "bad");
  assert.deepEqual([bad.LastCrawl.Status, bad.LastCrawl.ErrorMessage], ["FAILED", "no access"]);
  assertError(await glue(fake, "StartCrawler", { Name: "ghost" }), "EntityNotFoundException");
});

Deno.test("time-based scripts change state at the scheduled moment (manual clock)", async () => {
  const t0 = 1_800_000_000_000;
  let now = t0;
  await using fake = await startAwsFake({ clock: () => now });
  fake.athena.script("slow", { queuedForMs: 500, runningForMs: 3000, then: "SUCCEEDED" });
  const id = await startQuery(fake, "SELECT slow");
  assert.equal((await queryState(fake, id)).Status.State, "QUEUED");
  now = t0 + 499;
  assert.equal((await queryState(fake, id)).Status.State, "QUEUED");
  now = t0 + 500;
  assert.equal((await queryState(fake, id)).Status.State, "RUNNING");
  now = t0 + 3499;
  assert.equal((await queryState(fake, id)).Status.State, "RUNNING");
  now = t0 + 5700; // the poller comes late: the completion time is still the scheduled one
  const done = await queryState(fake, id);
  assert.equal(done.Status.State, "SUCCEEDED");
  assert.equal(done.Status.SubmissionDateTime, t0 / 1000);
  assert.equal(done.Status.CompletionDateTime, (t0 + 3500) / 1000);
  assert.equal(fake.athena.query(id)!.completedAt, t0 + 3500);
  assert.deepEqual(
    [done.Statistics.QueryQueueTimeInMillis, done.Statistics.EngineExecutionTimeInMillis],
    [500, 3000],
  );
  assert.equal(done.Statistics.TotalExecutionTimeInMillis, 3500);

  now = t0 + 10_000;
  fake.glue.scriptJob("timed", {
    startingForMs: 100,
    runningForMs: 61_000,
    then: "TIMEOUT",
    errorMessage: "late",
  });
  const run = await startRun(fake, "timed");
  now = t0 + 10_050;
  assert.equal(
    (await glue(fake, "GetJobRuns", { JobName: "timed" })).json.JobRuns[0].JobRunState,
    "STARTING",
  );
  now = t0 + 10_100;
  assert.equal(fake.glue.runs("timed")[0].state, "RUNNING");
  now = t0 + 90_000;
  const timedOut = await runState(fake, "timed", run);
  assert.equal(timedOut.JobRunState, "TIMEOUT");
  assert.equal(timedOut.ErrorMessage, "late");
  assert.equal(timedOut.ExecutionTime, 61);
  assert.equal(timedOut.CompletedOn, (t0 + 71_100) / 1000);
  assert.equal(fake.glue.runs("timed")[0].completedAt, t0 + 71_100);

  fake.glue.scriptCrawl("c", { runningForMs: 2000, tables: [{ name: "t" }] });
  await glue(fake, "StartCrawler", { Name: "c" });
  now = t0 + 91_999;
  assert.equal((await crawlerState(fake, "c")).State, "RUNNING");
  now = t0 + 92_000;
  assert.equal(fake.glue.tables("default").length, 1, "the crawl wrote its table at its scheduled end");
  assert.equal((await crawlerState(fake, "c")).State, "READY");
  assert.equal(fake.glue.crawls("c")[0].completedAt, t0 + 92_000);
});

Deno.test("time-based scripts on the real clock: SUCCEEDED is first seen after completedAt", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("wall", { runningForMs: 150, then: "SUCCEEDED" });
  const id = await startQuery(fake, "SELECT wall");
  let state = (await queryState(fake, id)).Status.State;
  assert.equal(state, "RUNNING");
  while (state !== "SUCCEEDED") {
    await new Promise((resolve) => setTimeout(resolve, 20));
    state = (await queryState(fake, id)).Status.State;
  }
  const seenAt = Date.now();
  const query = fake.athena.query(id)!;
  assert.equal(query.completedAt, query.submittedAt + 150);
  assert.ok(seenAt >= query.completedAt!, `seen ${seenAt} before completion ${query.completedAt}`);
  assert.ok(seenAt - query.completedAt! < 1000);
});

Deno.test("wire: signatures recorded, not verified; JSON 1.1 answers; unknown operations", async () => {
  await using fake = await startAwsFake();
  const auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/us-east-1/athena/aws4_request, " +
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=deadbeef";
  const signed = await post(fake, "AmazonAthena.StartQueryExecution", { QueryString: "SELECT 1" }, {
    authorization: auth,
  });
  assert.equal(signed.status, 200);
  assert.equal(signed.headers.get("content-type"), "application/x-amz-json-1.1");
  assert.ok(signed.headers.get("x-amzn-requestid"));
  await athena(fake, "StartQueryExecution", { QueryString: "SELECT 2" });
  assert.deepEqual(fake.calls.map((c) => [c.signed, c.authorization]), [[true, auth], [false, undefined]]);
  assert.deepEqual(fake.calls[0].body, { QueryString: "SELECT 1" });
  assert.equal(fake.calls[0].service, "athena");
  assert.equal(typeof fake.calls[0].at, "number");

  assertError(await post(fake, "AmazonAthena.BatchGetQueryExecution", {}), "UnknownOperationException");
  assertError(await post(fake, "", {}), "UnknownOperationException");
  assertError(await post(fake, "AWSGlue.GetJobRuns", "{not json"), "SerializationException");
  assertError(await athena(fake, "StartQueryExecution", {}), "InvalidRequestException", /queryString/);

  const endpoint = fake.endpoint;
  await fake.stop();
  await assert.rejects(() => fetch(endpoint, { method: "POST" }));
});

/**
 * `lakerun plan --iam`: the statement builders and the merge of lib/aws/iam.ts, the `iam()` of the built-in
 * executors action by action for every task and mode on s3:// params (exact documents), the command line end
 * to end, and the printed policy checked against every request lakerun really sends in a run of
 * routines/retail_trade_survey_s3.json against a real S3 server (Ceph radosgw), through a recording proxy.
 *
 * Run: deno test -A tests/iam_test.ts (set LAKERUN_TEST_S3_ENV to reuse a running S3 server)
 */
import assert from "node:assert/strict";
import http from "node:http";
import { join } from "node:path";
import { z } from "zod";
import type { ExecutorDefinition, PermissionContext } from "../sdk/executor.ts";
import {
  allow,
  athenaWorkgroupArn,
  glueCatalogArn,
  glueCrawlerArn,
  glueDatabaseArn,
  glueJobArn,
  glueTableArn,
  type IamPolicy,
  iamPolicyProblem,
  type IamStatement,
  mergeStatements,
  s3Statements,
} from "../lib/aws/iam.ts";
import downloader from "../executors/downloader/mod.ts";
import staging from "../executors/staging/mod.ts";
import s3Transfer from "../executors/s3_transfer/mod.ts";
import { lakerun, ROOT, runRoutineJson, tempDir } from "./support/lakerun.ts";
import { startFaultServer } from "./support/fault_server.ts";
import { buildZip, csvText, surveyArchive } from "./support/zip_fixtures.ts";
import { createTestBucket, type S3TestServer, startS3ServerForLakerun } from "./support/s3_server.ts";
import { closeS3Clients } from "../lib/aws/s3/client.ts";
import { openS3Location } from "../lib/aws/s3/storage.ts";

// ---------------------------------------------------------------------------------------------------------
// helpers

/** A statement as the merge writes it, without its Sid. */
function st(actions: string[], resources: string[], condition?: IamStatement["Condition"]): IamStatement {
  return {
    Effect: "Allow",
    Action: actions,
    Resource: resources,
    ...(condition ? { Condition: condition } : {}),
  };
}

/** `s3:ListBucket` on `arn:aws:s3:::bucket` limited to the prefixes given (each as `p` and `p/*`). */
function listing(bucket: string, ...prefixes: string[]): IamStatement {
  const values = prefixes.flatMap((p) => [p, `${p}/*`]).sort();
  return st(["s3:ListBucket"], [`arn:aws:s3:::${bucket}`], { StringLike: { "s3:prefix": values } });
}

const WRITE = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"];

/** The merged document, checked for shape, with the Sids left out (they are tested on their own). */
function policyOf(statements: IamStatement[]): IamStatement[] {
  const policy = mergeStatements(statements);
  assert.equal(iamPolicyProblem(policy), undefined, JSON.stringify(policy));
  return policy.Statement.map(({ Sid: _sid, ...rest }) => rest);
}

/** An executor's statements for raw params (validated with defaults, as lakerun does), merged. */
function iamOf(
  definition: ExecutorDefinition,
  raw: unknown,
  tasks: string[] | undefined,
  region = "eu-west-1",
): IamStatement[] {
  const params = definition.params(z).parse(raw);
  const context: PermissionContext = {
    cwd: "/work",
    resolve: (path) => join("/work", path),
    s3: { region },
    tasks,
  };
  return policyOf(definition.iam!(params, context));
}

// ---------------------------------------------------------------------------------------------------------
// builders

Deno.test("s3Statements: read lists the prefix and gets its objects, nothing else", () => {
  assert.deepEqual(policyOf(s3Statements("s3://lake/raw/2024", "read")), [
    listing("lake", "raw/2024"),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/raw/2024/*"]),
  ]);
});

Deno.test("s3Statements: write is what uploads, their checks and their cleanup send", () => {
  assert.deepEqual(policyOf(s3Statements("s3://lake/raw", "write")), [
    listing("lake", "raw"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/raw/*"]),
  ]);
});

Deno.test("s3Statements: delete adds DeleteObject; probe is read (its one-key listing stays in the prefix)", () => {
  assert.deepEqual(policyOf(s3Statements("s3://lake/raw", "delete")), [
    listing("lake", "raw"),
    st(["s3:DeleteObject"], ["arn:aws:s3:::lake/raw/*"]),
  ]);
  assert.deepEqual(policyOf(s3Statements("s3://lake/raw", ["read", "delete"])), [
    listing("lake", "raw"),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/raw/*"]),
  ]);
  // a missing key is told from a missing bucket by listing `raw/` (MaxKeys 1), never by HeadBucket: no grant on
  // the whole bucket
  assert.deepEqual(policyOf(s3Statements("s3://lake/raw", "probe")), [
    listing("lake", "raw"),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/raw/*"]),
  ]);
  assert.deepEqual(s3Statements("s3://lake/raw", []), []);
});

Deno.test("s3Statements: the whole bucket has no condition; partition and wildcards are handled", () => {
  assert.deepEqual(policyOf(s3Statements("s3://lake/", "read")), [
    st(["s3:ListBucket"], ["arn:aws:s3:::lake"]),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/*"]),
  ]);
  assert.deepEqual(policyOf(s3Statements("s3://lake/a", "read", { region: "cn-north-1" }))[1].Resource, [
    "arn:aws-cn:s3:::lake/a/*",
  ]);
  assert.deepEqual(policyOf(s3Statements("s3://lake/a*b?/$x", "read")), [
    st(["s3:ListBucket"], ["arn:aws:s3:::lake"], {
      StringLike: { "s3:prefix": ["a${*}b${?}/${$}x", "a${*}b${?}/${$}x/*"] },
    }),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/a${*}b${?}/${$}x/*"]),
  ]);
});

Deno.test("s3Statements: an unknown access or an invalid location is a one-line error", () => {
  // deno-lint-ignore no-explicit-any
  assert.throws(() => s3Statements("s3://lake/a", "list" as any), /unknown S3 access "list"/);
  assert.throws(
    () => s3Statements("s3://Not_A_Bucket/a", "read"),
    /invalid S3 location "s3:\/\/Not_A_Bucket\/a"/,
  );
  assert.throws(() => s3Statements("s3://lake/a/../b", "read"), /'\.\.' segment/);
});

Deno.test("ARN helpers: account *, region * when unknown, partition from the region", () => {
  assert.equal(athenaWorkgroupArn("eu-west-1", "primary"), "arn:aws:athena:eu-west-1:*:workgroup/primary");
  assert.equal(glueCatalogArn(undefined), "arn:aws:glue:*:*:catalog");
  assert.equal(glueDatabaseArn("us-gov-west-1", "lake"), "arn:aws-us-gov:glue:us-gov-west-1:*:database/lake");
  assert.equal(glueTableArn("eu-west-1", "lake", "sales"), "arn:aws:glue:eu-west-1:*:table/lake/sales");
  assert.equal(glueTableArn("eu-west-1", "lake", "*"), "arn:aws:glue:eu-west-1:*:table/lake/*");
  assert.equal(glueJobArn("eu-west-1", "clean"), "arn:aws:glue:eu-west-1:*:job/clean");
  assert.equal(glueCrawlerArn("eu-west-1", "raw"), "arn:aws:glue:eu-west-1:*:crawler/raw");
});

// ---------------------------------------------------------------------------------------------------------
// merge

Deno.test("mergeStatements: the same resources and condition make one statement, actions sorted and unique", () => {
  const policy = policyOf([
    allow(["s3:PutObject"], ["arn:aws:s3:::lake/a/*"]),
    allow(["s3:GetObject", "s3:PutObject"], ["arn:aws:s3:::lake/a/*"]),
    allow(["athena:GetQueryExecution"], [athenaWorkgroupArn("eu-west-1", "wg")]),
    allow(["athena:StartQueryExecution"], [athenaWorkgroupArn("eu-west-1", "wg")]),
  ]);
  assert.deepEqual(policy, [
    st(["athena:GetQueryExecution", "athena:StartQueryExecution"], [
      "arn:aws:athena:eu-west-1:*:workgroup/wg",
    ]),
    st(["s3:GetObject", "s3:PutObject"], ["arn:aws:s3:::lake/a/*"]),
  ]);
});

Deno.test("mergeStatements: the same actions and condition gather their resources", () => {
  assert.deepEqual(
    policyOf([
      allow(["s3:GetObject"], ["arn:aws:s3:::lake/b/*"]),
      allow(["s3:GetObject"], ["arn:aws:s3:::lake/a/*"]),
      allow(["s3:GetObject"], ["arn:aws:s3:::lake/a/*"]),
    ]),
    [st(["s3:GetObject"], ["arn:aws:s3:::lake/a/*", "arn:aws:s3:::lake/b/*"])],
  );
});

Deno.test("mergeStatements: one-key conditions on the same grant join their values", () => {
  assert.deepEqual(
    policyOf([...s3Statements("s3://lake/b", "read"), ...s3Statements("s3://lake/a", "read")]),
    [listing("lake", "a", "b"), st(["s3:GetObject"], ["arn:aws:s3:::lake/a/*", "arn:aws:s3:::lake/b/*"])],
  );
});

Deno.test("mergeStatements: an unconditional grant makes the same grant under a condition redundant", () => {
  assert.deepEqual(
    policyOf([
      ...s3Statements("s3://lake/a", "read"),
      allow(["s3:ListBucket"], ["arn:aws:s3:::lake"]),
      ...s3Statements("s3://other/a", "read"),
    ]),
    [
      st(["s3:ListBucket"], ["arn:aws:s3:::lake"]),
      st(["s3:GetObject"], ["arn:aws:s3:::lake/a/*", "arn:aws:s3:::other/a/*"]),
      listing("other", "a"),
    ],
  );
});

Deno.test("mergeStatements: conditions of several keys are kept whole, apart from others", () => {
  const both = { StringEquals: { "aws:SourceVpc": ["vpc-1"] }, StringLike: { "s3:prefix": ["a/*"] } };
  assert.deepEqual(
    policyOf([
      allow(["s3:ListBucket"], ["arn:aws:s3:::lake"], both),
      allow(["s3:ListBucket"], ["arn:aws:s3:::lake"], { StringLike: { "s3:prefix": ["b/*"] } }),
    ]),
    [
      st(["s3:ListBucket"], ["arn:aws:s3:::lake"], both),
      st(["s3:ListBucket"], ["arn:aws:s3:::lake"], { StringLike: { "s3:prefix": ["b/*"] } }),
    ],
  );
});

Deno.test("mergeStatements: Sids come from the content: the same in any order and on every run", () => {
  const statements = [
    ...s3Statements("s3://lake/raw", "write"),
    allow(["glue:GetJobRun", "glue:StartJobRun"], [glueJobArn("eu-west-1", "clean")]),
    { ...allow(["s3:GetObject"], ["arn:aws:s3:::lake/x/*"]), Sid: "Theirs" },
  ];
  const policy = mergeStatements(statements);
  assert.deepEqual(mergeStatements([...statements].reverse()), policy);
  // a fixed document has fixed Sids (sha256 of the statement's canonical JSON): stable across runs and hosts
  assert.deepEqual(policy.Statement.map((s) => s.Sid), [
    "Glue8d89fb04",
    "S3cf76d40d",
    "S34c9f5f13",
    "S33832c271",
    "S30107133a",
  ]);
  const sids = new Set(policy.Statement.map((s) => s.Sid));
  assert.equal(sids.size, policy.Statement.length);
  assert.ok(!sids.has("Theirs"), "incoming Sids are replaced");
  // another action is another statement: its Sid changes, the others' do not
  const changed = mergeStatements([
    ...statements.slice(0, -2),
    allow(["glue:GetJobRun"], [glueJobArn("eu-west-1", "clean")]),
  ]);
  assert.notEqual(changed.Statement[0].Sid, policy.Statement[0].Sid);
  assert.deepEqual(
    changed.Statement.slice(1).map((s) => s.Sid),
    policy.Statement.slice(1, 4).map((s) => s.Sid),
  );
});

Deno.test("mergeStatements of nothing is an empty, valid document", () => {
  const policy = mergeStatements([]);
  assert.deepEqual(policy, { Version: "2012-10-17", Statement: [] });
  assert.equal(iamPolicyProblem(policy), undefined);
});

Deno.test("iamPolicyProblem names what is wrong with a document's shape", () => {
  const good = mergeStatements(s3Statements("s3://lake/a", "write"));
  assert.equal(iamPolicyProblem(good), undefined);
  const broken = (change: (p: IamPolicy) => void) => {
    const copy = structuredClone(good) as IamPolicy;
    change(copy);
    return iamPolicyProblem(copy);
  };
  assert.match(broken((p) => ((p as { Version: string }).Version = "2008-10-17"))!, /Version/);
  assert.match(broken((p) => ((p.Statement[0] as { Effect: string }).Effect = "Deny"))!, /Effect/);
  assert.match(broken((p) => (p.Statement[0].Action = ["GetObject"]))!, /not an action/);
  assert.match(broken((p) => (p.Statement[0].Action = []))!, /non-empty array/);
  assert.match(
    broken((p) => (p.Statement[2].Action = ["s3:PutObject", "s3:GetObject"]))!,
    /sorted and unique/,
  );
  assert.match(broken((p) => (p.Statement[0].Resource = ["lake"]))!, /not an ARN/);
  assert.match(broken((p) => (p.Statement[0].Resource = ["arn:aws:s3:eu-west-1:12:lake"]))!, /not an ARN/);
  assert.match(broken((p) => (p.Statement[1].Sid = p.Statement[0].Sid))!, /used twice/);
  assert.match(broken((p) => (p.Statement[0].Sid = "has space"))!, /alphanumeric/);
  assert.match(
    broken((p) => (p.Statement[0].Condition = { StringLike: { "s3:prefix": "a" as unknown as string[] } }))!,
    /array of strings/,
  );
  assert.equal(iamPolicyProblem("{}"), "the policy is not an object");
});

// ---------------------------------------------------------------------------------------------------------
// DownloaderExecutor

const URL_ZIP = "https://example.org/files/survey.zip";

Deno.test("DownloaderExecutor download with unzip writes the landing prefix", () => {
  const expected = [
    listing("lake", "raw/landing"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/raw/landing/*"]),
  ];
  for (const unzip of ["unzip", true]) {
    const raw = { requests_arguments: { url: URL_ZIP }, landing_directory: "s3://lake/raw/landing", unzip };
    assert.deepEqual(iamOf(downloader, raw, ["download"]), expected);
  }
  // a folder named with its '/' receives the URL's file name: the same prefix
  const folder = { requests_arguments: { url: URL_ZIP }, landing_directory: "s3://lake/raw/landing/" };
  assert.deepEqual(iamOf(downloader, folder, ["download"]), expected);
});

Deno.test("DownloaderExecutor download to s3://bucket/prefix/name: the prefix as a folder, or the key in its parent", () => {
  const raw = { requests_arguments: { url: URL_ZIP }, landing_directory: "s3://lake/raw/survey.zip" };
  assert.deepEqual(iamOf(downloader, raw, ["download"]), [
    // "is it a folder?" lists raw/survey.zip/; as a file, the parent raw/ is listed for unfinished uploads
    listing("lake", "raw", "raw/survey.zip"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(["s3:AbortMultipartUpload"], ["arn:aws:s3:::lake/raw/*"]),
    st(WRITE, ["arn:aws:s3:::lake/raw/survey.zip", "arn:aws:s3:::lake/raw/survey.zip/*"]),
  ]);
});

Deno.test("DownloaderExecutor download into a whole bucket, in another partition, or to a local folder", () => {
  const bucket = { requests_arguments: { url: URL_ZIP }, landing_directory: "s3://lake" };
  assert.deepEqual(iamOf(downloader, bucket, ["download"]), [
    st(["s3:ListBucket", "s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/*"]),
  ]);
  const china = { requests_arguments: { url: URL_ZIP }, landing_directory: "s3://lake/in", unzip: "unzip" };
  assert.deepEqual(iamOf(downloader, china, ["download"], "cn-north-1")[2].Resource, [
    "arn:aws-cn:s3:::lake/in/*",
  ]);
  const local = { requests_arguments: { url: URL_ZIP }, landing_directory: "data/landing", unzip: "unzip" };
  assert.deepEqual(iamOf(downloader, local, ["download"]), []);
});

Deno.test("the partition follows the region AWS_REGION (or the profile) gives when the routine names none", () => {
  const saved = { region: Deno.env.get("AWS_REGION"), defaultRegion: Deno.env.get("AWS_DEFAULT_REGION") };
  Deno.env.set("AWS_REGION", "cn-north-1");
  Deno.env.delete("AWS_DEFAULT_REGION");
  try {
    const arnsOf = (definition: ExecutorDefinition, raw: unknown, tasks: string[]) => {
      const params = definition.params(z).parse(raw);
      const context: PermissionContext = { cwd: "/work", resolve: (path) => join("/work", path), tasks };
      return definition.iam!(params, context).flatMap((statement) => statement.Resource);
    };
    const url = { url: URL_ZIP };
    for (
      const arns of [
        arnsOf(downloader, { requests_arguments: url, landing_directory: "s3://lake/in", unzip: "unzip" }, [
          "download",
        ]),
        arnsOf(staging, { parent_directory: "s3://lake/landing", dump_directory: "s3://lake/staging" }, [
          "transfer",
          "post_staging",
        ]),
        arnsOf(s3Transfer, { source: "s3://lake/a", destination: "s3://lake/b" }, ["copy"]),
      ]
    ) {
      assert.ok(arns.length > 0 && arns.every((arn) => arn.startsWith("arn:aws-cn:s3:::")), arns.join(" "));
    }
  } finally {
    for (const [name, value] of [["AWS_REGION", saved.region], ["AWS_DEFAULT_REGION", saved.defaultRegion]]) {
      if (value === undefined) Deno.env.delete(name!);
      else Deno.env.set(name!, value);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// StagingExecutor

const STAGING = { parent_directory: "s3://lake/landing", dump_directory: "s3://lake/staging" };

Deno.test("StagingExecutor transfer reads landing, writes staging and probes it (is the copy there?)", () => {
  assert.deepEqual(iamOf(staging, STAGING, ["transfer"]), [
    listing("lake", "landing", "staging"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/landing/*"]),
    st(WRITE, ["arn:aws:s3:::lake/staging/*"]),
  ]);
  // in two buckets, each is listed only under its own prefix (the probe of staging included)
  const apart = { parent_directory: "s3://in-lake/landing", dump_directory: "s3://out-lake/staging" };
  assert.deepEqual(iamOf(staging, apart, ["transfer"]), [
    listing("in-lake", "landing"),
    st(["s3:GetObject"], ["arn:aws:s3:::in-lake/landing/*"]),
    listing("out-lake", "staging"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::out-lake"]),
    st(WRITE, ["arn:aws:s3:::out-lake/staging/*"]),
  ]);
});

Deno.test("StagingExecutor post_staging (archive) reads and deletes landing, reads staging, writes the archive", () => {
  assert.deepEqual(iamOf(staging, STAGING, ["post_staging"]), [
    listing("lake", "archive", "landing", "staging"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/archive/*"]),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/landing/*"]),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/staging/*"]),
  ]);
  const elsewhere = { ...STAGING, archive_directory: "s3://cold/2024" };
  assert.deepEqual(iamOf(staging, elsewhere, ["post_staging"]), [
    listing("cold", "2024"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::cold"]),
    st(WRITE, ["arn:aws:s3:::cold/2024/*"]),
    listing("lake", "landing", "staging"),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/landing/*"]),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/staging/*"]),
  ]);
});

Deno.test("StagingExecutor post_staging (delete) reads and deletes landing and reads staging, nothing more", () => {
  assert.deepEqual(iamOf(staging, { ...STAGING, archive_or_delete: "delete" }, ["post_staging"]), [
    listing("lake", "landing", "staging"),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/landing/*"]),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/staging/*"]),
  ]);
});

Deno.test("StagingExecutor transfer + post_staging is the union of both", () => {
  assert.deepEqual(iamOf(staging, STAGING, ["transfer", "post_staging"]), [
    listing("lake", "archive", "landing", "staging"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/archive/*", "arn:aws:s3:::lake/staging/*"]),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/landing/*"]),
  ]);
  // a definition called outside a routine (no task list) assumes every task
  assert.deepEqual(iamOf(staging, STAGING, undefined), iamOf(staging, STAGING, ["transfer", "post_staging"]));
});

Deno.test("StagingExecutor with a transform uploads its output without probing and never reads staging back", () => {
  const transform = { ...STAGING, archive_or_delete: "delete", transform_module: "transforms/clean.ts" };
  assert.deepEqual(iamOf(staging, transform, ["transfer", "post_staging"]), [
    listing("lake", "landing", "staging"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/landing/*"]),
    st(WRITE, ["arn:aws:s3:::lake/staging/*"]),
  ]);
});

Deno.test("StagingExecutor with local folders grants only what its S3 folders need", () => {
  const up = { parent_directory: "landing", dump_directory: "s3://lake/staging" };
  assert.deepEqual(iamOf(staging, up, ["transfer", "post_staging"]), [
    listing("lake", "staging"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/staging/*"]),
  ]);
  const down = {
    parent_directory: "s3://lake/staging",
    dump_directory: "curated",
    archive_or_delete: "delete",
  };
  assert.deepEqual(iamOf(staging, down, ["transfer", "post_staging"]), [
    listing("lake", "staging"),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/staging/*"]),
  ]);
  assert.deepEqual(iamOf(staging, { parent_directory: "landing", dump_directory: "staging" }, undefined), []);
});

// ---------------------------------------------------------------------------------------------------------
// S3TransferExecutor

const TRANSFER = { source: "s3://lake/a", destination: "s3://lake/b" };
const COPY_POLICY = [
  listing("lake", "a", "b"),
  st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
  st(["s3:GetObject"], ["arn:aws:s3:::lake/a/*"]),
  st(WRITE, ["arn:aws:s3:::lake/b/*"]),
];

Deno.test("S3TransferExecutor copy and sync read the source and write the destination", () => {
  assert.deepEqual(iamOf(s3Transfer, TRANSFER, ["copy"]), COPY_POLICY);
  assert.deepEqual(iamOf(s3Transfer, TRANSFER, ["sync"]), COPY_POLICY);
  // delete_extraneous deletes at the destination, which writing already allows (a bad upload is deleted)
  assert.deepEqual(iamOf(s3Transfer, { ...TRANSFER, delete_extraneous: true }, ["sync"]), COPY_POLICY);
});

Deno.test("S3TransferExecutor move also deletes at the source", () => {
  const expected = [
    listing("lake", "a", "b"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::lake/a/*"]),
    st(WRITE, ["arn:aws:s3:::lake/b/*"]),
  ];
  assert.deepEqual(iamOf(s3Transfer, TRANSFER, ["move"]), expected);
  assert.deepEqual(iamOf(s3Transfer, TRANSFER, undefined), expected, "no task list: every task");
});

Deno.test("S3TransferExecutor dry_run only reads, both sides", () => {
  for (const task of ["copy", "move", "sync"]) {
    assert.deepEqual(iamOf(s3Transfer, { ...TRANSFER, dry_run: true, delete_extraneous: true }, [task]), [
      listing("lake", "a", "b"),
      st(["s3:GetObject"], ["arn:aws:s3:::lake/a/*", "arn:aws:s3:::lake/b/*"]),
    ]);
  }
});

Deno.test("S3TransferExecutor between local and S3 grants only the S3 side", () => {
  assert.deepEqual(iamOf(s3Transfer, { source: "out", destination: "s3://lake/b" }, ["move"]), [
    listing("lake", "b"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::lake"]),
    st(WRITE, ["arn:aws:s3:::lake/b/*"]),
  ]);
  assert.deepEqual(iamOf(s3Transfer, { source: "s3://lake/a", destination: "in" }, ["copy"]), [
    listing("lake", "a"),
    st(["s3:GetObject"], ["arn:aws:s3:::lake/a/*"]),
  ]);
  assert.deepEqual(iamOf(s3Transfer, { source: "out", destination: "in" }, ["move"]), []);
});

// ---------------------------------------------------------------------------------------------------------
// the command line

/** The document `plan --iam` prints for routines/retail_trade_survey_s3.json (Sids included: they are stable). */
const RETAIL_POLICY: IamPolicy = {
  Version: "2012-10-17",
  Statement: [
    {
      Sid: "S37360a0a4",
      Effect: "Allow",
      Action: ["s3:ListBucket"],
      Resource: ["arn:aws:s3:::my-data-lake"],
      Condition: {
        StringLike: {
          "s3:prefix": [
            "retail_trade_survey/archive",
            "retail_trade_survey/archive/*",
            "retail_trade_survey/landing",
            "retail_trade_survey/landing/*",
            "retail_trade_survey/staging",
            "retail_trade_survey/staging/*",
          ],
        },
      },
    },
    {
      Sid: "S339ff8f7c",
      Effect: "Allow",
      Action: ["s3:ListBucketMultipartUploads"],
      Resource: ["arn:aws:s3:::my-data-lake"],
    },
    {
      Sid: "S3bd9ed24b",
      Effect: "Allow",
      Action: WRITE,
      Resource: [
        "arn:aws:s3:::my-data-lake/retail_trade_survey/archive/*",
        "arn:aws:s3:::my-data-lake/retail_trade_survey/landing/*",
        "arn:aws:s3:::my-data-lake/retail_trade_survey/staging/*",
      ],
    },
  ],
};

Deno.test("lakerun plan --iam prints the policy of routines/retail_trade_survey_s3.json, ready to paste", async () => {
  const result = await lakerun(["plan", "--iam", "routines/retail_trade_survey_s3.json"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  const policy = JSON.parse(result.stdout);
  assert.deepEqual(policy, RETAIL_POLICY);
  assert.equal(iamPolicyProblem(policy), undefined);
  assert.equal(result.stdout, `${JSON.stringify(RETAIL_POLICY, null, 2)}\n`, "pretty JSON, nothing else");
});

Deno.test("lakerun plan --iam --json adds each step's statements and the document to the plan", async () => {
  const result = await lakerun(["plan", "--iam", "--json", "routines/retail_trade_survey_s3.json"]);
  assert.equal(result.code, 0, result.stderr);
  const plan = JSON.parse(result.stdout);
  assert.deepEqual(plan.iam_policy, RETAIL_POLICY);
  assert.deepEqual(plan.steps.map((s: { id: string }) => s.id), ["DownloaderExecutor", "StagingExecutor"]);
  for (const step of plan.steps) assert.ok(step.permissions.net.length > 0, "the plan is still there");
  const strip = (statements: IamStatement[]) => statements.map(({ Sid: _sid, ...rest }) => rest);
  assert.deepEqual(strip(plan.steps[0].iam_statements), [
    listing("my-data-lake", "retail_trade_survey/landing"),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::my-data-lake"]),
    st(WRITE, ["arn:aws:s3:::my-data-lake/retail_trade_survey/landing/*"]),
  ]);
  assert.deepEqual(strip(plan.steps[1].iam_statements), [
    listing(
      "my-data-lake",
      "retail_trade_survey/archive",
      "retail_trade_survey/landing",
      "retail_trade_survey/staging",
    ),
    st(["s3:ListBucketMultipartUploads"], ["arn:aws:s3:::my-data-lake"]),
    st(WRITE, [
      "arn:aws:s3:::my-data-lake/retail_trade_survey/archive/*",
      "arn:aws:s3:::my-data-lake/retail_trade_survey/staging/*",
    ]),
    st(["s3:DeleteObject", "s3:GetObject"], ["arn:aws:s3:::my-data-lake/retail_trade_survey/landing/*"]),
  ]);
  // without --iam, the plan JSON is as it was
  const plain = JSON.parse(
    (await lakerun(["plan", "--json", "routines/retail_trade_survey_s3.json"])).stdout,
  );
  assert.equal(plain.iam_policy, undefined);
  assert.equal(plain.steps[0].iam_statements, undefined);
});

Deno.test("lakerun plan --iam of a local-only routine prints an empty document and says why", async () => {
  const result = await lakerun(["plan", "--iam", "routines/retail_trade_survey.json"]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { Version: "2012-10-17", Statement: [] });
  assert.equal(
    result.stderr.trim(),
    'lakerun: routine "retail_trade_survey" touches no AWS resource: the policy has no statement',
  );
  assert.match((await lakerun(["--help"])).stdout, /plan --iam ROUTINE/);
});

Deno.test("lakerun plan --iam names the plugin steps that reach AWS without declaring iam()", async () => {
  await using dir = await tempDir();
  const plugin = (name: string, net: string[]) =>
    `export default { name: "${name}", description: "test", params: (z) => z.strictObject({}),
      permissions: () => ({ net: ${
      JSON.stringify(net)
    } }), tasks: { go: { description: "go", run: async () => {} } } };\n`;
  await Deno.mkdir(join(dir.path, "plugins"));
  await Deno.writeTextFile(
    join(dir.path, "plugins/AthenaPluginExecutor.ts"),
    plugin("AthenaPluginExecutor", ["athena.eu-west-1.amazonaws.com:443", "sts.eu-west-1.amazonaws.com:443"]),
  );
  await Deno.writeTextFile(
    join(dir.path, "plugins/LocalPluginExecutor.ts"),
    plugin("LocalPluginExecutor", []),
  );
  const routine = {
    routine_name: "mixed",
    s3: { region: "eu-west-1" },
    executors: {
      S3TransferExecutor: { params: { source: "out", destination: "s3://lake/b" }, tasks: ["copy"] },
      query: { executor: "AthenaPluginExecutor", params: {}, tasks: ["go"] },
      local: { executor: "LocalPluginExecutor", params: {}, tasks: ["go"] },
    },
  };
  await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routine));
  const result = await lakerun(["plan", "--iam", "--executors", "plugins", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stderr.trim(),
    'lakerun: not in the policy: "query" (AthenaPluginExecutor, reaches athena.eu-west-1.amazonaws.com:443): ' +
      "its executor declares no IAM statements (no iam()); add what it needs by hand",
  );
  const policy = JSON.parse(result.stdout) as IamPolicy;
  assert.deepEqual(policy.Statement.map((s) => s.Resource), [
    ["arn:aws:s3:::lake"],
    ["arn:aws:s3:::lake"],
    ["arn:aws:s3:::lake/b/*"],
  ]);
});

Deno.test("lakerun plan --iam: Athena reads the step's location and writes results as the caller; what it cannot know is named on stderr", async () => {
  await using dir = await tempDir();
  const step = (params: Record<string, unknown>) => ({
    executor: "AthenaExecutor",
    params: {
      database: "lake",
      table: "events",
      location: "s3://lake-bkt/events/parquet",
      format: "parquet",
      columns: { id: "bigint", name: "string" },
      partitioned_by: { dt: "date" },
      workgroup: "analytics",
      query: "SELECT count(*) FROM lake.events WHERE dt = ?",
      parameters: ["2024-05-01"],
      ...params,
    },
    tasks: ["create_table", "add_partitions", "query"],
  });
  const plan = async (params: Record<string, unknown>) => {
    const routine = { routine_name: "athena", aws: { region: "eu-west-1" }, executors: { p: step(params) } };
    await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routine));
    const result = await lakerun(["plan", "--iam", "r.json"], { cwd: dir.path });
    assert.equal(result.code, 0, result.stderr);
    const policy = JSON.parse(result.stdout) as IamPolicy;
    assert.equal(iamPolicyProblem(policy), undefined);
    return { policy, stderr: result.stderr.trim().split("\n") };
  };
  const location = [
    "s3:GetObject arn:aws:s3:::lake-bkt/events/parquet/*",
    "s3:ListBucket arn:aws:s3:::lake-bkt",
  ];
  const results = [
    "s3:GetBucketLocation arn:aws:s3:::athena-results",
    "s3:ListBucket arn:aws:s3:::athena-results",
    "s3:ListBucketMultipartUploads arn:aws:s3:::athena-results",
    "s3:AbortMultipartUpload arn:aws:s3:::athena-results/lake/*",
    "s3:GetObject arn:aws:s3:::athena-results/lake/*",
    "s3:ListMultipartUploadParts arn:aws:s3:::athena-results/lake/*",
    "s3:PutObject arn:aws:s3:::athena-results/lake/*",
  ];
  const tables =
    'lakerun: not in the policy: step "p" (AthenaExecutor): the tables the query reads: granted ' +
    'are Glue reads in database "lake" and S3 reads under s3://lake-bkt/events/parquet; a table in another ' +
    "database or location needs glue:GetTable and glue:GetPartitions on it, and s3:GetObject and " +
    "s3:ListBucket on its location";

  // no output_location: the workgroup's result location is unknown, and said so
  const workgroup = await plan({});
  assert.deepEqual(grantsOf(workgroup.policy).filter((g) => g.startsWith("s3:")).sort(), location.sort());
  assert.ok(
    workgroup.policy.Statement.some((s) =>
      s.Action.join() === "s3:ListBucket" &&
      s.Condition?.StringLike?.["s3:prefix"]?.join() === "events/parquet,events/parquet/*"
    ),
    "the data bucket is listed only under the location",
  );
  assert.deepEqual(workgroup.stderr, [
    'lakerun: not in the policy: step "p" (AthenaExecutor): query results: workgroup "analytics" sets where ' +
    "they go (no output_location): grant s3:GetBucketLocation, s3:ListBucket and " +
    "s3:ListBucketMultipartUploads on its bucket, and s3:GetObject, s3:PutObject, s3:AbortMultipartUpload " +
    "and s3:ListMultipartUploadParts under it",
    tables,
  ]);

  // output_location: every grant Athena's documented results policy has there
  const output = await plan({ output_location: "s3://athena-results/lake/" });
  assert.deepEqual(
    grantsOf(output.policy).filter((g) => g.startsWith("s3:")).sort(),
    [...location, ...results].sort(),
  );
  assert.deepEqual(output.stderr, [tables]);

  // no query task: no table is read through Athena, nothing to say beyond the result location
  const routine = {
    routine_name: "athena",
    aws: { region: "eu-west-1" },
    executors: {
      p: { ...step({ output_location: "s3://athena-results/lake/" }), tasks: ["add_partitions"] },
    },
  };
  await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routine));
  const partitions = await lakerun(["plan", "--iam", "r.json"], { cwd: dir.path });
  assert.equal(partitions.code, 0, partitions.stderr);
  assert.equal(partitions.stderr, "");
  assert.ok(!partitions.stdout.includes("arn:aws:s3:::lake-bkt/events/parquet/*"), "no object is read");
});

/** True when `union` grants every action on every resource of `statement` (under a condition at most as wide). */
function covers(union: IamPolicy, statement: IamStatement): boolean {
  return statement.Action.every((action) =>
    statement.Resource.every((resource) =>
      union.Statement.some((u) =>
        u.Action.includes(action) && u.Resource.includes(resource) &&
        (u.Condition === undefined ||
          Object.entries(statement.Condition ?? {}).length > 0 &&
            Object.entries(statement.Condition ?? {}).every(([op, keys]) =>
              Object.entries(keys).every(([key, values]) =>
                values.every((v) => u.Condition?.[op]?.[key]?.includes(v))
              )
            ))
      )
    )
  );
}

Deno.test("lakerun plan --iam of a routine with every AWS executor: the union of each step's statements", async () => {
  const athena = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_athena.json")));
  const redshift = JSON.parse(
    await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_redshift.json")),
  );
  const routine = {
    routine_name: "everything",
    aws: athena.aws,
    executors: {
      ...athena.executors,
      RedshiftExecutor: redshift.executors.RedshiftExecutor,
      S3TransferExecutor: {
        params: {
          source: "s3://my-data-lake/retail_trade_survey/staging",
          destination: "s3://backup-lake/staging",
        },
        tasks: ["sync"],
      },
    },
  };
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routine));
  const result = await lakerun(["plan", "--iam", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    result.stderr.trim().split("\n").map((line) => line.slice(0, line.indexOf(": the tables"))),
    ['lakerun: not in the policy: step "AthenaExecutor" (AthenaExecutor)'],
    "every executor declares its statements; the tables its SQL reads are Athena's one note",
  );
  const policy = JSON.parse(result.stdout) as IamPolicy;
  assert.equal(iamPolicyProblem(policy), undefined);
  const again = await lakerun(["plan", "--iam", "r.json"], { cwd: dir.path });
  assert.equal(again.stdout, result.stdout, "the same document, Sids included, on every run");

  const plan = JSON.parse((await lakerun(["plan", "--iam", "--json", "r.json"], { cwd: dir.path })).stdout);
  assert.deepEqual(plan.iam_policy, policy);
  assert.deepEqual(plan.steps.map((step: { executor: string }) => step.executor), [
    "DownloaderExecutor",
    "StagingExecutor",
    "AthenaExecutor",
    "GlueExecutor",
    "RedshiftExecutor",
    "S3TransferExecutor",
  ]);
  for (const step of plan.steps as Array<{ id: string; iam_statements: IamStatement[] }>) {
    assert.ok(step.iam_statements.length > 0, `${step.id} contributes statements`);
    for (const statement of step.iam_statements) {
      assert.ok(covers(policy, statement), `${step.id}: ${JSON.stringify(statement)} is in the document`);
    }
  }
  const grants = new Set(grantsOf(policy));
  for (
    const grant of [
      "athena:StartQueryExecution arn:aws:athena:ap-southeast-2:*:workgroup/primary",
      "glue:StartJobRun arn:aws:glue:ap-southeast-2:*:job/retail-trade-survey-to-parquet",
      "glue:BatchStopJobRun arn:aws:glue:ap-southeast-2:*:job/retail-trade-survey-to-parquet",
      "glue:CreateTable arn:aws:glue:ap-southeast-2:*:database/retail",
      "s3:PutObject arn:aws:s3:::backup-lake/staging/*",
      "s3:GetObject arn:aws:s3:::my-data-lake/retail_trade_survey/staging/*",
    ]
  ) {
    assert.ok(grants.has(grant), `${grant} in ${JSON.stringify(policy, null, 1)}`);
  }
  assert.ok([...grants].some((g) => g.startsWith("redshift-data:ExecuteStatement ")), "Redshift Data API");
  // the backup bucket is listed only under its prefix
  assert.ok(
    policy.Statement.some((s) =>
      s.Resource.includes("arn:aws:s3:::backup-lake") && s.Action.includes("s3:ListBucket") &&
      s.Condition?.StringLike?.["s3:prefix"]?.join() === "staging,staging/*"
    ),
  );
});

// ---------------------------------------------------------------------------------------------------------
// the printed policy against what lakerun really sends

/** One request lakerun sent to S3, as the recording proxy saw it. */
interface S3Call {
  method: string;
  /** The path as sent (path-style: `/bucket/key`, percent-encoded). */
  path: string;
  query: URLSearchParams;
  copySource?: string;
  /** The request body, kept for DeleteObjects only. */
  body?: string;
  status: number;
}

/**
 * A proxy on loopback in front of the S3 server that records every request. It forwards the `Host` header
 * unchanged (node:http; fetch would replace it), so the SigV4 signatures made for the proxy's address hold.
 */
function startRecordingProxy(target: string) {
  const upstream = new URL(target);
  const calls: S3Call[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = request.url.slice(request.url.indexOf("/", "http://".length));
    const body = new Uint8Array(await request.arrayBuffer());
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => (headers[name] = value));
    delete headers["transfer-encoding"];
    if (body.byteLength > 0 || ["PUT", "POST"].includes(request.method)) {
      headers["content-length"] = String(body.byteLength);
    }
    const response = await new Promise<
      { status: number; headers: [string, string][]; body: Uint8Array<ArrayBuffer> }
    >(
      (resolve, reject) => {
        const forwarded = http.request({
          host: upstream.hostname,
          port: Number(upstream.port),
          method: request.method,
          path,
          headers,
        }, (res) => {
          const chunks: Uint8Array[] = [];
          res.on("data", (chunk: Uint8Array) => chunks.push(chunk));
          res.on("end", () => {
            const pairs: [string, string][] = [];
            for (let i = 0; i < res.rawHeaders.length; i += 2) {
              pairs.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
            }
            resolve({ status: res.statusCode!, headers: pairs, body: concat(chunks) });
          });
          res.on("error", reject);
        });
        forwarded.on("error", reject);
        forwarded.end(body);
      },
    );
    const [pathname, search = ""] = path.split("?", 2);
    calls.push({
      method: request.method,
      path: pathname,
      query: new URLSearchParams(search),
      copySource: request.headers.get("x-amz-copy-source") ?? undefined,
      body: request.method === "POST" && new URLSearchParams(search).has("delete")
        ? new TextDecoder().decode(body)
        : undefined,
      status: response.status,
    });
    const noBody = request.method === "HEAD" || response.status === 204 || response.status === 304;
    const skip = new Set([
      "transfer-encoding",
      "connection",
      "keep-alive",
      ...(noBody ? [] : ["content-length"]),
    ]);
    return new Response(noBody ? null : response.body, {
      status: response.status,
      headers: response.headers.filter(([name]) => !skip.has(name.toLowerCase())),
    });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    calls,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function concat(chunks: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** What IAM authorizes for one request: an action on a resource, with `s3:prefix` when the request has one. */
interface Authorization {
  action: string;
  resource: string;
  prefix?: string;
  /** The S3 operation, for messages. */
  operation: string;
}

/** The authorizations S3 makes for a request (the S3 API reference's "Permissions" of each operation). */
function authorizationsOf(call: S3Call): Authorization[] {
  const [bucket, ...rest] = call.path.slice(1).split("/");
  const key = rest.map(decodeURIComponent).join("/");
  const bucketArn = `arn:aws:s3:::${decodeURIComponent(bucket)}`;
  const objectArn = `${bucketArn}/${key}`;
  const q = call.query;
  const one = (operation: string, action: string, resource: string, prefix?: string) => ({
    operation,
    action,
    resource,
    ...(prefix !== undefined ? { prefix } : {}),
  });
  if (rest.length === 0 || key === "") {
    if (call.method === "HEAD") return [one("HeadBucket", "s3:ListBucket", bucketArn)];
    if (call.method === "GET" && q.has("uploads")) {
      return [one("ListMultipartUploads", "s3:ListBucketMultipartUploads", bucketArn)];
    }
    if (call.method === "GET" && q.get("list-type") === "2") {
      // the request's `prefix` is IAM's s3:prefix (absent: only a grant with no condition allows it); a
      // one-key listing is how lakerun tells a missing bucket from a missing key (see checkBucket)
      const operation = q.get("max-keys") === "1" ? "ListObjectsV2 (one key)" : "ListObjectsV2";
      return [one(operation, "s3:ListBucket", bucketArn, q.get("prefix") ?? undefined)];
    }
    if (call.method === "POST" && q.has("delete")) {
      const keys = [...(call.body ?? "").matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) =>
        m[1].replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'")
          .replace(/&amp;/g, "&")
      );
      return keys.map((k) => one("DeleteObjects", "s3:DeleteObject", `${bucketArn}/${k}`));
    }
  } else {
    if (call.method === "HEAD") {
      // a missing key answers 404 only to those who may list it (S3 takes the key as s3:prefix), else 403
      return [
        one("HeadObject", "s3:GetObject", objectArn),
        ...(call.status === 404 ? [one("HeadObject (404)", "s3:ListBucket", bucketArn, key)] : []),
      ];
    }
    if (call.method === "GET" && !q.has("uploadId")) return [one("GetObject", "s3:GetObject", objectArn)];
    if (call.method === "PUT" && call.copySource) {
      const source = decodeURIComponent(call.copySource.replace(/^\//, "").split("?")[0]);
      const operation = q.has("uploadId") ? "UploadPartCopy" : "CopyObject";
      return [
        one(operation, "s3:PutObject", objectArn),
        one(operation, "s3:GetObject", `arn:aws:s3:::${source}`),
      ];
    }
    if (call.method === "PUT") {
      return [one(q.has("uploadId") ? "UploadPart" : "PutObject", "s3:PutObject", objectArn)];
    }
    if (call.method === "POST" && q.has("uploads")) {
      return [one("CreateMultipartUpload", "s3:PutObject", objectArn)];
    }
    if (call.method === "POST" && q.has("uploadId")) {
      return [one("CompleteMultipartUpload", "s3:PutObject", objectArn)];
    }
    if (call.method === "DELETE" && q.has("uploadId")) {
      return [one("AbortMultipartUpload", "s3:AbortMultipartUpload", objectArn)];
    }
    if (call.method === "DELETE") return [one("DeleteObject", "s3:DeleteObject", objectArn)];
  }
  throw new Error(`a request this test cannot map to IAM actions: ${call.method} ${call.path}?${q}`);
}

/** IAM's string matching: `*` any run, `?` one character, `${*}` `${?}` `${$}` the characters themselves. */
function iamMatches(pattern: string, text: string): boolean {
  const source = pattern.split(/(\$\{[*?$]\})/).map((part) =>
    /^\$\{[*?$]\}$/.test(part)
      ? part[2].replace(/[$*?]/, "\\$&")
      : part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")
  ).join("");
  return new RegExp(`^${source}$`, "s").test(text);
}

/** The grants (`action resource-pattern`) of `policy` that allow `auth`; none when it is denied. */
function grantsFor(policy: IamPolicy, auth: Authorization): string[] {
  const grants: string[] = [];
  for (const statement of policy.Statement) {
    const conditionHolds = Object.entries(statement.Condition ?? {}).every(([op, keys]) => {
      assert.equal(op, "StringLike", `this test evaluates StringLike only, not ${op}`);
      return Object.entries(keys).every(([key, values]) => {
        assert.equal(key, "s3:prefix", `this test evaluates s3:prefix only, not ${key}`);
        return auth.prefix !== undefined && values.some((v) => iamMatches(v, auth.prefix!));
      });
    });
    if (!conditionHolds || !statement.Action.includes(auth.action)) continue;
    for (const resource of statement.Resource) {
      if (iamMatches(resource, auth.resource)) grants.push(`${auth.action} ${resource}`);
    }
  }
  return grants;
}

/** Every grant of a policy, as `action resource-pattern`. */
function grantsOf(policy: IamPolicy): string[] {
  return policy.Statement.flatMap((s) => s.Action.flatMap((a) => s.Resource.map((r) => `${a} ${r}`)));
}

/** The S3 server of the tests below, started on first use (stopped by the file's last test). */
let s3ServerStarted: Promise<S3TestServer> | undefined;
function s3Server(): Promise<S3TestServer> {
  s3ServerStarted ??= startS3ServerForLakerun();
  return s3ServerStarted;
}

/** `lakerun plan --iam FILE` in `cwd`, parsed. */
async function printedPolicy(file: string, cwd: string): Promise<IamPolicy> {
  const printed = await lakerun(["plan", "--iam", file], { cwd });
  assert.equal(printed.code, 0, printed.stderr);
  return JSON.parse(printed.stdout);
}

/** Runs `routine` in `cwd` and returns the authorizations of the requests it sent through `proxy`. */
async function requestsOf(
  proxy: { calls: S3Call[] },
  routine: unknown,
  cwd: string,
): Promise<Authorization[]> {
  const before = proxy.calls.length;
  const { error, lines } = await runRoutineJson(routine, { cwd });
  assert.equal(error, undefined, lines.join("\n"));
  return proxy.calls.slice(before).flatMap(authorizationsOf);
}

Deno.test({
  name:
    "the policy plan --iam prints allows every request a real run of the S3 routine sends, and little more",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await s3Server();
    {
      const bucket = await createTestBucket(server, "iam");
      await using proxy = startRecordingProxy(server.endpoint);
      await using dir = await tempDir();
      const { archive } = surveyArchive();
      const nextQuarter = buildZip([{ name: "sales.csv", data: csvText(1000, 9) }]);
      const text = await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_s3.json"));
      const routineFor = (url: string) => {
        const routine = JSON.parse(text.replaceAll("s3://my-data-lake/", `s3://${bucket}/`));
        routine.executors.DownloaderExecutor.params.requests_arguments.url = url;
        routine.s3 = { endpoint: proxy.endpoint, region: server.region };
        return routine;
      };

      // the policy a user would paste, printed for this very routine, and each step's own statements
      await using web = await startFaultServer({
        "/a.zip": { body: archive },
        "/b.zip": { body: nextQuarter },
      });
      await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(routineFor(web.url("/a.zip"))));
      const printed = await lakerun(["plan", "--iam", "r.json"], { cwd: dir.path });
      assert.equal(printed.code, 0, printed.stderr);
      const policy = JSON.parse(printed.stdout) as IamPolicy;
      // each step of the routine, and each task of StagingExecutor, as a step of its own: its requests are
      // checked against its own statements (`plan --iam --json`)
      const split = (url: string) => {
        const routine = routineFor(url);
        const staging = routine.executors.StagingExecutor;
        routine.executors = {
          DownloaderExecutor: routine.executors.DownloaderExecutor,
          transfer: { executor: "StagingExecutor", params: staging.params, tasks: ["transfer"] },
          post_staging: { executor: "StagingExecutor", params: staging.params, tasks: ["post_staging"] },
        };
        return routine;
      };
      await Deno.writeTextFile(join(dir.path, "split.json"), JSON.stringify(split(web.url("/a.zip"))));
      const planned = await lakerun(["plan", "--iam", "--json", "split.json"], { cwd: dir.path });
      assert.equal(planned.code, 0, planned.stderr);
      const plan = JSON.parse(planned.stdout);
      const steps: string[] = plan.steps.map((step: { id: string }) => step.id);
      assert.deepEqual(steps, ["DownloaderExecutor", "transfer", "post_staging"]);
      const stepPolicy = (i: number): IamPolicy => ({
        Version: "2012-10-17",
        Statement: plan.steps[i].iam_statements,
      });
      assert.deepEqual(
        mergeStatements(plan.steps.flatMap((s: { iam_statements: IamStatement[] }) => s.iam_statements)),
        policy,
      );

      // the first quarter; the same archive again (already staged, already archived); the next quarter
      // (staging overwritten, the archived file kept and the new one archived under a stamped name)
      const requests: Authorization[][] = steps.map(() => []);
      for (const path of ["/a.zip", "/a.zip", "/b.zip"]) {
        for (const [i, id] of steps.entries()) {
          const routine = split(web.url(path));
          routine.executors = { [id]: routine.executors[id] };
          const before = proxy.calls.length;
          const { error, lines } = await runRoutineJson(routine, { cwd: dir.path });
          assert.equal(error, undefined, lines.join("\n"));
          requests[i].push(...proxy.calls.slice(before).flatMap(authorizationsOf));
        }
      }
      const authorizations = requests.flat();
      if (Deno.env.get("IAM_TEST_DEBUG")) {
        const counts: Record<string, number> = {};
        for (const a of authorizations) {
          counts[`${a.operation} ${a.action}`] = (counts[`${a.operation} ${a.action}`] ?? 0) + 1;
        }
        console.log(proxy.calls.length, counts);
      }
      const operations = new Set(authorizations.map((a) => a.operation));
      for (
        const expected of [
          "ListObjectsV2",
          "CompleteMultipartUpload",
        ]
      ) {
        assert.ok(operations.has(expected), `${expected} was sent: ${[...operations].join(", ")}`);
      }
      // a HeadObject 404 is told from a missing bucket by a one-key listing of the location's own prefix, never
      // by HeadBucket (which needs ListBucket on the whole bucket)
      assert.ok(!operations.has("HeadBucket"), `HeadBucket was not sent: ${[...operations].join(", ")}`);
      const oneKey = authorizations.filter((a) => a.operation === "ListObjectsV2 (one key)");
      for (const a of oneKey) {
        assert.ok(
          ["retail_trade_survey/archive/", "retail_trade_survey/staging/"].includes(a.prefix ?? ""),
          `a probed location is listed under its own prefix: ${a.prefix}`,
        );
      }
      for (const a of oneKey) {
        assert.deepEqual(grantsFor(policy, a), [`s3:ListBucket arn:aws:s3:::${bucket}`]);
      }
      for (const [i, id] of steps.entries()) {
        const denied = requests[i].filter((a) => grantsFor(stepPolicy(i), a).length === 0);
        assert.deepEqual(denied, [], `every request of ${id} is allowed by its own statements`);
      }
      const denied = authorizations.filter((a) => grantsFor(policy, a).length === 0);
      assert.deepEqual(denied, [], "every request is allowed by the printed policy");
      // and that policy lists the bucket only under the routine's three prefixes: no grant on the whole bucket
      const listBucket = policy.Statement.filter((s) => s.Action.includes("s3:ListBucket"));
      assert.deepEqual(listBucket.map((s) => s.Condition), [{
        StringLike: {
          "s3:prefix": ["archive", "archive/*", "landing", "landing/*", "staging", "staging/*"]
            .map((p) => `retail_trade_survey/${p}`),
        },
      }]);
      // the condition is what allows the listings: limited to another prefix, exactly they are denied
      const elsewhere = mergeStatements([
        ...policy.Statement.map((s) => ({ ...s, Action: s.Action.filter((a) => a !== "s3:ListBucket") }))
          .filter((s) => s.Action.length > 0),
        ...s3Statements(`s3://${bucket}/elsewhere`, "read").slice(0, 1),
      ]);
      const deniedElsewhere = new Set(
        authorizations.filter((a) => grantsFor(elsewhere, a).length === 0).map((a) => a.operation),
      );
      assert.ok(deniedElsewhere.has("ListObjectsV2"), "the listings need the prefix condition");
      for (const operation of deniedElsewhere) {
        assert.ok(
          ["HeadObject (404)", "ListObjectsV2", "ListObjectsV2 (one key)"].includes(operation),
          `only listings and lookups of missing keys depend on the condition, not ${operation}`,
        );
      }

      // nothing more: every grant of a step was used by that step, but those only failures need (listing and
      // aborting the uploads a killed run recorded, deleting an object whose stored bytes differ from those sent)
      const unused = (i: number) => {
        const used = new Set(requests[i].flatMap((a) => grantsFor(stepPolicy(i), a)));
        return grantsOf(stepPolicy(i)).filter((g) => !used.has(g)).sort();
      };
      const base = `arn:aws:s3:::${bucket}/retail_trade_survey`;
      assert.deepEqual(unused(0), [
        `s3:AbortMultipartUpload ${base}/landing/*`,
        `s3:DeleteObject ${base}/landing/*`,
        `s3:ListBucketMultipartUploads arn:aws:s3:::${bucket}`,
      ]);
      assert.deepEqual(unused(1), [
        `s3:AbortMultipartUpload ${base}/staging/*`,
        `s3:DeleteObject ${base}/staging/*`,
        `s3:ListBucketMultipartUploads arn:aws:s3:::${bucket}`,
      ]);
      assert.deepEqual(unused(2), [
        `s3:AbortMultipartUpload ${base}/archive/*`,
        `s3:DeleteObject ${base}/archive/*`,
        `s3:ListBucketMultipartUploads arn:aws:s3:::${bucket}`,
      ]);
      const retail = JSON.parse(
        JSON.stringify(RETAIL_POLICY).replaceAll("my-data-lake", bucket),
      ) as IamPolicy;
      const withoutSids = (p: IamPolicy) => p.Statement.map(({ Sid: _sid, ...rest }) => rest);
      assert.deepEqual(withoutSids(policy), withoutSids(retail), "the policy of the routine in routines/");
    }
  },
});

Deno.test({
  name: "DownloaderExecutor's policy allows what a download to an S3 key, or into an S3 folder, sends",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await s3Server();
    const bucket = await createTestBucket(server, "iam-key");
    await using proxy = startRecordingProxy(server.endpoint);
    await using dir = await tempDir();
    await using web = await startFaultServer({ "/files/survey.zip": { body: surveyArchive().archive } });
    const routine = (landing: string) => ({
      routine_name: "download",
      s3: { endpoint: proxy.endpoint, region: server.region },
      executors: {
        DownloaderExecutor: {
          params: { requests_arguments: { url: web.url("/files/survey.zip") }, landing_directory: landing },
          tasks: ["download"],
        },
      },
    });
    const direct = openS3Location(`s3://${bucket}`, { endpoint: server.endpoint, region: server.region });

    // a prefix holding no object: landing_directory is the key (written twice: the second replaces it)
    await Deno.writeTextFile(
      join(dir.path, "key.json"),
      JSON.stringify(routine(`s3://${bucket}/raw/survey.zip`)),
    );
    const keyPolicy = await printedPolicy("key.json", dir.path);
    for (let run = 0; run < 2; run++) {
      const sent = await requestsOf(proxy, routine(`s3://${bucket}/raw/survey.zip`), dir.path);
      assert.deepEqual(sent.filter((a) => grantsFor(keyPolicy, a).length === 0), []);
      assert.ok(sent.some((a) => a.operation === "CompleteMultipartUpload"));
    }
    assert.ok(await direct.stat("raw/survey.zip"), "landed at the key");

    // a prefix that holds objects is a folder: the URL's file name is written in it
    await direct.write("in/old.csv", new Blob(["old\n"]).stream());
    await Deno.writeTextFile(join(dir.path, "folder.json"), JSON.stringify(routine(`s3://${bucket}/in`)));
    const folderPolicy = await printedPolicy("folder.json", dir.path);
    // plan cannot know which it will be: both are granted
    const writes = folderPolicy.Statement.find((st) => st.Action.includes("s3:PutObject"))!;
    assert.deepEqual(writes.Resource, [`arn:aws:s3:::${bucket}/in`, `arn:aws:s3:::${bucket}/in/*`]);
    const sent = await requestsOf(proxy, routine(`s3://${bucket}/in`), dir.path);
    assert.deepEqual(sent.filter((a) => grantsFor(folderPolicy, a).length === 0), []);
    assert.ok(await direct.stat("in/survey.zip"), "landed in the folder");
  },
});

Deno.test({
  name: "(stop the S3 server of the tests above)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    if (!s3ServerStarted) return;
    closeS3Clients();
    await (await s3ServerStarted).stop();
  },
});

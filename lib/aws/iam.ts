/**
 * Least privilege on the AWS side: the IAM policy statements a step needs, computed from its params, so that
 * `lakerun plan --iam ROUTINE` prints the policy document the routine needs and nothing more.
 *
 * - Executors build statements with {@link s3Statements} (what lakerun's S3 storage really sends for reading,
 *   writing or deleting under a prefix), {@link allow} and the ARN helpers ({@link athenaWorkgroupArn},
 *   {@link glueDatabaseArn}, {@link glueTableArn}, {@link glueJobArn}, {@link glueCrawlerArn}, …).
 * - {@link mergeStatements} turns the statements of every step into one document: the same grant is written
 *   once, actions and resources are sorted and unique, and each statement gets a `Sid` derived from its
 *   content, so that the document is the same from run to run.
 *
 * lakerun does not know the AWS account: every ARN has `*` in its account field (S3 ARNs have none). The
 * partition follows the region (`aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`); an unknown region is `*`.
 *
 * @module
 */
import { sha256Hex } from "../sha256.ts";
import { canonicalJson } from "../canonical_json.ts";
import { parseS3Url } from "./s3/url.ts";

/** One statement of an IAM policy document (always `Allow`). */
export interface IamStatement {
  /** A short id saying what the statement is for (`[A-Za-z0-9]`, unique in the document once merged). */
  Sid?: string;
  Effect: "Allow";
  /** Actions such as `s3:GetObject`, sorted. */
  Action: string[];
  /** ARNs, sorted. */
  Resource: string[];
  /** Conditions (e.g. `s3:prefix` on ListBucket). */
  Condition?: Record<string, Record<string, string[]>>;
}

/** An IAM policy document. */
export interface IamPolicy {
  Version: "2012-10-17";
  Statement: IamStatement[];
}

/**
 * What a step does under an S3 location, for {@link s3Statements}: `read` objects, `write` them, `delete`
 * them, or `probe` for keys that may be missing (the same grants as `read`).
 */
export type S3Access = "read" | "write" | "delete" | "probe";

/**
 * An `Allow` statement of `actions` on `resources` (sorted and unique), with an optional condition.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allow } from "./iam.ts";
 *
 * assert.deepEqual(allow(["glue:GetTable", "glue:GetDatabase", "glue:GetTable"], ["arn:aws:glue:*:*:catalog"]), {
 *   Effect: "Allow",
 *   Action: ["glue:GetDatabase", "glue:GetTable"],
 *   Resource: ["arn:aws:glue:*:*:catalog"],
 * });
 * ```
 */
export function allow(
  actions: readonly string[],
  resources: readonly string[],
  condition?: Record<string, Record<string, readonly string[]>>,
): IamStatement {
  const statement: IamStatement = {
    Effect: "Allow",
    Action: sortedUnique(actions),
    Resource: sortedUnique(resources),
  };
  if (condition && Object.keys(condition).length > 0) {
    statement.Condition = Object.fromEntries(
      Object.entries(condition).map(([op, keys]) => [
        op,
        Object.fromEntries(Object.entries(keys).map(([key, values]) => [key, sortedUnique(values)])),
      ]),
    );
  }
  return statement;
}

/**
 * The partition of a region's ARNs: `aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`, else `aws`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsPartition } from "./iam.ts";
 *
 * assert.equal(awsPartition("eu-west-1"), "aws");
 * assert.equal(awsPartition("cn-north-1"), "aws-cn");
 * assert.equal(awsPartition(undefined), "aws");
 * ```
 */
export function awsPartition(region: string | undefined): string {
  if (region?.startsWith("cn-")) return "aws-cn";
  if (region?.startsWith("us-gov-")) return "aws-us-gov";
  return "aws";
}

/**
 * The ARN of a regional resource in any account: `arn:PARTITION:SERVICE:REGION:*:RESOURCE`, with region `*`
 * when it is unknown. `resource` is used as given (its `*` and `?` are wildcards).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsArn } from "./iam.ts";
 *
 * assert.equal(awsArn("redshift", "eu-west-1", "cluster:analytics"), "arn:aws:redshift:eu-west-1:*:cluster:analytics");
 * assert.equal(awsArn("athena", undefined, "workgroup/primary"), "arn:aws:athena:*:*:workgroup/primary");
 * ```
 */
export function awsArn(service: string, region: string | undefined, resource: string): string {
  return `arn:${awsPartition(region)}:${service}:${region || "*"}:*:${resource}`;
}

/**
 * The ARN of an Athena workgroup (StartQueryExecution, GetQueryExecution, GetQueryResults and
 * StopQueryExecution are authorized on it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { athenaWorkgroupArn } from "./iam.ts";
 *
 * assert.equal(athenaWorkgroupArn("eu-west-1", "primary"), "arn:aws:athena:eu-west-1:*:workgroup/primary");
 * ```
 */
export function athenaWorkgroupArn(region: string | undefined, workgroup: string): string {
  return awsArn("athena", region, `workgroup/${literal(workgroup)}`);
}

/**
 * The ARN of the Glue Data Catalog of the region (every catalog action needs it besides the database and
 * table ARNs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueCatalogArn } from "./iam.ts";
 *
 * assert.equal(glueCatalogArn("eu-west-1"), "arn:aws:glue:eu-west-1:*:catalog");
 * ```
 */
export function glueCatalogArn(region: string | undefined): string {
  return awsArn("glue", region, "catalog");
}

/**
 * The ARN of a Glue database.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueDatabaseArn } from "./iam.ts";
 *
 * assert.equal(glueDatabaseArn("eu-west-1", "retail"), "arn:aws:glue:eu-west-1:*:database/retail");
 * ```
 */
export function glueDatabaseArn(region: string | undefined, database: string): string {
  return awsArn("glue", region, `database/${literal(database)}`);
}

/**
 * The ARN of a Glue table; `table` `"*"` means every table of the database.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueTableArn } from "./iam.ts";
 *
 * assert.equal(glueTableArn("eu-west-1", "retail", "sales"), "arn:aws:glue:eu-west-1:*:table/retail/sales");
 * assert.equal(glueTableArn(undefined, "retail", "*"), "arn:aws:glue:*:*:table/retail/*");
 * ```
 */
export function glueTableArn(region: string | undefined, database: string, table: string): string {
  return awsArn("glue", region, `table/${literal(database)}/${table === "*" ? "*" : literal(table)}`);
}

/**
 * The ARN of a Glue job (StartJobRun, GetJobRun, GetJobRuns and BatchStopJobRun are authorized on it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueJobArn } from "./iam.ts";
 *
 * assert.equal(glueJobArn("eu-west-1", "clean-sales"), "arn:aws:glue:eu-west-1:*:job/clean-sales");
 * ```
 */
export function glueJobArn(region: string | undefined, job: string): string {
  return awsArn("glue", region, `job/${literal(job)}`);
}

/**
 * The ARN of a Glue crawler (StartCrawler, GetCrawler, StopCrawler).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueCrawlerArn } from "./iam.ts";
 *
 * assert.equal(glueCrawlerArn("eu-west-1", "raw-sales"), "arn:aws:glue:eu-west-1:*:crawler/raw-sales");
 * ```
 */
export function glueCrawlerArn(region: string | undefined, crawler: string): string {
  return awsArn("glue", region, `crawler/${literal(crawler)}`);
}

/**
 * The ARNs of `s3://bucket/prefix`: the bucket's, and its objects' (`…/prefix/*`, or `…/*` for the whole
 * bucket).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3Arns } from "./iam.ts";
 *
 * assert.deepEqual(s3Arns("s3://lake/raw"), { bucket: "arn:aws:s3:::lake", objects: "arn:aws:s3:::lake/raw/*" });
 * assert.equal(s3Arns("s3://lake", { region: "cn-north-1" }).objects, "arn:aws-cn:s3:::lake/*");
 * ```
 */
export function s3Arns(url: string, options: { region?: string } = {}): { bucket: string; objects: string } {
  const { bucket, prefix } = parseS3Url(url);
  const base = `arn:${awsPartition(options.region)}:s3:::${bucket}`;
  return { bucket: base, objects: prefix ? `${base}/${literal(prefix)}/*` : `${base}/*` };
}

/**
 * The ARN of the one object `s3://bucket/key`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3ObjectArn } from "./iam.ts";
 *
 * assert.equal(s3ObjectArn("s3://lake/raw/sales.csv"), "arn:aws:s3:::lake/raw/sales.csv");
 * assert.throws(() => s3ObjectArn("s3://lake"), /names no object/);
 * ```
 */
export function s3ObjectArn(url: string, options: { region?: string } = {}): string {
  const { bucket, prefix } = parseS3Url(url);
  if (!prefix) throw new Error(`${JSON.stringify(url)} names no object (no key after the bucket)`);
  return `arn:${awsPartition(options.region)}:s3:::${bucket}/${literal(prefix)}`;
}

/**
 * `s3:ListBucket` on the bucket of `s3://bucket/prefix`, limited by `s3:prefix` to `PREFIX` and `PREFIX/*`
 * (unlimited for the whole bucket): what listing the location needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3ListStatement } from "./iam.ts";
 *
 * assert.deepEqual(s3ListStatement("s3://lake/raw").Condition, { StringLike: { "s3:prefix": ["raw", "raw/*"] } });
 * assert.equal(s3ListStatement("s3://lake").Condition, undefined);
 * ```
 */
export function s3ListStatement(url: string, options: { region?: string } = {}): IamStatement {
  const { prefix } = parseS3Url(url);
  const { bucket } = s3Arns(url, options);
  return prefix
    ? allow(["s3:ListBucket"], [bucket], {
      StringLike: { "s3:prefix": [literal(prefix), `${literal(prefix)}/*`] },
    })
    : allow(["s3:ListBucket"], [bucket]);
}

/**
 * The statements lakerun's S3 storage (lib/aws/s3/storage.ts) needs to `access` the objects under
 * `s3://bucket/prefix`, checked against the requests it sends:
 *
 * - always `s3:ListBucket` on the bucket, limited by `s3:prefix` to `PREFIX` and `PREFIX/*` (no condition for
 *   the whole bucket): listings (ListObjectsV2 with `Prefix: "PREFIX/"`), and a HeadObject of a missing key
 *   answers 404 only with it (S3 then takes the key as `s3:prefix`), 403 without;
 * - `"read"`: `s3:GetObject` on `PREFIX/*` (GetObject, ranged GetObject, HeadObject; the source of
 *   CopyObject/UploadPartCopy);
 * - `"write"`: `s3:PutObject` (PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload; the
 *   destination of CopyObject/UploadPartCopy), `s3:AbortMultipartUpload` (failed and aborted uploads),
 *   `s3:GetObject` (every completed multipart upload or copy is checked with a HeadObject of its size and
 *   ETag), `s3:DeleteObject` (an object stored with another size or ETag than was sent is deleted), all on
 *   `PREFIX/*`, and `s3:ListBucketMultipartUploads` on the bucket (aborting the unfinished uploads a killed
 *   run left under the prefix; this action knows no `s3:prefix` condition, so it has none);
 * - `"delete"`: `s3:DeleteObject` on `PREFIX/*` (DeleteObject, DeleteObjects);
 * - `"probe"`: for steps that stat keys which may not exist (is the copy already there?): the same as
 *   `"read"`. A HeadObject of a missing key answers 404 (not 403) only with `s3:ListBucket` on its prefix, and
 *   lakerun then tells a missing bucket from a missing key with a one-key listing of the location's prefix
 *   (never HeadBucket, which would need the whole bucket).
 *
 * lakerun never sends GetBucketLocation (the region comes from the routine). Characters IAM reads as
 * wildcards (`*`, `?`, `$`) in the prefix are written `${*}`, `${?}`, `${$}`. Objects encrypted with SSE-KMS
 * also need `kms:Decrypt`/`kms:GenerateDataKey` on the key, which lakerun cannot know.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3Statements } from "./iam.ts";
 *
 * assert.deepEqual(s3Statements("s3://lake/raw/2024", "read"), [
 *   {
 *     Effect: "Allow",
 *     Action: ["s3:ListBucket"],
 *     Resource: ["arn:aws:s3:::lake"],
 *     Condition: { StringLike: { "s3:prefix": ["raw/2024", "raw/2024/*"] } },
 *   },
 *   { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::lake/raw/2024/*"] },
 * ]);
 * assert.deepEqual(s3Statements("s3://lake", ["read", "delete"])[1].Action, ["s3:DeleteObject", "s3:GetObject"]);
 * assert.deepEqual(s3Statements("s3://lake/raw", "probe"), s3Statements("s3://lake/raw", "read"));
 * ```
 */
export function s3Statements(
  url: string,
  access: S3Access | readonly S3Access[],
  options: { region?: string } = {},
): IamStatement[] {
  const wanted = new Set(typeof access === "string" ? [access] : access);
  for (const kind of wanted) {
    if (!["read", "write", "delete", "probe"].includes(kind)) {
      throw new Error(`unknown S3 access ${JSON.stringify(kind)} (expected read, write, delete or probe)`);
    }
  }
  if (wanted.size === 0) return [];
  const arns = s3Arns(url, options);
  const list = s3ListStatement(url, options);
  const objectActions = [
    ...(wanted.has("read") || wanted.has("probe") ? ["s3:GetObject"] : []),
    ...(wanted.has("write")
      ? ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject", "s3:DeleteObject"]
      : []),
    ...(wanted.has("delete") ? ["s3:DeleteObject"] : []),
  ];
  const statements = [list, allow(objectActions, [arns.objects])];
  if (wanted.has("write")) statements.push(allow(["s3:ListBucketMultipartUploads"], [arns.bucket]));
  return statements;
}

/**
 * What Athena does under its query result location `s3://bucket/prefix` with the caller's permissions, as
 * AWS documents it (the `BaseQueryResultsPermissions` of the AmazonAthenaFullAccess managed policy, less
 * CreateBucket and PutBucketPublicAccessBlock, which only the console's default bucket needs):
 * `s3:GetBucketLocation`, `s3:ListBucket` and `s3:ListBucketMultipartUploads` on the bucket, and
 * `s3:GetObject` (GetQueryResults reads the results), `s3:PutObject`, `s3:AbortMultipartUpload` and
 * `s3:ListMultipartUploadParts` (the results are written in multipart uploads) on `PREFIX/*`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { athenaResultsStatements } from "./iam.ts";
 *
 * assert.deepEqual(athenaResultsStatements("s3://results/athena/"), [
 *   {
 *     Effect: "Allow",
 *     Action: ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
 *     Resource: ["arn:aws:s3:::results"],
 *   },
 *   {
 *     Effect: "Allow",
 *     Action: ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
 *     Resource: ["arn:aws:s3:::results/athena/*"],
 *   },
 * ]);
 * ```
 */
export function athenaResultsStatements(url: string, options: { region?: string } = {}): IamStatement[] {
  const arns = s3Arns(url, options);
  return [
    allow(["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"], [arns.bucket]),
    allow(
      ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
      [arns.objects],
    ),
  ];
}

/**
 * One policy document from the statements of every step:
 *
 * - a grant given with no condition makes the same grant under a condition redundant: it is dropped;
 * - grants of the same action on the same resource under the same one-key condition (`StringLike` on
 *   `s3:prefix`) merge their values (a condition key's values are alternatives);
 * - statements with the same resources and condition become one, then statements with the same actions and
 *   condition become one; actions and resources are sorted and unique;
 * - statements are sorted, and each gets a `Sid`: its services and the start of the SHA-256 of its content
 *   (e.g. `S3a41c09e2`), the same from run to run and unique in the document (Sids given in `statements`
 *   are dropped: merged statements are no longer theirs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergeStatements, s3Statements } from "./iam.ts";
 *
 * const policy = mergeStatements([...s3Statements("s3://lake/raw", "read"), ...s3Statements("s3://lake/raw", "delete")]);
 * assert.equal(policy.Version, "2012-10-17");
 * assert.deepEqual(policy.Statement.map((s) => s.Action), [["s3:ListBucket"], ["s3:DeleteObject", "s3:GetObject"]]);
 * assert.match(policy.Statement[0].Sid!, /^S3[0-9a-f]{8}$/);
 * assert.deepEqual(mergeStatements([]), { Version: "2012-10-17", Statement: [] });
 * ```
 */
export function mergeStatements(statements: readonly IamStatement[]): IamPolicy {
  // 1. Atoms: one action on one resource under one condition "shape"; simple conditions collect values.
  interface Atom {
    action: string;
    resource: string;
    /** `undefined`: no condition; else the condition's operator and key with their values, or a whole one. */
    simple?: { op: string; key: string; values: Set<string> };
    complex?: Record<string, Record<string, string[]>>;
  }
  const atoms = new Map<string, Atom>();
  const unconditional = new Set<string>();
  for (const statement of statements) {
    const condition = statement.Condition && Object.keys(statement.Condition).length > 0
      ? statement.Condition
      : undefined;
    const ops = condition ? Object.entries(condition) : [];
    const simple = ops.length === 1 && Object.keys(ops[0][1]).length === 1
      ? { op: ops[0][0], key: Object.keys(ops[0][1])[0], values: Object.values(ops[0][1])[0] }
      : undefined;
    for (const action of statement.Action) {
      for (const resource of statement.Resource) {
        const pair = `${action}\u0000${resource}`;
        if (!condition) {
          unconditional.add(pair);
          atoms.set(pair, { action, resource });
        } else if (simple) {
          const id = `${pair}\u0000${simple.op}\u0000${simple.key}`;
          const atom = atoms.get(id) ??
            { action, resource, simple: { op: simple.op, key: simple.key, values: new Set<string>() } };
          for (const value of simple.values) atom.simple!.values.add(value);
          atoms.set(id, atom);
        } else {
          atoms.set(`${pair}\u0000${canonicalJson(condition)}`, { action, resource, complex: condition });
        }
      }
    }
  }
  // 2. Group by resource and condition (actions gather), then by actions and condition (resources gather).
  const byResource = new Map<
    string,
    { resource: string; condition?: IamStatement["Condition"]; actions: string[] }
  >();
  for (const atom of atoms.values()) {
    if ((atom.simple || atom.complex) && unconditional.has(`${atom.action}\u0000${atom.resource}`)) continue;
    const condition = atom.simple
      ? { [atom.simple.op]: { [atom.simple.key]: sortedUnique([...atom.simple.values]) } }
      : atom.complex;
    const id = `${atom.resource}\u0000${condition ? canonicalJson(condition) : ""}`;
    const group = byResource.get(id) ?? { resource: atom.resource, condition, actions: [] };
    group.actions.push(atom.action);
    byResource.set(id, group);
  }
  const byActions = new Map<string, IamStatement>();
  for (const group of byResource.values()) {
    const actions = sortedUnique(group.actions);
    const id = `${actions.join(",")}\u0000${group.condition ? canonicalJson(group.condition) : ""}`;
    const statement = byActions.get(id) ?? allow(actions, [], group.condition);
    statement.Resource = sortedUnique([...statement.Resource, group.resource]);
    byActions.set(id, statement);
  }
  // 3. A stable order and content-derived Sids.
  const merged = [...byActions.values()].sort((a, b) => compare(orderKey(a), orderKey(b)));
  const used = new Set<string>();
  const withSids = merged.map((statement) => {
    let sid = sidOf(statement);
    for (let n = 2; used.has(sid); n++) sid = `${sidOf(statement)}${n}`;
    used.add(sid);
    return { Sid: sid, ...statement };
  });
  return { Version: "2012-10-17", Statement: withSids };
}

/**
 * What is wrong with a policy document's shape, or `undefined`: `Version` `2012-10-17`, and every statement
 * an `Allow` with a unique alphanumeric `Sid`, non-empty sorted unique `Action` (`service:Name`) and
 * `Resource` (ARNs, or `*`) arrays, and conditions mapping operators to keys to arrays of strings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { iamPolicyProblem, mergeStatements, s3Statements } from "./iam.ts";
 *
 * assert.equal(iamPolicyProblem(mergeStatements(s3Statements("s3://lake/raw", "write"))), undefined);
 * assert.match(iamPolicyProblem({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["GetObject"], Resource: ["*"] }] })!, /action/);
 * ```
 */
export function iamPolicyProblem(policy: unknown): string | undefined {
  const doc = policy as Partial<IamPolicy> | undefined;
  if (typeof doc !== "object" || doc === null) return "the policy is not an object";
  if (doc.Version !== "2012-10-17") return `Version is ${JSON.stringify(doc.Version)}, not "2012-10-17"`;
  if (!Array.isArray(doc.Statement)) return "Statement is not an array";
  const sids = new Set<string>();
  for (const [i, s] of doc.Statement.entries()) {
    const at = `Statement[${i}]`;
    if (typeof s !== "object" || s === null) return `${at} is not an object`;
    if (s.Sid !== undefined) {
      if (typeof s.Sid !== "string" || !/^[A-Za-z0-9]+$/.test(s.Sid)) return `${at}.Sid is not alphanumeric`;
      if (sids.has(s.Sid)) return `${at}.Sid ${s.Sid} is used twice`;
      sids.add(s.Sid);
    }
    if (s.Effect !== "Allow") return `${at}.Effect is ${JSON.stringify(s.Effect)}, not "Allow"`;
    for (
      const [field, pattern, what] of [
        ["Action", ACTION, "action"],
        ["Resource", ARN, "ARN"],
      ] as const
    ) {
      const values = s[field];
      if (!Array.isArray(values) || values.length === 0) return `${at}.${field} is not a non-empty array`;
      const bad = values.find((v) => typeof v !== "string" || !pattern.test(v));
      if (bad !== undefined) return `${at}.${field} has ${JSON.stringify(bad)}, not an ${what}`;
      if (values.join("\u0000") !== sortedUnique(values).join("\u0000")) {
        return `${at}.${field} is not sorted and unique`;
      }
    }
    if (s.Condition !== undefined) {
      if (typeof s.Condition !== "object" || s.Condition === null) return `${at}.Condition is not an object`;
      for (const [op, keys] of Object.entries(s.Condition)) {
        if (typeof keys !== "object" || keys === null) return `${at}.Condition.${op} is not an object`;
        for (const [key, values] of Object.entries(keys)) {
          if (!Array.isArray(values) || values.some((v) => typeof v !== "string")) {
            return `${at}.Condition.${op}.${key} is not an array of strings`;
          }
        }
      }
    }
  }
  return undefined;
}

/** `service:Action`, with `*` allowed in the action name. */
const ACTION = /^[a-z0-9-]+:[A-Za-z0-9*]+$/;
/** `arn:partition:service:region:account:resource` (S3 has no region or account), or `*` (every resource). */
const ARN = /^\*$|^arn:aws(-cn|-us-gov)?:[a-z0-9-]+:([a-z0-9-]+|\*)?:(\d{12}|\*)?:.+$/;

/** IAM's literal forms of its wildcard characters, for names and keys used in ARNs and conditions. */
function literal(text: string): string {
  return text.replace(/[$*?]/g, (c) => `\${${c}}`);
}

function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort(compare);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Statements sort by service, then first resource, then actions, then condition. */
function orderKey(statement: IamStatement): string {
  return [
    servicesOf(statement).join(","),
    statement.Resource.join(","),
    statement.Action.join(","),
    statement.Condition ? canonicalJson(statement.Condition) : "",
  ].join("\u0000");
}

function servicesOf(statement: IamStatement): string[] {
  return sortedUnique(statement.Action.map((a) => a.split(":")[0]));
}

const SERVICE_NAMES: Record<string, string> = {
  s3: "S3",
  athena: "Athena",
  glue: "Glue",
  "redshift-data": "RedshiftData",
  secretsmanager: "SecretsManager",
  kms: "KMS",
  sts: "STS",
  iam: "IAM",
};

function sidOf(statement: IamStatement): string {
  const services = servicesOf(statement)
    .map((s) => SERVICE_NAMES[s] ?? s.replace(/(^|-)([a-z0-9])/g, (_, _d, c: string) => c.toUpperCase()))
    .join("");
  const hash = sha256Hex(canonicalJson(statement)).slice(0, 8);
  return `${services}${hash}`;
}

/**
 * The AWS IAM statements a RedshiftExecutor step needs (`lakerun plan --iam`), for the identity lakerun runs
 * as. No `Sid`s: `mergeStatements` (lib/aws/iam.ts) gives each statement of the merged document its own.
 *
 * - **Data API:** `redshift-data:ExecuteStatement` and `BatchExecuteStatement` on the cluster
 *   (`arn:aws:redshift:REGION:*:cluster:ID`) or on the serverless workgroups of the region
 *   (`arn:aws:redshift-serverless:REGION:*:workgroup/*`: that ARN ends with the workgroup's id, which the
 *   name does not tell); `DescribeStatement`, `GetStatementResult` and `CancelStatement` on `*` (they take no
 *   resource: AWS checks that the statement is the caller's). With `db_user`: `redshift:GetClusterCredentials`
 *   on `…:dbuser:CLUSTER/USER` and `…:dbname:CLUSTER/DATABASE`. With `secret_arn`:
 *   `secretsmanager:GetSecretValue` on the secret (the Data API reads it as the caller). On a workgroup
 *   without a secret: `redshift-serverless:GetCredentials` on the workgroups.
 * - **Wire protocol:** nothing: the step signs in with a database password.
 * - **create_table without columns, copy_from_s3 of CSV without columns or of JSON:** `s3:ListBucket` and
 *   `s3:GetObject` under `source`, to read samples (headers, keys).
 *
 * Not in this policy: the S3 reads of COPY. Redshift makes them with `iam_role`, a role the cluster assumes,
 * never with lakerun's identity; {@link copyRoleStatements} gives what that role's policy needs.
 *
 * @module
 */
import { allow, awsArn, type IamStatement, s3Statements } from "../../lib/aws/iam.ts";
import type { Params } from "./params.ts";
import { connectionOf } from "./params.ts";

/** Characters IAM reads as wildcards, written so they match themselves. */
function literal(text: string): string {
  return text.replace(/[$*?]/g, (c) => `\${${c}}`);
}

/** The folder COPY reads: `source` with a trailing `/`. */
export function sourceFolder(source: string): string {
  return source.endsWith("/") ? source : `${source}/`;
}

/**
 * True when the step reads `source` itself: create_table without columns samples the files, copy_from_s3 of
 * CSV without columns reads every file's header (COPY fills columns by position), copy_from_s3 of JSON reads
 * a sample of the files' keys (COPY matches them to columns by name, ignoring case only).
 */
export function readsSamples(params: Params, tasks: readonly string[]): boolean {
  if (params.source === undefined) return false;
  if (tasks.includes("copy_from_s3") && params.format === "json") return true;
  return params.columns === undefined &&
    (tasks.includes("create_table") || (tasks.includes("copy_from_s3") && params.format === "csv"));
}

/**
 * The statements of the module documentation, for a step running `tasks` in `region`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepStatements } from "./iam.ts";
 *
 * const statements = stepStatements(
 *   { cluster_identifier: "analytics", database: "dev", db_user: "loader" } as never,
 *   ["execute"],
 *   "eu-west-1",
 * );
 * assert.deepEqual(statements.map((s) => [s.Action, s.Resource]), [
 *   [["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"], ["arn:aws:redshift:eu-west-1:*:cluster:analytics"]],
 *   [["redshift-data:CancelStatement", "redshift-data:DescribeStatement", "redshift-data:GetStatementResult"], ["*"]],
 *   [["redshift:GetClusterCredentials"], ["arn:aws:redshift:eu-west-1:*:dbname:analytics/dev", "arn:aws:redshift:eu-west-1:*:dbuser:analytics/loader"]],
 * ]);
 * ```
 */
export function stepStatements(params: Params, tasks: readonly string[], region: string): IamStatement[] {
  const connection = connectionOf(params);
  const statements: IamStatement[] = [];
  if (connection.kind === "data_api") {
    const cluster = connection.clusterIdentifier;
    const workgroups = awsArn("redshift-serverless", region, "workgroup/*");
    const target = cluster ? awsArn("redshift", region, `cluster:${literal(cluster)}`) : workgroups;
    statements.push(
      allow(["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"], [target]),
      allow([
        "redshift-data:DescribeStatement",
        "redshift-data:GetStatementResult",
        "redshift-data:CancelStatement",
      ], ["*"]),
    );
    if (cluster && connection.dbUser) {
      statements.push(allow(["redshift:GetClusterCredentials"], [
        awsArn("redshift", region, `dbuser:${literal(cluster)}/${literal(connection.dbUser)}`),
        awsArn("redshift", region, `dbname:${literal(cluster)}/${literal(connection.database)}`),
      ]));
    }
    if (connection.secretArn) {
      statements.push(allow(["secretsmanager:GetSecretValue"], [connection.secretArn]));
    }
    if (!cluster && !connection.secretArn) {
      statements.push(allow(["redshift-serverless:GetCredentials"], [workgroups]));
    }
  }
  if (readsSamples(params, tasks)) statements.push(...s3Statements(params.source!, "read", { region }));
  return statements;
}

/**
 * What the policy of `iam_role` (the role Redshift assumes for COPY) needs: list the bucket under `source`
 * and read its objects. It is not part of the step's own policy; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyRoleStatements } from "./iam.ts";
 *
 * assert.deepEqual(copyRoleStatements({ source: "s3://lake/staging/sales" } as never).map((s) => s.Action), [
 *   ["s3:ListBucket"],
 *   ["s3:GetObject"],
 * ]);
 * ```
 */
export function copyRoleStatements(params: Params): IamStatement[] {
  return params.source === undefined ? [] : s3Statements(params.source, "read");
}

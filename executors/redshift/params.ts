/**
 * The RedshiftExecutor's params: one zod schema (validation, docs and JSON Schema) and what the tasks derive
 * from it: which way the step connects (the Data API or the wire protocol), the target table, the columns.
 *
 * @module
 */
import type { z } from "zod";
import type { ParamsOf, Zod } from "../../sdk/executor.ts";
import type { ConnectionParams, ConnectionTarget } from "../../lib/sql/connection.ts";
import { connectionTarget, SSL_MODES } from "../../lib/sql/connection.ts";
import { copyOptionProblem, iamRoleProblem } from "../../lib/sql/redshift_copy.ts";
import { columnsParam } from "../../lib/tables/columns_param.ts";
import { parseTableName, type TableName } from "../../lib/tables/identifiers.ts";
import { parseS3Url } from "../../lib/aws/s3/url.ts";
import { transactionScript } from "../../lib/sql/statements.ts";

/** How SQL for Redshift is split into statements: it reads backslash escapes inside '…' literals. */
export const REDSHIFT_SQL = { backslashEscapes: true } as const;

/** Redshift's own port. */
export const REDSHIFT_PORT = 5439;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;
const SECRET_ARN = /^arn:aws(?:-[a-z]+)*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/;

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
}

/** An S3 bucket and folder as `source` takes it (the bucket named as S3 allows). */
const S3_FOLDER = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/;

/** A string matching `regex`; the message says what it must be (validation adds the value when it may show it). */
const pattern = (z: Zod, regex: RegExp, what: string) =>
  z.string().regex(regex, { error: `must be ${what}` });

/** The params, each checked on its own. */
const fieldsSchema = (z: Zod) =>
  z.strictObject({
    cluster_identifier: pattern(
      z,
      /^[a-z][a-z0-9-]{0,62}$/,
      "a cluster identifier (1–63 characters: lowercase letters, digits and hyphens, starting with a letter)",
    )
      .optional().describe(
        "Data API: the provisioned cluster (or workgroup_name, or host for the wire protocol).",
      ),
    workgroup_name: pattern(
      z,
      /^[a-z0-9-]{3,64}$/,
      "a Redshift Serverless workgroup name (3–64 characters: lowercase letters, digits and hyphens)",
    ).optional()
      .describe(
        "Data API: the Redshift Serverless workgroup (or cluster_identifier).",
      ),
    database: z.string().min(1).max(127).refine((value) => !/["\p{Cc}]/u.test(value), {
      error: "must be a database name (no double quote or control character)",
    }).describe("The database (both ways of connecting)."),
    // secret: what is pasted instead of an ARN, a name or a role may be the secret itself (never quoted back)
    secret_arn: pattern(z, SECRET_ARN, "a Secrets Manager secret ARN").meta({ secret: true }).optional()
      .describe(
        "Data API: the secret holding the database user's name and password (the Data API reads it; lakerun never does).",
      ),
    db_user: pattern(z, /^[A-Za-z_][A-Za-z0-9_.@+-]{0,127}$/, "a database user name").optional().describe(
      "Data API with cluster_identifier: the database user to get temporary credentials for (redshift:GetClusterCredentials).",
    ),
    host: pattern(z, HOST, "a host name or IP address").optional().describe(
      "Wire protocol: the cluster's endpoint host (needs a network path into the VPC).",
    ),
    // the defaults: what wireParams uses for a param left out, shown in the reference (not parsed in)
    port: z.number().int().min(1).max(65535).optional().meta({ default: REDSHIFT_PORT }).describe(
      "Wire protocol: the port.",
    ),
    user: z.string().min(1).max(127).optional().describe("Wire protocol: the database user."),
    password_env: pattern(z, ENV_NAME, "an environment variable name").meta({ secret: true }).optional()
      .describe(
        "Wire protocol: the NAME of the environment variable holding the password (the step may read only it); a password never appears in a routine.",
      ),
    ssl: z.union([z.boolean(), z.enum(SSL_MODES)]).optional().meta({ default: true }).describe(
      "Wire protocol TLS: true (default) = verify-full (certificate and host checked), require (encrypted, not checked), verify-ca, or false/disable.",
    ),
    sql: z.string().min(1).optional().describe("execute: the SQL statements to run, in one transaction."),
    sql_file: z.string().min(1).optional().describe(
      "execute: a file holding the SQL statements (instead of sql).",
    ),
    table: z.string().min(1).superRefine((value, ctx) => {
      try {
        parseTableName(value, "public");
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
      }
    }).optional().describe(
      'create_table, copy_from_s3: the target table, "schema.table" (default schema public); parts in double quotes keep their case.',
    ),
    columns: columnsParam(z, "redshift").optional().describe(
      "The columns, in file order: [{name, type}] or an ordered {name: type} map as for Athena; a type is bigint, double, boolean, date, timestamp, string, or Redshift's own (double precision, character varying(256), timestamptz, super, …); default: inferred from the first files under source (create_table); for copy_from_s3, those each CSV file's header names, in its order (every file's header is read), else the table's own.",
    ),
    source: pattern(
      z,
      S3_FOLDER,
      "an s3://bucket/folder URL (a bucket name: 3–63 lowercase letters, digits, dots and hyphens)",
    )
      .optional()
      .describe(
        "create_table, copy_from_s3: the S3 folder holding the files; COPY loads every object under it (e.g. the StagingExecutor's dump_directory).",
      ),
    iam_role: z.string().min(1).superRefine((value, ctx) => {
      const problem = iamRoleProblem(value);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }).meta({ secret: true }).optional().describe(
      "copy_from_s3: the IAM role Redshift reads source with (arn:aws:iam::ACCOUNT:role/NAME, or default); it needs s3:ListBucket and s3:GetObject there.",
    ),
    format: z.enum(["csv", "parquet", "json"]).default("csv").describe(
      "Format of the files under source: csv (one header line), parquet or json (one object per line).",
    ),
    copy_options: z.array(z.string()).default([]).describe(
      'Extra COPY options, each checked against Redshift\'s COPY keywords: e.g. "DATEFORMAT \'auto\'", "GZIP", "NULL AS \'\\\\N\'", "IGNOREHEADER 0".',
    ),
    mode: z.enum(["append", "replace", "upsert"]).default("append").describe(
      "copy_from_s3: append the rows, replace the table's rows, or upsert (MERGE) on upsert_keys; always one transaction.",
    ),
    upsert_keys: z.array(z.string().min(1)).min(1).optional().describe(
      "copy_from_s3 with mode upsert: the columns that identify a row.",
    ),
    if_exists: z.enum(["keep", "replace", "fail"]).default("keep").describe(
      "create_table when the table exists: keep it (differences from the files are logged), replace it, or fail.",
    ),
  });

/** The params schema. */
export const paramsSchema = (z: Zod) => fieldsSchema(z).superRefine(checkParams);

/** The validated params. */
export type Params = ParamsOf<typeof fieldsSchema>;

const DATA_API_ONLY = ["secret_arn", "db_user"] as const;
const WIRE_ONLY = ["host", "port", "user", "password_env", "ssl"] as const;

/** The rules that involve several params, as issues on the param to fix. */
function checkParams(p: Params, ctx: z.RefinementCtx): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  const dataApi = p.cluster_identifier !== undefined || p.workgroup_name !== undefined;
  if (p.cluster_identifier !== undefined && p.workgroup_name !== undefined) {
    issue("workgroup_name", "give cluster_identifier or workgroup_name, not both");
  }
  if (dataApi && p.host !== undefined) {
    issue("host", "give cluster_identifier/workgroup_name (Data API) or host (wire protocol), not both");
  } else if (dataApi) {
    for (const key of WIRE_ONLY) {
      if (p[key] !== undefined) issue(key, "is for the wire protocol (host); the Data API does not use it");
    }
    if (p.cluster_identifier !== undefined && p.secret_arn === undefined && p.db_user === undefined) {
      issue("secret_arn", "the Data API on a cluster needs secret_arn or db_user");
    }
    if (p.secret_arn !== undefined && p.db_user !== undefined) {
      issue("db_user", "give secret_arn or db_user, not both");
    }
    if (p.workgroup_name !== undefined && p.db_user !== undefined) {
      issue("db_user", "Redshift Serverless takes secret_arn, or neither (your IAM identity), not db_user");
    }
  } else if (p.host !== undefined) {
    for (const key of DATA_API_ONLY) {
      if (p[key] !== undefined) {
        issue(key, "is for the Data API (cluster_identifier/workgroup_name), not the wire protocol");
      }
    }
    if (p.user === undefined) issue("user", "the wire protocol needs user");
    if (p.password_env === undefined) {
      issue(
        "password_env",
        "the wire protocol needs password_env: the name of the variable holding the password",
      );
    }
  } else {
    issue(
      "cluster_identifier",
      "say where Redshift is: cluster_identifier or workgroup_name (Data API), or host (wire protocol)",
    );
  }
  if (p.sql !== undefined && p.sql_file !== undefined) issue("sql_file", "give sql or sql_file, not both");
  if (p.sql !== undefined) {
    // what execute would refuse before sending anything (a sql_file is checked once read)
    try {
      transactionScript(p.sql, REDSHIFT_SQL);
    } catch (error) {
      issue("sql", (error as Error).message);
    }
  }
  if (p.source !== undefined && S3_FOLDER.test(p.source)) {
    // what the pattern cannot see ("..", "//"): one message per problem
    try {
      parseS3Url(p.source);
    } catch (error) {
      issue("source", (error as Error).message);
    }
  }
  p.copy_options.forEach((entry, index) => {
    const problem = copyOptionProblem(entry, p.format);
    if (problem) ctx.addIssue({ code: "custom", path: ["copy_options", index], message: problem });
  });
  if (p.mode === "upsert" && p.upsert_keys === undefined) {
    issue("upsert_keys", "mode upsert needs upsert_keys: the columns that identify a row");
  }
  if (p.mode !== "upsert" && p.upsert_keys !== undefined) {
    issue("upsert_keys", "is only used with mode upsert");
  }
  if (p.upsert_keys && p.columns) {
    for (const key of p.upsert_keys) {
      if (!p.columns.some((column) => column.name === key)) {
        issue("upsert_keys", `${quote(key)} is not one of the columns`);
      }
    }
  }
}

/** How a step reaches Redshift. */
export type Connection =
  | {
    kind: "data_api";
    clusterIdentifier?: string;
    workgroupName?: string;
    database: string;
    secretArn?: string;
    dbUser?: string;
  }
  | { kind: "wire"; target: ConnectionTarget };

/**
 * The connection the params describe.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectionOf } from "./params.ts";
 *
 * const wire = connectionOf({ host: "c.example.com", database: "dev", user: "loader", password_env: "PW" } as never);
 * assert.deepEqual(wire.kind === "wire" && [wire.target.port, wire.target.ssl], [5439, "verify-full"]);
 * assert.equal(connectionOf({ workgroup_name: "lake", database: "dev" } as never).kind, "data_api");
 * ```
 */
export function connectionOf(params: Params): Connection {
  const wire = wireParams(params);
  if (wire === undefined) {
    return {
      kind: "data_api",
      clusterIdentifier: params.cluster_identifier,
      workgroupName: params.workgroup_name,
      database: params.database,
      secretArn: params.secret_arn,
      dbUser: params.db_user,
    };
  }
  return { kind: "wire", target: connectionTarget(wire) };
}

/**
 * The wire-protocol connection the params ask for, with Redshift's defaults (port {@link REDSHIFT_PORT},
 * TLS on); `undefined` when they ask for the Data API (no `host`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wireParams } from "./params.ts";
 *
 * assert.deepEqual(wireParams({ host: "c.example.com", database: "dev", user: "u", password_env: "PW" } as never), {
 *   host: "c.example.com",
 *   port: 5439,
 *   database: "dev",
 *   user: "u",
 *   password_env: "PW",
 *   ssl: true,
 * });
 * assert.equal(wireParams({ workgroup_name: "lake", database: "dev" } as never), undefined);
 * ```
 */
export function wireParams(params: Params): ConnectionParams | undefined {
  if (params.host === undefined) return undefined;
  return {
    host: params.host,
    port: params.port ?? REDSHIFT_PORT,
    database: params.database,
    user: params.user,
    password_env: params.password_env,
    ssl: params.ssl ?? true,
  };
}

/** The target table (default schema `public`); throws naming the task when `table` is missing. */
export function tableOf(params: Params, task: string): TableName {
  if (params.table === undefined) throw new Error(`${task} needs table ("schema.table")`);
  return parseTableName(params.table, "public");
}

/** The `IGNOREHEADER` the COPY will use for CSV (lakerun's default 1 unless copy_options say otherwise). */
export function headerLines(params: Params): number {
  for (const entry of params.copy_options) {
    const match = /^\s*ignoreheader\s+(?:as\s+)?(\d+)\s*$/i.exec(entry);
    if (match) return Number(match[1]);
  }
  return params.format === "csv" ? 1 : 0;
}

/** True when copy_options ask for gzipped files. */
export function gzipped(params: Params): boolean {
  return params.copy_options.some((entry) => /^\s*gzip\s*$/i.test(entry));
}

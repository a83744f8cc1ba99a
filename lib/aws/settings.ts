/**
 * The routine's AWS connection blocks, defined once: one zod schema per block gives the validation of routine
 * files and (through `z.toJSONSchema`) their JSON Schema, and one type per block is what executors receive.
 *
 * - `"aws": { "region", "profile", "endpoints": { "s3", "athena", "glue", "redshift_data", "sts" } }` holds
 *   the settings every AWS service shares (kestra's `AbstractConnection`).
 * - `"s3": { "endpoint", "region", "force_path_style", "checksum_mode" }` is the older S3-only block; it stays
 *   valid and means the S3 endpoint. Where both give a value for S3, the `s3` block wins.
 *
 * The schemas are functions of the zod namespace, like executors' params, so that a step's Worker never
 * loads zod.
 *
 * @module
 */
import type { z } from "zod";

/** The zod namespace. */
type Zod = typeof z;

/** The AWS services lakerun talks to, as named in the `aws.endpoints` block. */
export const AWS_SERVICES = ["s3", "athena", "glue", "redshift_data", "sts"] as const;

/** One of {@link AWS_SERVICES}. */
export type AwsService = typeof AWS_SERVICES[number];

/** The routine-level `"aws"` block: settings every AWS service of the routine shares. */
export interface AwsSettings {
  /** The region requests are signed for and sent to. */
  region?: string;
  /** The shared-config profile credentials and region come from (like `AWS_PROFILE`). */
  profile?: string;
  /** Custom endpoint URLs per service (an S3-compatible store, a local stand-in, a VPC endpoint). */
  endpoints?: Partial<Record<AwsService, string>>;
}

/** The routine-level `"s3"` block: connection settings for every S3 location in the routine. */
export interface S3Settings {
  /** Custom endpoint URL (an S3-compatible server); default: AWS. */
  endpoint?: string;
  /** The region of the buckets. */
  region?: string;
  /** Path-style addressing (`https://host/bucket/key`); default on with a custom endpoint. */
  force_path_style?: boolean;
  /** The SDK's request and response checksum mode; `WHEN_REQUIRED` by default with a custom endpoint. */
  checksum_mode?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /** The shared-config profile (set from the `aws` block; the `s3` block has no such key). */
  profile?: string;
}

/** Both blocks as a routine holds them. */
export interface AwsConnection {
  aws?: AwsSettings;
  s3?: S3Settings;
}

const REGION = /^[a-z]{2}(-[a-z0-9]+)+-\d+$|^[a-z0-9-]+$/;

/** A user name or password before the host (`scheme://user:secret@host`). */
const USERINFO = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i;

/**
 * An endpoint URL: http(s), and no user name or password in it (a secret there would be printed in errors and
 * stored in run records; credentials come from the AWS credential chain). The message never quotes such a URL.
 */
const endpointUrl = (z: Zod) =>
  z.string()
    .refine((url) => !USERINFO.test(url), {
      error: "must not hold a user name or password (user:secret@): credentials come from the environment " +
        "or the AWS profile",
      abort: true,
    })
    .regex(/^https?:\/\/[^/\s]+/i, {
      error: (issue) => `must be an http(s) URL, not ${quote(issue.input)}`,
    });

const regionName = (z: Zod) =>
  z.string().regex(REGION, {
    error: (issue) => `must be a region name such as eu-west-1, not ${quote(issue.input)}`,
  });

/**
 * The schema of the `"aws"` block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { awsSettingsSchema } from "./settings.ts";
 *
 * const parsed = awsSettingsSchema(z).parse({ region: "eu-west-1", endpoints: { athena: "http://127.0.0.1:5000" } });
 * assert.equal(parsed.endpoints?.athena, "http://127.0.0.1:5000");
 * assert.equal(awsSettingsSchema(z).safeParse({ endpoints: { athena: "ftp://x" } }).success, false);
 * const secret = awsSettingsSchema(z).safeParse({ endpoints: { s3: "http://AKIA1:supersecret@127.0.0.1:5999" } });
 * assert.equal(secret.success, false);
 * assert.doesNotMatch(JSON.stringify(secret.error?.issues), /supersecret/);
 * ```
 */
export function awsSettingsSchema(z: Zod) {
  const endpoints = Object.fromEntries(
    AWS_SERVICES.map((service) => [service, endpointUrl(z).optional().describe(`${service} endpoint URL`)]),
  ) as Record<AwsService, z.ZodOptional<z.ZodString>>;
  return z.strictObject({
    region: regionName(z).optional().describe(
      "Region for every AWS service (else AWS_REGION, the profile's).",
    ),
    profile: z.string().min(1).optional().describe("Shared-config profile for credentials and region."),
    endpoints: z.strictObject(endpoints).optional().describe(
      "Custom endpoint URLs per service (S3-compatible stores, local stand-ins).",
    ),
  }).describe("AWS settings shared by every AWS service the routine uses.");
}

/**
 * The schema of the `"s3"` block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { s3SettingsSchema } from "./settings.ts";
 *
 * assert.deepEqual(s3SettingsSchema(z).parse({ endpoint: "http://127.0.0.1:7480" }), { endpoint: "http://127.0.0.1:7480" });
 * assert.equal(s3SettingsSchema(z).safeParse({ checksum_mode: "SOMETIMES" }).success, false);
 * ```
 */
export function s3SettingsSchema(z: Zod) {
  return z.strictObject({
    endpoint: endpointUrl(z).optional().describe("S3 endpoint URL (an S3-compatible server)."),
    region: regionName(z).optional().describe("Region of the buckets."),
    force_path_style: z.boolean().optional().describe("Path-style addressing (default on with an endpoint)."),
    checksum_mode: z.enum(["WHEN_REQUIRED", "WHEN_SUPPORTED"]).optional().describe(
      "SDK checksum mode (default WHEN_REQUIRED with an endpoint).",
    ),
  }).describe("S3 connection settings for every s3:// location in the routine.");
}

/** The routine-level blocks this module defines, by their key in the routine file. */
export const AWS_ROUTINE_BLOCKS = { aws: awsSettingsSchema, s3: s3SettingsSchema } as const;

/**
 * The S3 view of a routine's connection: the `s3` block, completed from the `aws` block (region, profile,
 * `endpoints.s3`). `undefined` when the routine has neither.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3SettingsOf } from "./settings.ts";
 *
 * assert.deepEqual(
 *   s3SettingsOf({ aws: { region: "eu-west-1", endpoints: { s3: "http://127.0.0.1:7480" } } }),
 *   { endpoint: "http://127.0.0.1:7480", region: "eu-west-1" },
 * );
 * assert.equal(s3SettingsOf({ aws: { region: "eu-west-1" }, s3: { region: "us-east-2" } })?.region, "us-east-2");
 * assert.equal(s3SettingsOf({}), undefined);
 * ```
 */
export function s3SettingsOf(connection: AwsConnection): S3Settings | undefined {
  const { aws, s3 } = connection;
  if (!aws && !s3) return undefined;
  const merged: S3Settings = { ...s3 };
  const endpoint = s3?.endpoint ?? aws?.endpoints?.s3;
  if (endpoint !== undefined) merged.endpoint = endpoint;
  const region = s3?.region ?? aws?.region;
  if (region !== undefined) merged.region = region;
  if (aws?.profile !== undefined) merged.profile = aws.profile;
  return merged;
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

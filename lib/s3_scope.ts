/**
 * The permission scope of a step that uses S3, computed without loading the AWS SDK: the endpoint's host,
 * the AWS environment variables and the shared config files the SDK's credential chain reads.
 *
 * @module
 */
import type { PermissionScope, S3Settings } from "../orchestrator/contract.ts";

/** Environment variables an S3 step may read. */
export const S3_ENV_VARS = [
  "AWS_*",
  "HOME",
  "USERPROFILE",
  "HOMEPATH",
  "HOMEDRIVE",
  "ACTIONS_ID_TOKEN_REQUEST_URL",
  "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/**
 * Splits `s3://bucket/prefix` into bucket and prefix (without leading or trailing `/`).
 *
 * @example
 * ```ts
 * parseS3Url("s3://lake/raw/2024/"); // { bucket: "lake", prefix: "raw/2024" }
 * ```
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!match || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(match[1])) {
    throw new Error(`invalid S3 location ${JSON.stringify(url)} (expected s3://bucket/prefix)`);
  }
  return { bucket: match[1], prefix: match[2].replace(/^\/+|\/+$/g, "") };
}

/** The endpoint URL S3 requests go to, from the routine's `s3` block or the AWS variables. */
export function s3EndpointOf(settings?: S3Settings): string | undefined {
  return settings?.endpoint ?? Deno.env.get("AWS_ENDPOINT_URL_S3") ?? Deno.env.get("AWS_ENDPOINT_URL") ??
    undefined;
}

/** The region, from the routine's `s3` block or the AWS variables. */
export function s3RegionOf(settings?: S3Settings): string {
  return settings?.region ?? Deno.env.get("AWS_REGION") ?? Deno.env.get("AWS_DEFAULT_REGION") ?? "us-east-1";
}

/**
 * The scope for an S3 location.
 *
 * @example
 * ```ts
 * s3Scope("s3://lake/raw", { endpoint: "http://127.0.0.1:7480" }).net; // ["127.0.0.1:7480"]
 * ```
 */
export function s3Scope(url: string, settings?: S3Settings): PermissionScope {
  const { bucket } = parseS3Url(url);
  const endpoint = s3EndpointOf(settings);
  const net: string[] = [];
  if (endpoint) {
    const u = new URL(endpoint);
    net.push(`${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`);
  } else {
    const region = s3RegionOf(settings);
    net.push(
      `${bucket}.s3.${region}.amazonaws.com:443`,
      `s3.${region}.amazonaws.com:443`,
      `sts.${region}.amazonaws.com:443`,
    );
  }
  const home = Deno.env.get("HOME");
  const read = [
    Deno.env.get("AWS_CONFIG_FILE") ?? (home ? `${home}/.aws/config` : undefined),
    Deno.env.get("AWS_SHARED_CREDENTIALS_FILE") ?? (home ? `${home}/.aws/credentials` : undefined),
    Deno.env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
    Deno.env.get("AWS_CA_BUNDLE"),
  ].filter((p): p is string => !!p);
  return { net, env: S3_ENV_VARS, read };
}

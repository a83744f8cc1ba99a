/**
 * Where an S3 step connects, computed without loading the AWS SDK (see `lib/aws/scope.ts` for what every AWS
 * step gets): with a custom endpoint, that endpoint's `host:port` (plus `bucket.host:port` when
 * `force_path_style` is `false`); for AWS itself, the bucket's virtual host and the regional S3 endpoint
 * (path-style requests, buckets with dots), honouring `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT`,
 * plus the credential chain's hosts.
 *
 * @module
 */
import type { PermissionScope } from "../../scope.ts";
import { AWS_ENV_VARS, awsDnsSuffix, awsEnv, awsScope, hostPort, profileSetting } from "../scope.ts";
import type { S3Settings } from "../settings.ts";
import { parseS3Url } from "./url.ts";

export { AWS_ENV_VARS as S3_ENV_VARS, IMDS_HOST } from "../scope.ts";
export { parseS3Url } from "./url.ts";

/** Connection settings resolved from the routine's `s3` block, then the AWS variables and shared config. */
export interface S3Config {
  /** Custom endpoint URL, or `undefined` for AWS itself. */
  endpoint?: string;
  /** The region requests are signed for. */
  region: string;
  /** `https://host/bucket/key` rather than `https://bucket.host/key`. */
  forcePathStyle: boolean;
  /** Sent as both `requestChecksumCalculation` and `responseChecksumValidation`. */
  checksumMode: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /** The shared-config profile, when the routine names one. */
  profile?: string;
}

/**
 * The endpoint URL S3 requests go to, from the routine's `s3` block or the AWS variables; `undefined` for AWS.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3EndpointOf } from "./scope.ts";
 *
 * assert.equal(s3EndpointOf({ endpoint: "http://127.0.0.1:7480" }), "http://127.0.0.1:7480");
 * ```
 */
export function s3EndpointOf(settings?: S3Settings): string | undefined {
  return settings?.endpoint ?? awsEnv("AWS_ENDPOINT_URL_S3") ?? awsEnv("AWS_ENDPOINT_URL");
}

/**
 * The region: the routine's `s3` block, `AWS_REGION`, `AWS_DEFAULT_REGION`, the active profile's `region` in
 * the shared config file, else `us-east-1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3RegionOf } from "./scope.ts";
 *
 * assert.equal(s3RegionOf({ region: "eu-west-1" }), "eu-west-1");
 * ```
 */
export function s3RegionOf(settings?: S3Settings): string {
  return settings?.region ?? awsEnv("AWS_REGION") ?? awsEnv("AWS_DEFAULT_REGION") ??
    profileSetting("region", settings?.profile ?? awsEnv("AWS_PROFILE") ?? "default") ?? "us-east-1";
}

/**
 * The full connection settings. With a custom endpoint, path-style addressing and `WHEN_REQUIRED` checksums
 * are the defaults (what S3-compatible servers such as Ceph, MinIO or R2 need); for AWS, virtual hosts and the
 * SDK's `WHEN_SUPPORTED` checksums.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveS3Config } from "./scope.ts";
 *
 * assert.deepEqual(resolveS3Config({ endpoint: "http://127.0.0.1:7480", region: "us-east-1" }), {
 *   endpoint: "http://127.0.0.1:7480",
 *   region: "us-east-1",
 *   forcePathStyle: true,
 *   checksumMode: "WHEN_REQUIRED",
 * });
 * ```
 */
export function resolveS3Config(settings?: S3Settings): S3Config {
  const endpoint = s3EndpointOf(settings);
  const config: S3Config = {
    endpoint,
    region: s3RegionOf(settings),
    forcePathStyle: settings?.force_path_style ?? endpoint !== undefined,
    checksumMode: settings?.checksum_mode ?? (endpoint ? "WHEN_REQUIRED" : "WHEN_SUPPORTED"),
  };
  if (settings?.profile !== undefined) config.profile = settings.profile;
  return config;
}

/**
 * The hosts the SDK contacts for `bucket` on AWS (no custom endpoint): virtual host and regional endpoint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsS3Hosts } from "./scope.ts";
 *
 * assert.deepEqual(awsS3Hosts("lake", "eu-west-1"), [
 *   "lake.s3.eu-west-1.amazonaws.com:443",
 *   "s3.eu-west-1.amazonaws.com:443",
 * ]);
 * ```
 */
export function awsS3Hosts(bucket: string, region: string): string[] {
  const suffix = awsDnsSuffix(region);
  const fips = awsEnv("AWS_USE_FIPS_ENDPOINT") === "true";
  const dual = awsEnv("AWS_USE_DUALSTACK_ENDPOINT") === "true";
  const service = `s3${fips ? "-fips" : ""}${dual ? ".dualstack" : ""}`;
  return [`${bucket}.${service}.${region}.${suffix}:443`, `${service}.${region}.${suffix}:443`];
}

/**
 * The permission scope for an S3 location: its hosts plus what every AWS step gets (`lib/aws/scope.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3Scope } from "./scope.ts";
 *
 * assert.deepEqual(s3Scope("s3://lake/raw", { endpoint: "http://127.0.0.1:7480" }).net, ["127.0.0.1:7480"]);
 * ```
 */
export function s3Scope(url: string, settings?: S3Settings): PermissionScope {
  const { bucket } = parseS3Url(url);
  const config = resolveS3Config(settings);
  const hosts: string[] = [];
  if (config.endpoint) {
    hosts.push(hostPort(config.endpoint));
    if (!config.forcePathStyle) hosts.push(`${bucket}.${hostPort(config.endpoint)}`);
  } else {
    hosts.push(...awsS3Hosts(bucket, config.region));
  }
  const scope = awsScope(hosts, {
    customEndpoint: config.endpoint !== undefined,
    settings: { region: config.region },
  });
  return { ...scope, env: [...AWS_ENV_VARS] };
}

/**
 * Where an S3 step connects and what it reads, computed without loading the AWS SDK: the parent process uses
 * it for `lakerun plan` and the step's Worker permissions, and the Worker uses the same functions to build its
 * client, so the two always agree.
 *
 * The scope of a step touching `s3://bucket/prefix`:
 *
 * - **net**, with a custom endpoint (the `s3` block's `endpoint`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`):
 *   that endpoint's `host:port` only (plus `bucket.host:port` when `force_path_style` is `false`). Credentials
 *   then come from the environment or the shared files; nothing else is contacted.
 * - **net**, for AWS itself: the bucket's virtual host and the regional S3 endpoint (path-style requests, buckets
 *   with dots), honouring `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT`; what the default credential
 *   chain contacts: the regional STS endpoint (web identity, assume-role profiles; `sts.amazonaws.com` too with
 *   `AWS_STS_REGIONAL_ENDPOINTS=legacy`, or `AWS_ENDPOINT_URL_STS`), GitHub's OIDC token service
 *   (`ACTIONS_ID_TOKEN_REQUEST_URL`) when set, container credentials (`AWS_CONTAINER_CREDENTIALS_*`) when set,
 *   and the EC2 instance metadata service `169.254.169.254:80` unless `AWS_EC2_METADATA_DISABLED=true`.
 * - **env**: {@link S3_ENV_VARS}.
 * - **read**: the shared config and credentials files, the web identity token file and `AWS_CA_BUNDLE`.
 *
 * Not covered: IAM Identity Center (SSO) profiles (their token cache and portal host are not granted) and
 * `credential_process` (no program may be started); both fail with a permission error naming the resource.
 *
 * @module
 */
import type { PermissionScope, S3Settings } from "../../../sdk/executor.ts";

/** Environment variables an S3 step may read: the AWS SDK's, the home folder's, and GitHub's OIDC ones. */
export const S3_ENV_VARS: string[] = [
  "AWS_*",
  "HOME",
  "USERPROFILE",
  "HOMEPATH",
  "HOMEDRIVE",
  "ACTIONS_ID_TOKEN_REQUEST_URL",
  "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
  // read by the SDK's recursion-detection middleware on every request
  "_X_AMZN_TRACE_ID",
];

/** The EC2 instance metadata service, the last link of the default credential chain. */
export const IMDS_HOST = "169.254.169.254:80";

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
}

/** Reads one environment variable, `undefined` when unset, empty or not permitted. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Splits `s3://bucket/prefix` into bucket and prefix (without leading or trailing `/`).
 *
 * @example
 * ```ts
 * parseS3Url("s3://lake/raw/2024/"); // { bucket: "lake", prefix: "raw/2024" }
 * parseS3Url("s3://lake"); // { bucket: "lake", prefix: "" }
 * ```
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!match || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(match[1])) {
    throw new Error(`invalid S3 location ${JSON.stringify(url)} (expected s3://bucket/prefix)`);
  }
  const prefix = match[2].replace(/^\/+|\/+$/g, "");
  if (prefix && prefix.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new Error(`invalid S3 location ${JSON.stringify(url)}: empty, '.' or '..' segment in the prefix`);
  }
  return { bucket: match[1], prefix };
}

/**
 * The endpoint URL S3 requests go to, from the routine's `s3` block or the AWS variables; `undefined` for AWS.
 *
 * @example
 * ```ts
 * s3EndpointOf({ endpoint: "http://127.0.0.1:7480" }); // "http://127.0.0.1:7480"
 * ```
 */
export function s3EndpointOf(settings?: S3Settings): string | undefined {
  return settings?.endpoint ?? env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL");
}

/**
 * The region: the routine's `s3` block, `AWS_REGION`, `AWS_DEFAULT_REGION`, the active profile's `region` in
 * the shared config file, else `us-east-1`.
 *
 * @example
 * ```ts
 * s3RegionOf({ region: "eu-west-1" }); // "eu-west-1"
 * ```
 */
export function s3RegionOf(settings?: S3Settings): string {
  return settings?.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? profileSetting("region") ??
    "us-east-1";
}

/**
 * The full connection settings. With a custom endpoint, path-style addressing and `WHEN_REQUIRED` checksums
 * are the defaults (what S3-compatible servers such as Ceph, MinIO or R2 need); for AWS, virtual hosts and the
 * SDK's `WHEN_SUPPORTED` checksums.
 *
 * @example
 * ```ts
 * resolveS3Config({ endpoint: "http://127.0.0.1:7480" });
 * // { endpoint: "http://127.0.0.1:7480", region: "us-east-1", forcePathStyle: true, checksumMode: "WHEN_REQUIRED" }
 * ```
 */
export function resolveS3Config(settings?: S3Settings): S3Config {
  const endpoint = s3EndpointOf(settings);
  return {
    endpoint,
    region: s3RegionOf(settings),
    forcePathStyle: settings?.force_path_style ?? endpoint !== undefined,
    checksumMode: settings?.checksum_mode ?? (endpoint ? "WHEN_REQUIRED" : "WHEN_SUPPORTED"),
  };
}

/** The shared config file the SDK reads. */
export function sharedConfigFile(): string | undefined {
  const home = env("HOME") ?? env("USERPROFILE");
  return env("AWS_CONFIG_FILE") ?? (home ? `${home}/.aws/config` : undefined);
}

/** The shared credentials file the SDK reads. */
export function sharedCredentialsFile(): string | undefined {
  const home = env("HOME") ?? env("USERPROFILE");
  return env("AWS_SHARED_CREDENTIALS_FILE") ?? (home ? `${home}/.aws/credentials` : undefined);
}

/** A setting of the active profile (`AWS_PROFILE`, else `default`) in the shared config file. */
function profileSetting(key: string): string | undefined {
  const file = sharedConfigFile();
  if (!file) return undefined;
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return undefined; // absent or not readable: the SDK would not find it either
  }
  const profile = env("AWS_PROFILE") ?? "default";
  let inProfile = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      const name = section[1].replace(/^profile\s+/, "");
      inProfile = name === profile;
      continue;
    }
    const pair = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (inProfile && pair && pair[1] === key) return pair[2] || undefined;
  }
  return undefined;
}

/** `host:port` of a URL, with the scheme's default port. */
function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/**
 * The hosts the SDK contacts for `bucket` on AWS (no custom endpoint): virtual host and regional endpoint.
 *
 * @example
 * ```ts
 * awsS3Hosts("lake", "eu-west-1"); // ["lake.s3.eu-west-1.amazonaws.com:443", "s3.eu-west-1.amazonaws.com:443"]
 * ```
 */
export function awsS3Hosts(bucket: string, region: string): string[] {
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  const fips = env("AWS_USE_FIPS_ENDPOINT") === "true";
  const dual = env("AWS_USE_DUALSTACK_ENDPOINT") === "true";
  const service = `s3${fips ? "-fips" : ""}${dual ? ".dualstack" : ""}`;
  return [`${bucket}.${service}.${region}.${suffix}:443`, `${service}.${region}.${suffix}:443`];
}

/** The hosts the default credential chain may contact on AWS, given the current environment. */
export function credentialChainHosts(region: string): string[] {
  const hosts: string[] = [];
  const stsEndpoint = env("AWS_ENDPOINT_URL_STS");
  if (stsEndpoint) {
    hosts.push(hostPort(stsEndpoint));
  } else {
    hosts.push(`sts.${region}.${region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com"}:443`);
    if (env("AWS_STS_REGIONAL_ENDPOINTS") === "legacy") hosts.push("sts.amazonaws.com:443");
  }
  const oidc = env("ACTIONS_ID_TOKEN_REQUEST_URL");
  if (oidc) hosts.push(hostPort(oidc));
  const fullUri = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (fullUri) hosts.push(hostPort(fullUri));
  else if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) hosts.push("169.254.170.2:80");
  if (
    !fullUri && !env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") && env("AWS_EC2_METADATA_DISABLED") !== "true"
  ) {
    hosts.push(IMDS_HOST);
  }
  return hosts;
}

/**
 * The permission scope for an S3 location; see the module documentation for what each part covers.
 *
 * @example
 * ```ts
 * s3Scope("s3://lake/raw", { endpoint: "http://127.0.0.1:7480" }).net; // ["127.0.0.1:7480"]
 * ```
 */
export function s3Scope(url: string, settings?: S3Settings): PermissionScope {
  const { bucket } = parseS3Url(url);
  const config = resolveS3Config(settings);
  const net: string[] = [];
  if (config.endpoint) {
    net.push(hostPort(config.endpoint));
    if (!config.forcePathStyle) net.push(`${bucket}.${hostPort(config.endpoint)}`);
  } else {
    net.push(...awsS3Hosts(bucket, config.region), ...credentialChainHosts(config.region));
  }
  const read = [
    sharedConfigFile(),
    sharedCredentialsFile(),
    env("AWS_WEB_IDENTITY_TOKEN_FILE"),
    env("AWS_CA_BUNDLE"),
  ].filter((p): p is string => !!p);
  return { net, env: [...S3_ENV_VARS], read };
}

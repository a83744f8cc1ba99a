/**
 * What any AWS step connects to and reads, computed without loading the AWS SDK: the parent process uses it
 * for `lakerun plan` and the step's Worker permissions, and the Worker uses the same functions to build its
 * clients, so the two always agree. Each service adds only its own hosts ({@link awsServiceScope}); S3 adds
 * bucket hosts in `lib/aws/s3/scope.ts`.
 *
 * The scope of a step using an AWS service:
 *
 * - **net**, with a custom endpoint (the routine's `aws.endpoints.<service>`, `AWS_ENDPOINT_URL_<SERVICE>`,
 *   `AWS_ENDPOINT_URL`): that endpoint's `host:port` only. Credentials then come from the environment or the
 *   shared files; nothing else is contacted.
 * - **net**, for AWS itself: the service's regional endpoint, and what the default credential chain contacts:
 *   the regional STS endpoint (web identity, assume-role profiles; `sts.amazonaws.com` too with
 *   `AWS_STS_REGIONAL_ENDPOINTS=legacy`, or `AWS_ENDPOINT_URL_STS`), GitHub's OIDC token service
 *   (`ACTIONS_ID_TOKEN_REQUEST_URL`) when set, container credentials (`AWS_CONTAINER_CREDENTIALS_*`) when set,
 *   and the EC2 instance metadata service `169.254.169.254:80` unless `AWS_EC2_METADATA_DISABLED=true`.
 * - **env**: {@link AWS_ENV_VARS}.
 * - **read**: the shared config and credentials files, the web identity token file and `AWS_CA_BUNDLE`.
 *
 * Not covered: IAM Identity Center (SSO) profiles (their token cache and portal host are not granted) and
 * `credential_process` (no program may be started); both fail with a permission error naming the resource.
 *
 * @module
 */
import type { PermissionScope } from "../scope.ts";
import type { AwsService, AwsSettings } from "./settings.ts";

/** Environment variables an AWS step may read: the AWS SDK's, the home folder's, and GitHub's OIDC ones. */
export const AWS_ENV_VARS: readonly string[] = [
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

/** The host name prefix of each service's AWS endpoint (`athena.eu-west-1.amazonaws.com`). */
const SERVICE_HOST_PREFIX: Record<AwsService, string> = {
  s3: "s3",
  athena: "athena",
  glue: "glue",
  redshift_data: "redshift-data",
  sts: "sts",
};

/** Reads one environment variable, `undefined` when unset, empty or not permitted. */
export function awsEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * `host:port` of a URL, with the scheme's default port.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostPort } from "./scope.ts";
 *
 * assert.equal(hostPort("https://athena.eu-west-1.amazonaws.com"), "athena.eu-west-1.amazonaws.com:443");
 * assert.equal(hostPort("http://127.0.0.1:5000/"), "127.0.0.1:5000");
 * ```
 */
export function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/** The DNS suffix of AWS endpoints in `region`. */
export function awsDnsSuffix(region: string): string {
  return region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
}

/** The active profile: the routine's `aws.profile`, `AWS_PROFILE`, else `default`. */
export function awsProfileOf(settings?: AwsSettings): string {
  return settings?.profile ?? awsEnv("AWS_PROFILE") ?? "default";
}

/**
 * The region: the routine's setting, `AWS_REGION`, `AWS_DEFAULT_REGION`, the active profile's `region` in the
 * shared config file, else `us-east-1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsRegionOf } from "./scope.ts";
 *
 * assert.equal(awsRegionOf({ region: "eu-west-1" }), "eu-west-1");
 * ```
 */
export function awsRegionOf(settings?: AwsSettings): string {
  return settings?.region ?? awsEnv("AWS_REGION") ?? awsEnv("AWS_DEFAULT_REGION") ??
    profileSetting("region", awsProfileOf(settings)) ?? "us-east-1";
}

/**
 * The custom endpoint of a service: the routine's `aws.endpoints.<service>`, `AWS_ENDPOINT_URL_<SERVICE>`,
 * then `AWS_ENDPOINT_URL`; `undefined` for AWS itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsEndpointOf } from "./scope.ts";
 *
 * assert.equal(awsEndpointOf("glue", { endpoints: { glue: "http://127.0.0.1:5000" } }), "http://127.0.0.1:5000");
 * ```
 */
export function awsEndpointOf(service: AwsService, settings?: AwsSettings): string | undefined {
  return settings?.endpoints?.[service] ?? awsEnv(`AWS_ENDPOINT_URL_${service.toUpperCase()}`) ??
    awsEnv("AWS_ENDPOINT_URL");
}

/**
 * The URL requests to a service go to: its custom endpoint, else its regional AWS endpoint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsServiceUrl } from "./scope.ts";
 *
 * assert.equal(
 *   awsServiceUrl("redshift_data", { region: "eu-west-1", endpoints: {} }),
 *   "https://redshift-data.eu-west-1.amazonaws.com",
 * );
 * ```
 */
export function awsServiceUrl(service: AwsService, settings?: AwsSettings): string {
  const endpoint = awsEndpointOf(service, settings);
  if (endpoint) return endpoint.replace(/\/+$/, "");
  const region = awsRegionOf(settings);
  return `https://${SERVICE_HOST_PREFIX[service]}.${region}.${awsDnsSuffix(region)}`;
}

/** The shared config file the SDK reads. */
export function sharedConfigFile(): string | undefined {
  const home = awsEnv("HOME") ?? awsEnv("USERPROFILE");
  return awsEnv("AWS_CONFIG_FILE") ?? (home ? `${home}/.aws/config` : undefined);
}

/** The shared credentials file the SDK reads. */
export function sharedCredentialsFile(): string | undefined {
  const home = awsEnv("HOME") ?? awsEnv("USERPROFILE");
  return awsEnv("AWS_SHARED_CREDENTIALS_FILE") ?? (home ? `${home}/.aws/credentials` : undefined);
}

/** A setting of `profile` (default: the active one) in the shared config file. */
export function profileSetting(key: string, profile = awsProfileOf()): string | undefined {
  const file = sharedConfigFile();
  if (!file) return undefined;
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return undefined; // absent or not readable: the SDK would not find it either
  }
  let inProfile = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      inProfile = section[1].replace(/^profile\s+/, "") === profile;
      continue;
    }
    const pair = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (inProfile && pair && pair[1] === key) return pair[2] || undefined;
  }
  return undefined;
}

/**
 * The hosts the default credential chain may contact on AWS, given the current environment.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { credentialChainHosts } from "./scope.ts";
 *
 * assert.ok(credentialChainHosts("eu-west-1").some((host) => host.startsWith("sts.")));
 * ```
 */
export function credentialChainHosts(region: string, settings?: AwsSettings): string[] {
  const hosts: string[] = [];
  const stsEndpoint = settings?.endpoints?.sts ?? awsEnv("AWS_ENDPOINT_URL_STS");
  if (stsEndpoint) {
    hosts.push(hostPort(stsEndpoint));
  } else {
    hosts.push(`sts.${region}.${awsDnsSuffix(region)}:443`);
    if (awsEnv("AWS_STS_REGIONAL_ENDPOINTS") === "legacy") hosts.push("sts.amazonaws.com:443");
  }
  const oidc = awsEnv("ACTIONS_ID_TOKEN_REQUEST_URL");
  if (oidc) hosts.push(hostPort(oidc));
  const fullUri = awsEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  const relativeUri = awsEnv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (fullUri) hosts.push(hostPort(fullUri));
  else if (relativeUri) hosts.push("169.254.170.2:80");
  if (!fullUri && !relativeUri && awsEnv("AWS_EC2_METADATA_DISABLED") !== "true") hosts.push(IMDS_HOST);
  return hosts;
}

/**
 * What every AWS step needs besides its service hosts: the credential chain's hosts (only when talking to
 * AWS itself: with a custom endpoint, credentials come from the environment and the shared files), the AWS
 * environment variables, and the files the SDK reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsScope } from "./scope.ts";
 *
 * const scope = awsScope(["127.0.0.1:5000"], { customEndpoint: true });
 * assert.deepEqual(scope.net, ["127.0.0.1:5000"]);
 * assert.ok(scope.env?.includes("AWS_*"));
 * ```
 */
export function awsScope(
  serviceHosts: readonly string[],
  options: { customEndpoint: boolean; settings?: AwsSettings },
): PermissionScope {
  const net = [...serviceHosts];
  if (!options.customEndpoint) {
    net.push(...credentialChainHosts(awsRegionOf(options.settings), options.settings));
  }
  const read = [
    sharedConfigFile(),
    sharedCredentialsFile(),
    awsEnv("AWS_WEB_IDENTITY_TOKEN_FILE"),
    awsEnv("AWS_CA_BUNDLE"),
  ].filter((p): p is string => !!p);
  return { net: [...new Set(net)], env: [...AWS_ENV_VARS], read };
}

/**
 * The scope of a step calling one AWS service (Athena, Glue, the Redshift Data API): that service's endpoint
 * plus {@link awsScope}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsServiceScope } from "./scope.ts";
 *
 * const scope = awsServiceScope("athena", { region: "eu-west-1", endpoints: {} });
 * assert.equal(scope.net?.[0], "athena.eu-west-1.amazonaws.com:443");
 * ```
 */
export function awsServiceScope(service: AwsService, settings?: AwsSettings): PermissionScope {
  return awsScope([hostPort(awsServiceUrl(service, settings))], {
    customEndpoint: awsEndpointOf(service, settings) !== undefined,
    settings,
  });
}

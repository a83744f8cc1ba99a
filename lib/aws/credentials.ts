/**
 * AWS credentials from the default chain, shared by every AWS client lakerun builds (S3 through the SDK,
 * Athena, Glue and the Redshift Data API through `lib/aws/json_client.ts`).
 *
 * The chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), `AWS_PROFILE` (or the
 * routine's `aws.profile`) and the shared config/credentials files, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`
 * + `AWS_ROLE_ARN`), GitHub Actions OIDC (`AWS_ROLE_ARN` in a job with `id-token: write`), container and
 * instance credentials. With a custom endpoint only the environment and the shared files are used: a
 * stand-in or an S3-compatible store has no STS or instance metadata of ours to ask.
 *
 * This module loads the SDK's credential providers; import it only in steps that use AWS.
 *
 * @module
 */
import {
  createCredentialChain,
  fromEnv,
  fromIni,
  fromNodeProviderChain,
  fromWebToken,
} from "@aws-sdk/credential-providers";

/** A credential provider as the SDK defines it. */
export type CredentialProvider = ReturnType<typeof fromEnv>;

/** Resolved AWS credentials. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * The SDK's own user-agent provider reads the OS release, which needs `sys` permission a step never has.
 * This one reports the same facts that need no permission.
 */
export const awsUserAgent = (): Promise<[string, string?][]> =>
  Promise.resolve([
    ["lakerun", "0.1"],
    ["aws-sdk-js", "3.1175.0"],
    ["lang/js"],
    ["md/deno", Deno.version.deno],
  ] as [string, string?][]);

/**
 * The credential chain for a client: environment and shared files only with a custom endpoint; otherwise
 * GitHub OIDC first, then the SDK's default chain.
 *
 * @example
 * ```ts ignore
 * import { awsCredentialProvider } from "./credentials.ts";
 *
 * const provider = awsCredentialProvider({ region: "eu-west-1", customEndpoint: false });
 * const { accessKeyId } = await provider(); // may ask STS, IMDS or GitHub's token service
 * ```
 */
export function awsCredentialProvider(
  options: { region: string; customEndpoint: boolean; profile?: string },
): CredentialProvider {
  // the STS client of web identity and assume-role profiles: same region, same permission-free user agent
  const clientConfig = { region: options.region, defaultUserAgentProvider: awsUserAgent };
  const profile = options.profile === undefined ? {} : { profile: options.profile };
  return options.customEndpoint
    ? createCredentialChain(fromEnv(), fromIni({ clientConfig, ...profile }))
    : options.profile !== undefined
    ? fromIni({ clientConfig, ...profile })
    : createCredentialChain(fromGitHubOidc(clientConfig), fromNodeProviderChain({ clientConfig }));
}

/**
 * Web identity straight from GitHub Actions' OIDC token service: used when `AWS_ROLE_ARN` is set in a job with
 * `id-token: write` and neither static keys, a profile nor a token file are configured. The token's audience
 * is `sts.amazonaws.com`, as with aws-actions/configure-aws-credentials.
 */
export function fromGitHubOidc(clientConfig: Record<string, unknown>): CredentialProvider {
  return async (properties) => {
    const get = (name: string) => Deno.env.get(name) || undefined;
    const url = get("ACTIONS_ID_TOKEN_REQUEST_URL");
    const token = get("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    const roleArn = get("AWS_ROLE_ARN");
    if (
      !url || !token || !roleArn || get("AWS_ACCESS_KEY_ID") || get("AWS_PROFILE") ||
      get("AWS_WEB_IDENTITY_TOKEN_FILE")
    ) {
      throw Object.assign(new Error("GitHub OIDC web identity not configured"), {
        name: "CredentialsProviderError",
        tryNextLink: true,
      });
    }
    const request = new URL(url);
    request.searchParams.set("audience", get("AWS_WEB_IDENTITY_AUDIENCE") ?? "sts.amazonaws.com");
    const response = await fetch(request, { headers: { Authorization: `bearer ${token}` } });
    if (!response.ok) {
      await response.body?.cancel();
      throw Object.assign(
        new Error(
          `GitHub's OIDC token service answered HTTP ${response.status} (is 'id-token: write' granted?)`,
        ),
        { name: "CredentialsProviderError", tryNextLink: false },
      );
    }
    const { value } = await response.json() as { value?: string };
    if (!value) throw new Error("GitHub's OIDC token service returned no token");
    return await fromWebToken({
      roleArn,
      webIdentityToken: value,
      roleSessionName: get("AWS_ROLE_SESSION_NAME") ?? `lakerun-${Date.now()}`,
      clientConfig,
    })(properties);
  };
}

/**
 * The one-line explanation of a credential chain's failure for a call to `where`, or `undefined` when `error`
 * is not one: what to set, with the chain's own words when they say more than "not found".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noCredentialsMessage } from "./credentials.ts";
 *
 * const error = Object.assign(new Error("Could not load credentials from any providers"), {
 *   name: "CredentialsProviderError",
 * });
 * assert.equal(
 *   noCredentialsMessage(error, "s3://lake", { customEndpoint: true }),
 *   "no AWS credentials for s3://lake: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE " +
 *     "(a profile in ~/.aws/credentials)",
 * );
 * assert.equal(noCredentialsMessage(new Error("boom"), "s3://lake", { customEndpoint: true }), undefined);
 * ```
 */
export function noCredentialsMessage(
  error: unknown,
  where: string,
  options: { customEndpoint: boolean },
): string | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error.name !== "CredentialsProviderError" && !/Could not load credentials/i.test(error.message)) {
    return undefined;
  }
  const detail = /Could not load credentials|not configured/i.test(error.message)
    ? ""
    : ` (${error.message.split("\n")[0]})`;
  return `no AWS credentials for ${where}${detail}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ` +
    `AWS_PROFILE (a profile in ~/.aws/credentials)${
      options.customEndpoint
        ? ""
        : ", or AWS_ROLE_ARN with web identity (AWS_WEB_IDENTITY_TOKEN_FILE, or GitHub Actions' id-token: write)"
    }`;
}

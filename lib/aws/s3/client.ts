/**
 * S3 clients built from the AWS conventions, and one-line explanations of the usual S3 mistakes.
 *
 * Settings come from the routine's `s3` block, else the AWS variables and shared config (see
 * {@link resolveS3Config}). Credentials come from the default chain: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
 * (+ `AWS_SESSION_TOKEN`), `AWS_PROFILE` and the shared config/credentials files, web identity
 * (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), GitHub Actions OIDC (`AWS_ROLE_ARN` in a job with
 * `id-token: write`), container and instance credentials. With a custom endpoint only the environment and the
 * shared files are used: an S3-compatible server has no STS or instance metadata of ours to ask.
 *
 * This module loads the AWS SDK; import it only where S3 is used (lib/storage/locations.ts loads it lazily).
 *
 * @module
 */
import { S3Client } from "@aws-sdk/client-s3";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import {
  awsCredentialProvider,
  type AwsCredentials,
  awsUserAgent,
  noCredentialsMessage,
} from "../credentials.ts";
import { AWS_RESPONSE_TIMEOUT_MS, awsFetch } from "../fetch.ts";
import type { S3Settings } from "../settings.ts";
import { resolveS3Config, type S3Config } from "./scope.ts";

/** How long a request may wait for the response's headers (the body has its own watchdog in reads). */
export const S3_RESPONSE_TIMEOUT_MS = AWS_RESPONSE_TIMEOUT_MS;

const clients = new Map<string, S3Client>();

/**
 * An S3 client for the routine's `s3` block; clients are shared per configuration within a process.
 *
 * @example One client per configuration
 * ```ts
 * import assert from "node:assert/strict";
 * import { closeS3Clients, s3Client } from "./client.ts";
 *
 * const client = s3Client({ endpoint: "http://127.0.0.1:7480" });
 * assert.equal(s3Client({ endpoint: "http://127.0.0.1:7480" }), client);
 * assert.notEqual(s3Client({ endpoint: "http://127.0.0.1:7481" }), client);
 * assert.equal(client.config.forcePathStyle, true); // the default with a custom endpoint
 * closeS3Clients();
 * ```
 *
 * @example Listing a bucket
 * ```ts ignore
 * import { ListObjectsV2Command } from "@aws-sdk/client-s3";
 * import { s3Client } from "./client.ts";
 *
 * const client = s3Client({ endpoint: "http://127.0.0.1:7480" });
 * const { Contents = [] } = await client.send(new ListObjectsV2Command({ Bucket: "lake" }));
 * ```
 */
export function s3Client(settings?: S3Settings): S3Client {
  const config = resolveS3Config(settings);
  const id = JSON.stringify(config);
  let client = clients.get(id);
  if (!client) {
    client = createS3Client(config);
    clients.set(id, client);
  }
  return client;
}

/**
 * A new S3 client for resolved settings (call `destroy()` when done), optionally with explicit credentials.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createS3Client } from "./client.ts";
 * import { resolveS3Config } from "./scope.ts";
 *
 * const client = createS3Client(resolveS3Config({ region: "eu-west-1" }), {
 *   accessKeyId: "AKIDEXAMPLE",
 *   secretAccessKey: "example",
 * });
 * assert.equal(await client.config.region(), "eu-west-1");
 * assert.equal((await client.config.credentials()).accessKeyId, "AKIDEXAMPLE");
 * client.destroy();
 * ```
 */
export function createS3Client(
  config: S3Config,
  credentials?: AwsCredentials,
): S3Client {
  return new S3Client({
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle,
    requestChecksumCalculation: config.checksumMode,
    responseChecksumValidation: config.checksumMode,
    followRegionRedirects: false, // the other region's host is outside the step's scope: say so instead
    requestHandler: new S3RequestHandler(),
    defaultUserAgentProvider: awsUserAgent,
    credentials: credentials ?? awsCredentialProvider({
      region: config.region,
      customEndpoint: config.endpoint !== undefined,
      profile: config.profile,
    }),
  });
}

/** Request bodies up to this size go through fetch; larger ones (upload parts) through node:http. */
const LARGE_BODY = 1024 * 1024;

type HandlerRequest = Parameters<FetchHttpHandler["handle"]>[0];
type HandlerOptions = Parameters<FetchHttpHandler["handle"]>[1];

/**
 * The S3 client's HTTP: Deno's own fetch for every request without a large body (about half the CPU per
 * request, and per downloaded byte, of the SDK's node:http handler), and node:http for large uploads (fetch
 * copies a request body, which doubles the memory of the parts in flight).
 */
class S3RequestHandler {
  readonly metadata = { handlerProtocol: "http/1.1" };
  readonly #fetch = new FetchHttpHandler({ customFetch: awsFetch });
  // a connection that cannot be made in 10 s, or a socket silent for 2 minutes, fails the request (the SDK
  // then retries it) instead of hanging the step
  readonly #node = new NodeHttpHandler({ connectionTimeout: 10_000, socketTimeout: S3_RESPONSE_TIMEOUT_MS });

  handle(request: HandlerRequest, options?: HandlerOptions) {
    const body = request.body as { byteLength?: number } | undefined;
    return (body?.byteLength ?? 0) > LARGE_BODY
      ? this.#node.handle(request, options)
      : this.#fetch.handle(request, options);
  }

  updateHttpClientConfig(key: never, value: never): void {
    this.#fetch.updateHttpClientConfig(key, value);
    this.#node.updateHttpClientConfig(key, value);
  }

  httpHandlerConfigs(): Record<string, unknown> {
    return { ...this.#fetch.httpHandlerConfigs() };
  }

  destroy(): void {
    this.#fetch.destroy();
    this.#node.destroy();
  }
}

/** Destroys the shared clients (their keep-alive sockets); tests call it at the end. */
export function closeS3Clients(): void {
  for (const client of clients.values()) client.destroy();
  clients.clear();
}

/** Where an S3 request went, for error messages. */
export interface S3Target {
  /** The bucket. */
  bucket: string;
  /** The object key, for requests about one object. */
  key?: string;
  /** The SDK command name without `Command`, e.g. `PutObject`. */
  operation: string;
  /** The connection settings used. */
  config: S3Config;
}

/** An S3 request that failed, explained in one line (never with a secret in it). */
export class S3RequestError extends Error {
  /** An error with its one-line `message` and classification `code`. */
  constructor(
    message: string,
    /** A short classification: `no-bucket`, `no-key`, `access-denied`, `region`, `no-credentials`, … */
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "S3RequestError";
  }
}

const ACTIONS: Record<string, string> = {
  ListObjectsV2: "s3:ListBucket",
  HeadObject: "s3:GetObject",
  GetObject: "s3:GetObject",
  PutObject: "s3:PutObject",
  CreateMultipartUpload: "s3:PutObject",
  UploadPart: "s3:PutObject",
  UploadPartCopy: "s3:GetObject on the source and s3:PutObject",
  CompleteMultipartUpload: "s3:PutObject",
  CopyObject: "s3:GetObject on the source and s3:PutObject",
  DeleteObject: "s3:DeleteObject",
  DeleteObjects: "s3:DeleteObject",
  ListMultipartUploads: "s3:ListBucketMultipartUploads",
  AbortMultipartUpload: "s3:AbortMultipartUpload",
  HeadBucket: "s3:ListBucket",
};

/**
 * The error to throw for a failed S3 request: a {@link S3RequestError} with a clear one-line message for the
 * usual mistakes (missing bucket, access denied, wrong secret, unknown key ID, wrong region, no credentials,
 * unreachable endpoint); permission refusals of the step's sandbox and aborts are returned unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { explainS3Error, S3RequestError } from "./client.ts";
 * import { resolveS3Config } from "./scope.ts";
 *
 * const config = resolveS3Config({ endpoint: "http://127.0.0.1:7480" });
 * // what `client.send(new ListObjectsV2Command({ Bucket: "lake" }))` rejects with, without the bucket
 * const sdkError = Object.assign(new Error("The specified bucket does not exist"), {
 *   name: "NoSuchBucket",
 *   $metadata: { httpStatusCode: 404 },
 * });
 * const error = explainS3Error(sdkError, { bucket: "lake", operation: "ListObjectsV2", config });
 * assert.ok(error instanceof S3RequestError);
 * assert.equal(error.code, "no-bucket");
 * assert.equal(
 *   error.message,
 *   "bucket 'lake' does not exist at http://127.0.0.1:7480: create it or correct the s3:// location",
 * );
 * const abort = new DOMException("aborted", "AbortError");
 * assert.equal(explainS3Error(abort, { bucket: "lake", operation: "ListObjectsV2", config }), abort);
 * ```
 */
export function explainS3Error(error: unknown, target: S3Target): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  if (error instanceof S3RequestError) return error;
  if (error.name === "NotCapable" || error.name === "PermissionDenied" || error.name === "AbortError") {
    return error;
  }
  const e = error as Error & {
    Code?: string;
    Region?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    $response?: { headers?: Record<string, string> };
  };
  const name = e.Code ?? e.name;
  const status = e.$metadata?.httpStatusCode;
  const where = target.key === undefined ? `s3://${target.bucket}` : `s3://${target.bucket}/${target.key}`;
  const server = target.config.endpoint ? `at ${target.config.endpoint}` : `in AWS (${target.config.region})`;
  const fail = (code: string, message: string) => new S3RequestError(message, code, { cause: error });

  const noCredentials = noCredentialsMessage(error, where, { customEndpoint: !!target.config.endpoint });
  if (noCredentials) return fail("no-credentials", noCredentials);
  if (name === "NoSuchBucket") {
    return fail(
      "no-bucket",
      `bucket '${target.bucket}' does not exist ${server}: create it or correct the s3:// location`,
    );
  }
  if (name === "NoSuchKey" || (status === 404 && target.key !== undefined && name === "NotFound")) {
    return fail("no-key", `${where} does not exist`);
  }
  const region = e.$response?.headers?.["x-amz-bucket-region"] ?? e.Region ??
    /expecting '([a-z0-9-]+)'/.exec(error.message)?.[1];
  if (
    name === "PermanentRedirect" || name === "AuthorizationHeaderMalformed" || status === 301 ||
    (name === "IllegalLocationConstraintException")
  ) {
    const actual = region && region !== target.config.region ? region : undefined;
    return fail(
      "region",
      actual
        ? `bucket '${target.bucket}' is in region ${actual}, not ${target.config.region}: set "s3": {"region": "${actual}"} in the routine or AWS_REGION=${actual}`
        : `bucket '${target.bucket}' is not in region ${target.config.region}: set the bucket's region in the routine's "s3" block or AWS_REGION`,
    );
  }
  if (name === "InvalidAccessKeyId") {
    return fail(
      "access-denied",
      `access denied to ${where}: the access key ID is not known ${server}; check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id`,
    );
  }
  if (name === "SignatureDoesNotMatch") {
    return fail(
      "access-denied",
      `access denied to ${where}: the secret access key does not match the access key ID; check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key`,
    );
  }
  if (name === "RequestTimeTooSkewed") {
    return fail("clock", `request to ${where} refused: this machine's clock is too far from the server's`);
  }
  if (name === "ExpiredToken" || name === "TokenRefreshRequired") {
    return fail(
      "access-denied",
      `access denied to ${where}: the session token has expired; renew the credentials`,
    );
  }
  if (name === "AccessDenied" || name === "Forbidden" || status === 403) {
    const action = ACTIONS[target.operation] ?? `the ${target.operation} permission`;
    return fail(
      "access-denied",
      `access denied to ${where} (${target.operation}): wrong credentials (a secret that does not match its key) ` +
        `or missing permission (${action}) for them`,
    );
  }
  const network = e.code ?? (error.cause as { code?: string } | undefined)?.code;
  if (
    network && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT|EHOSTUNREACH)$/.test(network) ||
    name === "TimeoutError"
  ) {
    return fail(
      "unreachable",
      `cannot reach S3 ${target.config.endpoint ?? `in ${target.config.region}`} for ${where} (${
        network ?? name
      }): check the endpoint and that the server is running`,
    );
  }
  const shown = error.message && error.message !== "UnknownError" ? `: ${error.message.split("\n")[0]}` : "";
  return fail(
    "other",
    `S3 ${target.operation} on ${where} failed: ${name}${status ? ` (HTTP ${status})` : ""}${shown}`,
  );
}

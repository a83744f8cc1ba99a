/**
 * One small client for the AWS services that speak the JSON protocol (awsJson1_1): Athena, Glue and the
 * Redshift Data API. A request is a signed `POST /` with an `X-Amz-Target` header and a JSON body; so one
 * signer, one retry policy and one error type serve all three, instead of three SDK clients (~80 ms and
 * ~30 MB each to load in a step's Worker, and each wanting `sys` permissions to build its user agent).
 *
 * - **Signed** with SigV4 (`@smithy/signature-v4`, the SDK's own signer) using the credential chain of
 *   `lib/aws/credentials.ts`.
 * - **Retries:** throttling (`ThrottlingException`, `TooManyRequestsException`, HTTP 429, the Redshift Data
 *   API's `ActiveStatementsExceededException` quota, …) is retried with
 *   exponential backoff and full jitter for as long as {@link AwsJsonClientOptions.throttleBudgetMs} allows:
 *   a throttled status poll never fails a task. Server errors (5xx) and network failures are retried a few
 *   times — for requests marked `idempotent` only, because a request that may have reached AWS must not be
 *   sent twice when sending it twice would start something twice (Glue's StartJobRun has no client token).
 * - **Errors** are {@link AwsServiceError}s naming the service, operation, AWS error code and message.
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";
import { abortable } from "../async.ts";
import { awsCredentialProvider, type CredentialProvider, noCredentialsMessage } from "./credentials.ts";
import { awsFetch } from "./fetch.ts";
import { awsEndpointOf, awsRegionOf, awsServiceUrl } from "./scope.ts";
import type { AwsService, AwsSettings } from "./settings.ts";

/** How each JSON-protocol service is addressed and signed. */
const SERVICES = {
  athena: { target: "AmazonAthena", signingName: "athena", label: "Athena" },
  glue: { target: "AWSGlue", signingName: "glue", label: "Glue" },
  redshift_data: { target: "RedshiftData", signingName: "redshift-data", label: "Redshift Data API" },
} as const satisfies Partial<Record<AwsService, { target: string; signingName: string; label: string }>>;

/** A service lakerun reaches through {@link AwsJsonClient}. */
export type AwsJsonService = keyof typeof SERVICES;

/** AWS error codes that mean "slow down": the request was refused, not performed. */
const THROTTLING = new Set([
  "ThrottlingException",
  "Throttling",
  "TooManyRequestsException",
  "ThrottledException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "ProvisionedThroughputExceededException",
  "SlowDown",
  "LimitExceededException",
  // the Redshift Data API's quotas: too many statements (or sessions) running at once; the request was refused
  // and goes through once some end
  "ActiveStatementsExceededException",
  "ActiveSessionsExceededException",
]);

/** Network failure codes for which the request was certainly not received (safe to send again). */
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);

/** Options for {@link AwsJsonClient}. */
export interface AwsJsonClientOptions {
  /** The routine's `aws` block. */
  settings?: AwsSettings;
  /** Explicit credentials (tests, benchmarks); default: the credential chain. */
  credentials?: CredentialProvider;
  /** How long throttling may go on for one call before it fails. Default 10 minutes. */
  throttleBudgetMs?: number;
  /** Attempts for server errors and network failures of idempotent calls. Default 4. */
  maxAttempts?: number;
  /** Base of the exponential backoff. Default 200 ms. */
  baseDelayMs?: number;
  /** Told about every retry, for the task's log. */
  onRetry?: (info: { operation: string; code: string; attempt: number; delayMs: number }) => void;
}

/** Options for one call. */
export interface AwsCallOptions {
  signal?: AbortSignal;
  /**
   * True when sending the request twice does no harm (reads, stops, calls carrying an idempotency token):
   * then server errors and ambiguous network failures are retried too. Default false.
   */
  idempotent?: boolean;
}

/** A failed AWS call, explained in one line; never holds a secret. */
export class AwsServiceError extends Error {
  /** An error for one failed call. */
  constructor(
    /** `Athena`, `Glue`, `Redshift Data API`. */
    readonly service: string,
    /** The operation, e.g. `StartQueryExecution`. */
    readonly operation: string,
    /** The AWS error code (`InvalidRequestException`), or `NetworkError` / `HTTP 500`. */
    readonly code: string,
    /** AWS's own message. */
    readonly awsMessage: string,
    /** The HTTP status, when there was a response. */
    readonly status?: number,
    options?: ErrorOptions & { sent?: boolean },
  ) {
    super(`${service} ${operation} failed: ${code}${awsMessage ? `: ${awsMessage}` : ""}`, options);
    this.name = "AwsServiceError";
    this.sent = options?.sent ?? true;
  }

  /** False when the request never left (no credentials to sign it with): AWS did nothing. */
  readonly sent: boolean;

  /**
   * True when an earlier attempt of the same call, retried, may have been carried out (a server error or a
   * network failure after the request left): this error alone then does not tell whether AWS did nothing.
   * Set by {@link AwsJsonClient.call}.
   */
  retriedAfterUncertain = false;

  /** True for throttling errors. */
  get throttled(): boolean {
    return THROTTLING.has(this.code) || this.status === 429;
  }
}

/**
 * True when AWS did not carry out a request: it answered with a client error (4xx, not throttling), or the
 * request never left (no credentials to sign it with). A start request refused so started nothing, which a
 * step's ledger can record as such (a 5xx, a throttle or a network error leave that unknown).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AwsServiceError, isRefusal } from "./json_client.ts";
 *
 * assert.equal(isRefusal(new AwsServiceError("Glue", "StartJobRun", "EntityNotFoundException", "no job", 400)), true);
 * assert.equal(isRefusal(new AwsServiceError("Glue", "StartJobRun", "NoCredentials", "none", undefined, { sent: false })), true);
 * assert.equal(isRefusal(new AwsServiceError("Glue", "StartJobRun", "ThrottlingException", "slow down", 400)), false);
 * assert.equal(isRefusal(new AwsServiceError("Glue", "StartJobRun", "InternalServiceException", "oops", 500)), false);
 * assert.equal(isRefusal(new AwsServiceError("Glue", "StartJobRun", "NetworkError", "reset")), false);
 * ```
 */
export function isRefusal(error: unknown): boolean {
  return error instanceof AwsServiceError &&
    (!error.sent || (error.status !== undefined && error.status < 500 && !error.throttled));
}

/** Client errors AWS answers before doing anything: the request was invalid or not allowed. */
const REFUSED = new Set([
  "ValidationException",
  "InvalidRequestException",
  "InvalidParameterException",
  "AccessDeniedException",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "IncompleteSignature",
  "MissingAuthenticationToken",
  "ExpiredTokenException",
  "ResourceNotFoundException",
]);

/**
 * True when AWS certainly carried out no attempt of a call that failed with `error`: it never left, or every
 * attempt was throttled (a quota such as the Redshift Data API's active statements: refused, not performed)
 * or refused by a client error that AWS answers before doing anything (`ValidationException`,
 * `AccessDeniedException`, …). Then a start request started nothing, and a step's ledger can record it as
 * ended. A server error, a network failure or another 4xx (a reply that may have come after the work was
 * done), now or in an earlier attempt, leaves that unknown. Stricter than {@link isRefusal}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AwsServiceError, notCarriedOut } from "./json_client.ts";
 *
 * const quota = new AwsServiceError("Redshift Data API", "BatchExecuteStatement", "ActiveStatementsExceededException", "", 400);
 * assert.equal(notCarriedOut(quota), true);
 * quota.retriedAfterUncertain = true; // an earlier attempt got a 500: it may have run
 * assert.equal(notCarriedOut(quota), false);
 * assert.equal(notCarriedOut(new AwsServiceError("Redshift Data API", "ExecuteStatement", "ValidationException", "bad", 400)), true);
 * assert.equal(notCarriedOut(new AwsServiceError("Glue", "StartJobRun", "InternalServiceException", "oops", 500)), false);
 * assert.equal(notCarriedOut(new AwsServiceError("Redshift Data API", "ExecuteStatement", "ServiceUnavailable", "", 400)), false);
 * ```
 */
export function notCarriedOut(error: unknown): boolean {
  return error instanceof AwsServiceError && !error.retriedAfterUncertain &&
    (!error.sent || error.throttled ||
      (error.status !== undefined && error.status < 500 && REFUSED.has(error.code)));
}

/** SHA-256 and HMAC-SHA-256 for the signer, from node:crypto. */
class Sha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined
      ? createHash("sha256")
      : createHmac("sha256", typeof secret === "string" ? secret : toBytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(typeof data === "string" ? data : toBytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
  reset(): void {
    throw new Error("not supported");
  }
}

function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A client for one JSON-protocol AWS service.
 *
 * @example Asking Athena for a query's state
 * ```ts ignore
 * import { AwsJsonClient } from "./json_client.ts";
 *
 * const athena = new AwsJsonClient("athena", { settings: { region: "eu-west-1" } });
 * const { QueryExecution } = await athena.call<{ QueryExecution: { Status: { State: string } } }>(
 *   "GetQueryExecution",
 *   { QueryExecutionId: "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111" },
 *   { idempotent: true },
 * );
 * console.log(QueryExecution.Status.State); // "RUNNING", "SUCCEEDED", …
 * ```
 *
 * @example A call that cannot reach the service
 * ```ts
 * import assert from "node:assert/strict";
 * import { AwsJsonClient, AwsServiceError } from "./json_client.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * listener.close(); // nothing listens on that port any more
 * const endpoint = `http://127.0.0.1:${listener.addr.port}`;
 * const athena = new AwsJsonClient("athena", {
 *   settings: { region: "eu-west-1", endpoints: { athena: endpoint } },
 *   credentials: () => Promise.resolve({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "example" }),
 *   maxAttempts: 1,
 * });
 * assert.equal(athena.url, endpoint);
 * const error = await athena.call("GetQueryExecution", { QueryExecutionId: "q-1" }).catch((e) => e);
 * assert.ok(error instanceof AwsServiceError);
 * assert.equal(error.code, "NetworkError");
 * assert.equal(
 *   error.message,
 *   `Athena GetQueryExecution failed: NetworkError: cannot reach ${endpoint} (ECONNREFUSED)`,
 * );
 * ```
 */
export class AwsJsonClient {
  /** The service's name in messages (`Athena`). */
  readonly label: string;
  /** Where requests go. */
  readonly url: string;
  readonly #service: (typeof SERVICES)[AwsJsonService];
  readonly #signer: SignatureV4;
  readonly #customEndpoint: boolean;
  readonly #options: AwsJsonClientOptions;

  /** A client for `service` with the routine's settings. */
  constructor(service: AwsJsonService, options: AwsJsonClientOptions = {}) {
    this.#service = SERVICES[service];
    this.#options = options;
    this.label = this.#service.label;
    this.url = awsServiceUrl(service, options.settings);
    const region = awsRegionOf(options.settings);
    this.#customEndpoint = awsEndpointOf(service, options.settings) !== undefined;
    this.#signer = new SignatureV4({
      service: this.#service.signingName,
      region,
      sha256: Sha256,
      credentials: options.credentials ?? awsCredentialProvider({
        region,
        customEndpoint: this.#customEndpoint,
        profile: options.settings?.profile,
      }),
    });
  }

  /** Calls `operation` with `input`; resolves to AWS's answer, or rejects with an {@link AwsServiceError}. */
  async call<T = Record<string, unknown>>(
    operation: string,
    input: Record<string, unknown>,
    options: AwsCallOptions = {},
  ): Promise<T> {
    const throttleBudget = this.#options.throttleBudgetMs ?? 600_000;
    const maxAttempts = this.#options.maxAttempts ?? 4;
    const base = this.#options.baseDelayMs ?? 200;
    const started = performance.now();
    let uncertain = false; // an attempt so far may have been carried out
    for (let attempt = 1;; attempt++) {
      options.signal?.throwIfAborted();
      let failure: AwsServiceError;
      try {
        return await this.#send<T>(operation, input, options.signal);
      } catch (error) {
        if (!(error instanceof AwsServiceError)) throw error;
        failure = error;
      }
      const network = failure.code === "NetworkError"
        ? (failure.cause as { code?: string })?.code
        : undefined;
      const retryable = failure.throttled
        ? performance.now() - started < throttleBudget
        : attempt < maxAttempts &&
          ((network !== undefined && NOT_SENT.has(network)) ||
            (options.idempotent === true && (network !== undefined || (failure.status ?? 0) >= 500)));
      if (!retryable) {
        failure.retriedAfterUncertain = uncertain;
        throw failure;
      }
      if (!notCarriedOut(failure) && !(network !== undefined && NOT_SENT.has(network))) uncertain = true;
      // full jitter over an exponential ceiling (capped at 20 s)
      const delayMs = Math.random() * Math.min(20_000, base * 2 ** Math.min(attempt, 16));
      this.#options.onRetry?.({ operation, code: failure.code, attempt, delayMs });
      await abortable(new Promise((resolve) => setTimeout(resolve, delayMs)), options.signal);
    }
  }

  /** Signs a request; a credential chain that finds nothing fails the call before anything is sent. */
  async #sign(operation: string, request: Parameters<SignatureV4["sign"]>[0]) {
    try {
      return await this.#signer.sign(request);
    } catch (error) {
      const message = noCredentialsMessage(error, `${this.label} ${operation}`, {
        customEndpoint: this.#customEndpoint,
      });
      if (!message) throw error;
      throw new AwsServiceError(this.label, operation, "NoCredentials", message, undefined, {
        cause: error,
        sent: false,
      });
    }
  }

  async #send<T>(operation: string, input: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    const url = new URL(this.url);
    const body = JSON.stringify(input);
    const signed = await this.#sign(operation, {
      method: "POST",
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname || "/",
      query: {},
      headers: {
        host: url.host,
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": `${this.#service.target}.${operation}`,
      },
      body,
    });
    let response: Response;
    try {
      response = await awsFetch(url, { method: "POST", headers: signed.headers, body, signal });
    } catch (error) {
      const name = (error as Error).name;
      if (name === "NotCapable" || name === "PermissionDenied" || name === "AbortError") throw error;
      if ((error as Error).name === "TimeoutError" || (error as { code?: string }).code) {
        throw new AwsServiceError(
          this.label,
          operation,
          "NetworkError",
          `cannot reach ${this.url} (${(error as { code?: string }).code ?? name})`,
          undefined,
          { cause: error },
        );
      }
      throw error;
    }
    const text = await response.text();
    if (response.ok) return (text ? JSON.parse(text) : {}) as T;
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // an HTML error page (a proxy, moto's unimplemented operations): the status says enough
    }
    const type = String(
      parsed.__type ?? response.headers.get("x-amzn-errortype") ?? `HTTP ${response.status}`,
    );
    const code = type.replace(/^.*#/, "").replace(/:.*$/, "");
    const message = String(parsed.message ?? parsed.Message ?? "").split("\n")[0];
    throw new AwsServiceError(this.label, operation, code, message, response.status);
  }
}

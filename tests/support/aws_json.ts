/**
 * The awsJson 1.1 wire plumbing the loopback fakes share (aws_fake.ts for Athena and Glue,
 * redshift_data_fake.ts for the Redshift Data API): `POST /` with `X-Amz-Target: <Service>.<Op>` and a JSON
 * object as body; answers in `application/x-amz-json-1.1` with an `x-amzn-requestid`, errors as AWS sends them
 * (`x-amzn-errortype` and a `__type` in the body); errors injected for the next calls of an operation.
 *
 * @module
 */

/** A JSON object, as requests and answers are. */
export type Json = Record<string, unknown>;

/** An error answered to the client: `{ __type, <messageKey>: message, ...fields }` with HTTP `status`. */
export class AwsJsonError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly fields: Json = {},
    readonly status = 400,
    readonly messageKey: "Message" | "message" = "Message",
  ) {
    super(message);
  }

  /** The error's body, as the service sends it. */
  body(): Json {
    return { __type: this.type, [this.messageKey]: this.message, ...this.fields };
  }
}

/** Epoch seconds with millisecond precision, as awsJson1_1 timestamps are sent. */
export function epochSeconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/** A request's body as a JSON object (`{}` when empty); otherwise a SerializationException naming `fake`. */
export function parseJsonBody(text: string, fake: string): Json {
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AwsJsonError("SerializationException", `${fake}: the body is not JSON`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new AwsJsonError("SerializationException", `${fake}: the body is not a JSON object`);
  }
  return parsed as Json;
}

/** The answer to a call: its result, or the error with its type in a header as well as in the body. */
export function awsJsonResponse(result: Json | AwsJsonError): Response {
  const headers: Record<string, string> = {
    "content-type": "application/x-amz-json-1.1",
    "x-amzn-requestid": crypto.randomUUID(),
  };
  if (!(result instanceof AwsJsonError)) {
    return new Response(JSON.stringify(result), { status: 200, headers });
  }
  headers["x-amzn-errortype"] = result.type;
  return new Response(JSON.stringify(result.body()), { status: result.status, headers });
}

/** An error injected for the next `left` calls of an operation. */
export interface Fault {
  left: number;
  error: () => AwsJsonError;
  /** The operation runs before the error is answered (its reply is lost), rather than not at all. */
  applied: boolean;
}

/** Errors injected per operation target, taken in the order they were added. */
export class FaultQueue {
  readonly #faults = new Map<string, Fault[]>();

  constructor(readonly fake: string) {}

  /** The next `count` calls of `target` get `error()` (after running, with `applied`). */
  add(target: string, count: number, error: () => AwsJsonError, applied: boolean): void {
    if (!(Number.isInteger(count) && count > 0)) {
      throw new TypeError(`${this.fake}: count must be a positive integer`);
    }
    const faults = this.#faults.get(target) ?? [];
    faults.push({ left: count, error, applied });
    this.#faults.set(target, faults);
  }

  /** The fault this call of `target` gets, if any (counted as used). */
  take(target: string): Fault | undefined {
    const fault = this.#faults.get(target)?.find((f) => f.left > 0);
    if (fault) fault.left--;
    return fault;
  }
}

/** An HTTP server on `127.0.0.1` with a free port. */
export interface LoopbackServer {
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Stops it, waiting for the requests it is answering (idempotent). */
  stop(): Promise<void>;
}

/** Serves `handle` on `127.0.0.1` with a free port. */
export function serveLoopback(handle: (request: Request) => Response | Promise<Response>): LoopbackServer {
  let server: Deno.HttpServer<Deno.NetAddr> | undefined = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handle,
  );
  const port = server.addr.port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      const running = server;
      server = undefined;
      if (!running) return;
      await running.shutdown();
      await running.finished;
    },
  };
}

/**
 * A real S3 server (Ceph radosgw on loopback) for tests, started by `tests/support/s3_server.sh`.
 *
 * - With `LAKERUN_TEST_S3_ENV` set to an env file written by `s3_server.sh start DIR` (`DIR/env`),
 *   {@link startS3Server} reuses that running server and `stop()` does nothing: `.ci/run` starts one
 *   server for the whole suite.
 * - Otherwise it starts a private server in a temporary folder and `stop()` stops it and removes the
 *   folder. The script also watches this process (`--watch-pid`), so the daemons go away even when a
 *   test run dies without calling `stop()`.
 *
 * There is no "skip when unavailable": a server that cannot start makes the test fail, with the
 * script's log tails in the error.
 *
 * @module
 */
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { closeS3Clients } from "../../lib/aws/s3/client.ts";
import { pickEnv, startService } from "./service.ts";

export { parseEnvFile } from "./service.ts";

/** A running S3 server and the settings to reach it. */
export interface S3TestServer {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` (for a child process). */
  env: Record<string, string>;
  /** Stops a server this process started; a no-op for a shared one. Safe to call twice. */
  stop(): Promise<void>;
}

/** The script that starts and stops the server. */
export const S3_SERVER_SCRIPT: string = decodeURIComponent(
  new URL("./s3_server.sh", import.meta.url).pathname,
);

/** Name of the variable that points at a shared server's env file. */
export const SHARED_ENV_VARIABLE = "LAKERUN_TEST_S3_ENV";

const REQUIRED_KEYS = [
  "AWS_ENDPOINT_URL",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION",
] as const;

function serverFromEnv(env: Record<string, string>, where: string, stop: () => Promise<void>): S3TestServer {
  const picked = pickEnv(env, REQUIRED_KEYS, where);
  return {
    endpoint: picked.AWS_ENDPOINT_URL,
    accessKeyId: picked.AWS_ACCESS_KEY_ID,
    secretAccessKey: picked.AWS_SECRET_ACCESS_KEY,
    region: picked.AWS_REGION,
    env: picked,
    stop,
  };
}

/**
 * Returns a running S3 server: the shared one named by `LAKERUN_TEST_S3_ENV`, or a new private one
 * (~3 s to start here; more when the Debian packages still have to be installed). Throws, with the
 * server's log tails, when it cannot start.
 */
export function startS3Server(): Promise<S3TestServer> {
  return startService(
    {
      script: S3_SERVER_SCRIPT,
      sharedEnvVariable: SHARED_ENV_VARIABLE,
      tempPrefix: "lakerun-s3-",
      what: "S3",
    },
    ({ env, where, stop }) => serverFromEnv(env, where, stop),
  );
}

/**
 * {@link startS3Server}, then the server's credentials in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, where
 * lakerun's S3 clients (the default credential chain) find them.
 */
export async function startS3ServerForLakerun(): Promise<S3TestServer> {
  const server = await startS3Server();
  Deno.env.set("AWS_ACCESS_KEY_ID", server.accessKeyId);
  Deno.env.set("AWS_SECRET_ACCESS_KEY", server.secretAccessKey);
  return server;
}

/** A test that shares the server: the S3 clients' keep-alive sockets outlive a single test. */
export function s3Test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

/**
 * An S3 client for the test server with the settings radosgw needs: path-style addressing and
 * checksums only where an operation requires them (the SDK's default aws-chunked uploads with a
 * trailing CRC get 411 from radosgw). Call `destroy()` when done.
 */
export function createS3Client(server: S3TestServer): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** A bucket name `prefix-<time>-<random>` made valid (lower case, 3–63 characters). */
export function uniqueBucketName(prefix: string): string {
  const suffix = `${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  let base = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
  if (base === "") base = "test";
  base = base.slice(0, 63 - suffix.length - 1).replace(/-+$/, "");
  return `${base}-${suffix}`;
}

/** Creates a new, uniquely named bucket on the server and returns its name. */
export async function createTestBucket(server: S3TestServer, prefix: string): Promise<string> {
  const bucket = uniqueBucketName(prefix);
  const client = createS3Client(server);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/**
 * Registers a test file's last test: destroys `clients` and lakerun's shared S3 clients, then stops `server`
 * (a no-op for the suite's shared server). Call it after every other test of the file.
 *
 * @example
 * ```ts ignore
 * const server = await startS3Server();
 * // … every test …
 * stopS3ServerAfterTests(server, raw);
 * ```
 */
export function stopS3ServerAfterTests(server: S3TestServer, ...clients: S3Client[]): void {
  Deno.test({
    name: "(stop the S3 server)",
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      for (const client of clients) client.destroy();
      closeS3Clients();
      await server.stop();
    },
  });
}

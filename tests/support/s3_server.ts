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

/** Parses `KEY=VALUE` lines (blank lines and `#` comments ignored). */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`not a KEY=VALUE line: ${JSON.stringify(raw)}`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

function serverFromEnv(env: Record<string, string>, where: string, stop: () => Promise<void>): S3TestServer {
  for (const key of REQUIRED_KEYS) {
    if (!env[key]) throw new Error(`${where} lacks ${key}`);
  }
  const picked: Record<string, string> = {};
  for (const key of REQUIRED_KEYS) picked[key] = env[key];
  return {
    endpoint: env.AWS_ENDPOINT_URL,
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    region: env.AWS_REGION,
    env: picked,
    stop,
  };
}

async function runScript(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: [S3_SERVER_SCRIPT, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { ok: out.success, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Returns a running S3 server: the shared one named by `LAKERUN_TEST_S3_ENV`, or a new private one
 * (~3 s to start here; more when the Debian packages still have to be installed). Throws, with the
 * server's log tails, when it cannot start.
 */
export async function startS3Server(): Promise<S3TestServer> {
  const shared = Deno.env.get(SHARED_ENV_VARIABLE);
  if (shared) {
    let text: string;
    try {
      text = await Deno.readTextFile(shared);
    } catch (e) {
      throw new Error(`${SHARED_ENV_VARIABLE}=${shared} cannot be read: ${e}`);
    }
    return serverFromEnv(parseEnvFile(text), shared, () => Promise.resolve());
  }

  // An empty folder: the script takes it over, and `stop` (or the watchdog) removes it.
  const dir = await Deno.makeTempDir({ prefix: "lakerun-s3-" });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const res = await runScript(["stop", dir]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (!res.ok) throw new Error(`s3_server.sh stop ${dir} failed:\n${res.stderr}`);
    })();
    return stopped;
  };

  const res = await runScript(["start", dir, "--watch-pid", String(Deno.pid)]);
  if (!res.ok) {
    await stop().catch(() => {});
    throw new Error(`could not start the S3 test server (s3_server.sh start ${dir}):\n${res.stderr}`);
  }
  let env: Record<string, string>;
  try {
    env = parseEnvFile(await Deno.readTextFile(`${dir}/env`));
  } catch {
    env = parseEnvFile(res.stdout);
  }
  try {
    return serverFromEnv(env, `${dir}/env`, stop);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
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

/**
 * What the launchers of the test services (tests/support/s3_server.ts, tests/support/postgres.ts) share:
 * their scripts (`SCRIPT start DIR [--watch-pid PID]`, `SCRIPT stop DIR`, see tests/support/service.sh) write
 * the server's settings to `DIR/env` as `KEY=VALUE` lines, and {@link startService} either reuses the server
 * of a shared env file (named by a variable such as `LAKERUN_TEST_S3_ENV`; its `stop` does nothing) or starts
 * a private one in a new temporary folder, watched by the script so that it goes away with this process.
 *
 * @module
 */
import { basename } from "node:path";

/** How to reach one kind of test service. */
export interface ServiceLaunch {
  /** The script that starts and stops the server (absolute path). */
  script: string;
  /** The variable that may name a shared server's env file. */
  sharedEnvVariable: string;
  /** Prefix of a private server's temporary folder, e.g. `lakerun-s3-`. */
  tempPrefix: string;
  /** The service as named in errors: `S3`, `PostgreSQL`. */
  what: string;
}

/** A running server as {@link startService} found or started it. */
export interface ServiceHandle {
  /** The `KEY=VALUE` lines of its env file. */
  env: Record<string, string>;
  /** The env file, for messages. */
  where: string;
  /** A private server's folder; `undefined` for a shared one. */
  dir?: string;
  /** Stops a private server and removes its folder; a no-op for a shared one. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Parses `KEY=VALUE` lines (blank lines and `#` comments ignored).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseEnvFile } from "./service.ts";
 *
 * assert.deepEqual(parseEnvFile("# made by s3_server.sh\nAWS_REGION=us-east-1\n\nA=b=c\n"), {
 *   AWS_REGION: "us-east-1",
 *   A: "b=c",
 * });
 * assert.throws(() => parseEnvFile("no equals sign"), /not a KEY=VALUE line/);
 * ```
 */
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

/**
 * The values of `keys` in `env`; throws `<where> lacks KEY` for the first one missing or empty.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pickEnv } from "./service.ts";
 *
 * assert.deepEqual(pickEnv({ A: "1", B: "2", C: "3" }, ["A", "B"], "env"), { A: "1", B: "2" });
 * assert.throws(() => pickEnv({ A: "" }, ["A"], "/tmp/x/env"), { message: "/tmp/x/env lacks A" });
 * ```
 */
export function pickEnv(
  env: Record<string, string>,
  keys: readonly string[],
  where: string,
): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const key of keys) {
    if (!env[key]) throw new Error(`${where} lacks ${key}`);
    picked[key] = env[key];
  }
  return picked;
}

/** Runs `bash script ...args` and collects its status and output. */
export async function runServiceScript(
  script: string,
  args: string[],
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: [script, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { ok: out.success, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * A running server, handed to `build`: the shared one whose env file `launch.sharedEnvVariable` names, or a
 * new private one (`script start DIR --watch-pid <this process>` in a new temporary folder). A private server
 * is stopped again when it cannot start or when `build` throws (a key missing from its env file, …). Throws,
 * with the script's standard error (its message and log tails), when the server cannot start.
 *
 * @example
 * ```ts ignore
 * const server = await startService(
 *   { script: S3_SERVER_SCRIPT, sharedEnvVariable: "LAKERUN_TEST_S3_ENV", tempPrefix: "lakerun-s3-", what: "S3" },
 *   ({ env, where, stop }) => ({ endpoint: pickEnv(env, ["AWS_ENDPOINT_URL"], where).AWS_ENDPOINT_URL, stop }),
 * );
 * ```
 */
export async function startService<T>(
  launch: ServiceLaunch,
  build: (handle: ServiceHandle) => T | Promise<T>,
): Promise<T> {
  const name = basename(launch.script);
  const shared = Deno.env.get(launch.sharedEnvVariable);
  if (shared) {
    let text: string;
    try {
      text = await Deno.readTextFile(shared);
    } catch (e) {
      throw new Error(`${launch.sharedEnvVariable}=${shared} cannot be read: ${e}`);
    }
    return await build({ env: parseEnvFile(text), where: shared, stop: () => Promise.resolve() });
  }

  // An empty folder: the script takes it over, and `stop` (or the watchdog) removes it.
  const dir = await Deno.makeTempDir({ prefix: launch.tempPrefix });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const res = await runServiceScript(launch.script, ["stop", dir]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (!res.ok) throw new Error(`${name} stop ${dir} failed:\n${res.stderr}`);
    })();
    return stopped;
  };

  const res = await runServiceScript(launch.script, ["start", dir, "--watch-pid", String(Deno.pid)]);
  if (!res.ok) {
    await stop().catch(() => {});
    throw new Error(`could not start the ${launch.what} test server (${name} start ${dir}):\n${res.stderr}`);
  }
  try {
    const env = parseEnvFile(await Deno.readTextFile(`${dir}/env`).catch(() => res.stdout));
    return await build({ env, where: `${dir}/env`, dir, stop });
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}

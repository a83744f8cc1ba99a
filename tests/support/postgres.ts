/**
 * A real PostgreSQL 15 server on loopback for tests, started by `tests/support/postgres_server.sh`.
 *
 * - With `LAKERUN_TEST_PG_ENV` set to an env file written by `postgres_server.sh start DIR` (`DIR/env`),
 *   {@link startPostgres} reuses that running server and `stop()` does nothing: a CI script can start one
 *   server for the whole suite.
 * - Otherwise it starts a private cluster in a temporary folder (a free port, a superuser `postgres` with a
 *   password made for this run, a database `lakerun`, scram-sha-256 password authentication), and `stop()`
 *   stops it and removes the folder. The script also watches this process (`--watch-pid`), so the server
 *   goes away even when a test run dies without calling `stop()`.
 *
 * There is no "skip when unavailable": a server that cannot start (PostgreSQL 15 not installed, …) makes
 * the test fail, with the script's message and log tails in the error.
 *
 * @example
 * ```ts ignore
 * const pg = await startPostgres();
 * try {
 *   await pg.psql("CREATE TABLE t (a int); INSERT INTO t VALUES (1)");
 *   assertEquals((await pg.psql("SELECT count(*) FROM t")).trim(), "1");
 *   // a child process gets PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE from `pg.env`
 * } finally {
 *   await pg.stop();
 * }
 * ```
 *
 * @module
 */
import { pickEnv, startService } from "./service.ts";

/** A running PostgreSQL server and the settings to reach it over TCP with a password. */
export interface PostgresTestServer {
  /** `127.0.0.1` */
  host: string;
  port: number;
  /** The superuser, `postgres`. */
  user: string;
  /** Its password (generated per run for a private server). */
  password: string;
  /** `lakerun` */
  database: string;
  /** `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` (for a child process, or {@link runPsql}). */
  env: Record<string, string>;
  /** `postgres://user@host:port/database`, without the password (it is in `env.PGPASSWORD`). */
  url: string;
  /**
   * Runs `sql` (fed on standard input, so several statements and psql meta-commands work) through
   * `psql -X -A -t -q -w -v ON_ERROR_STOP=1` as {@link user} with `PGPASSWORD`, and returns its standard
   * output: unaligned rows of every query, `|` between columns, one row a line (`-q`: no command tags;
   * `-w`: never prompt). Throws, with psql's standard error, when psql fails.
   */
  psql(sql: string): Promise<string>;
  /** The private server's folder (its `env`, `data/`, `log/`); undefined for a shared server. */
  dir?: string;
  /** The postmaster's PID of a private server; undefined for a shared server. */
  pid?: number;
  /** Stops a server this process started and removes its folder; a no-op for a shared one. Safe to call twice. */
  stop(): Promise<void>;
}

/** The script that starts and stops the server. */
export const POSTGRES_SERVER_SCRIPT: string = decodeURIComponent(
  new URL("./postgres_server.sh", import.meta.url).pathname,
);

/** Name of the variable that points at a shared server's env file. */
export const SHARED_PG_ENV_VARIABLE = "LAKERUN_TEST_PG_ENV";

const REQUIRED_KEYS = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"] as const;

/** Where Debian puts the PostgreSQL 15 binaries when they are not on PATH. */
const PG15_BIN = "/usr/lib/postgresql/15/bin";

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

let psqlPath: string | undefined;

/** The `psql` to run: the one on PATH, else Debian's PostgreSQL 15 one. */
function findPsql(): string {
  if (psqlPath) return psqlPath;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir !== "" && isExecutable(`${dir}/psql`)) return psqlPath = `${dir}/psql`;
  }
  if (isExecutable(`${PG15_BIN}/psql`)) return psqlPath = `${PG15_BIN}/psql`;
  throw new Error("psql not found: apt-get install postgresql-client-15");
}

/**
 * Runs `sql` through `psql -X -A -t -q -w -v ON_ERROR_STOP=1` with exactly the given `PG*` settings (none of this
 * process's own `PG*` variables), and returns its standard output. Throws, with psql's standard error, when
 * psql fails (a refused password, an SQL error, …). `extraArgs` go before the connection defaults.
 */
export async function runPsql(
  env: Record<string, string>,
  sql: string,
  extraArgs: string[] = [],
): Promise<string> {
  const childEnv: Record<string, string> = { PGCONNECT_TIMEOUT: "10" };
  for (const key of ["PATH", "HOME", "LANG", "LC_ALL", "TZ"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) childEnv[key] = value;
  }
  Object.assign(childEnv, env);
  const child = new Deno.Command(findPsql(), {
    args: ["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1", ...extraArgs, "-f", "-"],
    env: childEnv,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(sql.endsWith("\n") ? sql : `${sql}\n`));
  } catch {
    // psql may exit (a refused login) before it reads its input; its status and stderr tell why.
  } finally {
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  if (!out.success) {
    const where = `${env.PGUSER ?? "?"}@${env.PGHOST ?? "?"}:${env.PGPORT ?? "?"}/${env.PGDATABASE ?? "?"}`;
    throw new Error(`psql (${where}) failed with exit code ${out.code}:\n${dec.decode(out.stderr).trim()}`);
  }
  return stdout;
}

function serverFromEnv(
  env: Record<string, string>,
  where: string,
  stop: () => Promise<void>,
  extra: { dir?: string; pid?: number } = {},
): PostgresTestServer {
  const picked = pickEnv(env, REQUIRED_KEYS, where);
  const port = Number(picked.PGPORT);
  if (!Number.isInteger(port) || port <= 0) {
    throw new Error(`${where}: PGPORT=${picked.PGPORT} is not a port`);
  }
  return {
    host: picked.PGHOST,
    port,
    user: picked.PGUSER,
    password: picked.PGPASSWORD,
    database: picked.PGDATABASE,
    env: picked,
    url: `postgres://${encodeURIComponent(picked.PGUSER)}@${picked.PGHOST}:${port}/${
      encodeURIComponent(picked.PGDATABASE)
    }`,
    psql: (sql) => runPsql(picked, sql),
    ...extra,
    stop,
  };
}

/**
 * Returns a running PostgreSQL 15 server: the shared one named by `LAKERUN_TEST_PG_ENV`, or a new private
 * one (~2 s to start here, most of it `initdb`). Throws, with the script's message and the server's log
 * tail, when it cannot start (e.g. "PostgreSQL 15 server not found: apt-get install postgresql-15").
 */
export function startPostgres(): Promise<PostgresTestServer> {
  return startService(
    {
      script: POSTGRES_SERVER_SCRIPT,
      sharedEnvVariable: SHARED_PG_ENV_VARIABLE,
      tempPrefix: "lakerun-pg-",
      what: "PostgreSQL",
    },
    async ({ env, where, dir, stop }) => {
      if (dir === undefined) return serverFromEnv(env, where, stop);
      const pid = Number((await Deno.readTextFile(`${dir}/pids/postgres.pid`)).trim());
      return serverFromEnv(env, where, stop, { dir, pid });
    },
  );
}

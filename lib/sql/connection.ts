/**
 * How a step names a PostgreSQL-protocol server (PostgreSQL itself, or Redshift over its PostgreSQL port):
 * the connection params every such executor shares, what they resolve to, and the permission scope they
 * imply, computed without loading the client.
 *
 * The params: `host`, `port` (5432), `database`, `user`, `password_env` (the NAME of the environment
 * variable that holds the password: a password never appears in a routine), `ssl`, `ssl_root_cert`, or `url`
 * (`postgres://user@host:port/database?sslmode=…`, which must not hold a password).
 *
 * The scope: `net` is `host:port` only; `env` is `password_env` plus {@link PG_CLIENT_ENV_VARS}, the variables
 * the `pg` client reads whatever it is given; `read` is `ssl_root_cert` when set.
 *
 * @module
 */
import type { z } from "zod";
import type { PermissionScope } from "../scope.ts";

/** The zod namespace. */
type Zod = typeof z;

/**
 * The environment variables `pg` 8.23 reads when {@link connectPostgres} (postgres_client.ts) builds its
 * client with every other setting given: `pg` falls back to `PG<KEY>` for each setting whose value is falsy
 * (`binary`, `options`, `replication`), and Deno refuses the read unless the step may.
 */
export const PG_CLIENT_ENV_VARS: readonly string[] = ["PGBINARY", "PGOPTIONS", "PGREPLICATION"];

/** PostgreSQL's own port: a connection's port unless `port` (or the URL) gives one. */
export const POSTGRES_PORT = 5432;

/** TLS modes, as libpq's `sslmode` (without `allow`/`prefer`, which fall back to plain text silently). */
export const SSL_MODES = ["disable", "require", "verify-ca", "verify-full"] as const;

/** One of {@link SSL_MODES}. */
export type SslMode = typeof SSL_MODES[number];

/** The connection params as a step holds them once validated. */
export interface ConnectionParams {
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password_env?: string;
  ssl?: SslMode | boolean;
  ssl_root_cert?: string;
  url?: string;
}

/** Where and how to connect, resolved from {@link ConnectionParams}. */
export interface ConnectionTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  ssl: SslMode;
  /** The CA bundle (PEM) to verify the server with, resolved; default: the system's roots. */
  sslRootCert?: string;
  /** The name of the variable holding the password, when there is one. */
  passwordEnv?: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;

/**
 * The connection params' zod fields, to spread into an executor's params object. Refinements that involve
 * several fields are in {@link connectionParamsProblem}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { connectionFields, connectionParamsProblem } from "./connection.ts";
 *
 * const schema = z.strictObject({ ...connectionFields(z) }).superRefine(connectionParamsProblem);
 * assert.equal(schema.safeParse({ host: "db.example.com", database: "lake", user: "loader" }).success, true);
 * const bad = schema.safeParse({ url: "postgres://loader:hunter22@db/lake" });
 * assert.equal(bad.success, false);
 * assert.doesNotMatch(JSON.stringify(bad.error?.issues.map((i) => i.message)), /hunter22/);
 * ```
 */
export function connectionFields(z: Zod) {
  return {
    host: z.string().regex(HOST, { error: "must be a host name or IP address" }).optional().describe(
      "Server host name or IP address (or give url).",
    ),
    // the defaults: what connectionTarget uses for a param left out, shown in the reference (not parsed in)
    port: z.number().int().min(1).max(65535).optional().meta({ default: POSTGRES_PORT }).describe(
      "Server port.",
    ),
    database: z.string().min(1).max(63).optional().describe("Database name (or give url)."),
    user: z.string().min(1).max(63).optional().describe("User name (or give url)."),
    // secret: a password pasted here by mistake is never quoted back (nor is a URL, which may hold one)
    password_env: z.string().regex(ENV_NAME, { error: "must be an environment variable name" })
      .meta({ secret: true }).optional().describe(
        "Name of the environment variable holding the password (the step may read only it); a password never appears in a routine.",
      ),
    ssl: z.union([z.boolean(), z.enum(SSL_MODES)]).optional().meta({ default: "disable" }).describe(
      "TLS: disable (default), require (encrypted, certificate not checked), verify-ca, verify-full (certificate and host name checked; what true means).",
    ),
    ssl_root_cert: z.string().min(1).optional().describe(
      "PEM file of the CA that signed the server's certificate (verify-ca / verify-full); default: the system's roots.",
    ),
    url: z.string().min(1).meta({ secret: true }).optional().describe(
      "postgres://user@host:port/database?sslmode=… instead of host/port/database/user; must not hold a password.",
    ),
  };
}

/**
 * A `superRefine` for a params object holding {@link connectionFields}: `url` or `host` + `database` +
 * `user`, not both, and a `url` without a password (the message never repeats the URL). Problems are at the
 * param to fix (`url`, never a path inside it the routine does not have).
 */
export function connectionParamsProblem(params: ConnectionParams, context: z.RefinementCtx): void {
  const issue = (path: string, message: string) =>
    context.addIssue({ code: "custom", path: [path], message });
  if (params.url !== undefined) {
    // url is marked secret: validation names it and never quotes it
    const problem = urlProblem(params.url);
    if (problem) return issue("url", problem);
    for (const key of ["host", "port", "database", "user"] as const) {
      if (params[key] !== undefined) issue(key, "give either url or host/port/database/user, not both");
    }
    return;
  }
  for (const key of ["host", "database", "user"] as const) {
    if (params[key] === undefined) issue(key, "missing (or give url)");
  }
}

/**
 * What is wrong with a connection URL, or `undefined`. Never quotes the URL: it may hold a password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { urlProblem } from "./connection.ts";
 *
 * assert.equal(urlProblem("postgres://loader@db.example.com:5433/lake?sslmode=verify-full"), undefined);
 * assert.match(urlProblem("postgres://loader:s3cret@db/lake")!, /must not hold a password/);
 * assert.match(urlProblem("postgres://loader@db/lake?password=s3cret")!, /must not hold a password/);
 * ```
 */
export function urlProblem(url: string): string | undefined {
  if (urlHoldsPassword(url)) return PASSWORD_IN_URL;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a URL (postgres://user@host:port/database)";
  }
  for (const key of parsed.searchParams.keys()) {
    if (key !== "sslmode") return `has a query parameter lakerun does not read (only sslmode): ${key}`;
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    return "must start with postgres:// or postgresql://";
  }
  if (parsed.hostname === "") return "has no host";
  if (!parsed.username) return "has no user (postgres://user@host/database)";
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (database === "" || database.includes("/")) return "has no database (postgres://user@host/database)";
  const sslmode = parsed.searchParams.get("sslmode");
  if (sslmode !== null && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    return `has sslmode=${sslmode}; lakerun takes ${SSL_MODES.join(", ")}`;
  }
  return undefined;
}

const PASSWORD_IN_URL =
  "must not hold a password: put it in an environment variable and name that variable in password_env";

/** A `user:password@` part, or a query parameter whose name says password (`password=`, `passfile=`). */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^@/?#]*?:)([^@/?#]*)(@)|([?&][^=&#]*pass[^=&#]*=)([^&#]*)/gi;

/** True when a connection URL holds a password (it need not be a valid URL). */
function urlHoldsPassword(url: string): boolean {
  return [...url.matchAll(URL_PASSWORD)].some((match) => (match[2] ?? match[5]) !== "");
}

/**
 * Resolves validated params to a connection target (the URL's parts, the defaults).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectionTarget } from "./connection.ts";
 *
 * assert.deepEqual(connectionTarget({ url: "postgresql://loader@db.example.com/lake?sslmode=require" }), {
 *   host: "db.example.com", port: 5432, database: "lake", user: "loader", ssl: "require",
 *   sslRootCert: undefined, passwordEnv: undefined,
 * });
 * assert.equal(connectionTarget({ host: "h", database: "d", user: "u", ssl: true }).ssl, "verify-full");
 * ```
 */
export function connectionTarget(
  params: ConnectionParams,
  resolve?: (path: string) => string,
): ConnectionTarget {
  const sslRootCert = params.ssl_root_cert === undefined
    ? undefined
    : resolve
    ? resolve(params.ssl_root_cert)
    : params.ssl_root_cert;
  const sslOf = (ssl: SslMode | boolean | undefined): SslMode =>
    ssl === true ? "verify-full" : ssl === false || ssl === undefined ? "disable" : ssl;
  if (params.url !== undefined) {
    const url = new URL(params.url);
    return {
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port ? Number(url.port) : POSTGRES_PORT,
      database: decodeURIComponent(url.pathname.replace(/^\//, "")),
      user: decodeURIComponent(url.username),
      ssl: params.ssl !== undefined
        ? sslOf(params.ssl)
        : sslOf(url.searchParams.get("sslmode") as SslMode ?? undefined),
      sslRootCert,
      passwordEnv: params.password_env,
    };
  }
  return {
    host: params.host!.replace(/^\[(.*)\]$/, "$1"),
    port: params.port ?? POSTGRES_PORT,
    database: params.database!,
    user: params.user!,
    ssl: sslOf(params.ssl),
    sslRootCert,
    passwordEnv: params.password_env,
  };
}

/**
 * The permission scope of a step that connects with `params`: the server's `host:port`, the password
 * variable and {@link PG_CLIENT_ENV_VARS}, and the CA file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectionScope } from "./connection.ts";
 *
 * assert.deepEqual(
 *   connectionScope({ host: "db.example.com", database: "lake", user: "loader", password_env: "LAKE_PW" }),
 *   { net: ["db.example.com:5432"], env: ["LAKE_PW", "PGBINARY", "PGOPTIONS", "PGREPLICATION"], read: [] },
 * );
 * ```
 */
export function connectionScope(
  params: ConnectionParams,
  resolve?: (path: string) => string,
): PermissionScope {
  const target = connectionTarget(params, resolve);
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return {
    net: [`${host}:${target.port}`],
    env: [...(target.passwordEnv ? [target.passwordEnv] : []), ...PG_CLIENT_ENV_VARS],
    read: target.sslRootCert ? [target.sslRootCert] : [],
  };
}

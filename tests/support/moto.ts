/**
 * A moto server (Python, preinstalled in the machine image: 5.2.1) on loopback for tests: the AWS
 * stand-in for Athena, Glue and STS. See `/work/shared/notes/aws-stand-ins.md` §1 for what moto does and
 * does not emulate.
 *
 * {@link startMoto} runs `moto_server -H 127.0.0.1 -p PORT` (or `python3 -m moto.server` when
 * `moto_server` is not on PATH) on a free port, in its own process group, with a watchdog that kills the
 * group when this process goes away, so a test run that dies leaves no server behind. `stop()` kills it
 * and its children. The control API (`/moto-api/...`) is wrapped: {@link MotoServer.reset},
 * {@link MotoServer.setTransition}, {@link MotoServer.seedAthenaResults}, ...
 *
 * There is no "skip when unavailable": without moto the test fails with a one-line reason.
 *
 * Calling moto without an SDK: moto picks the service from the `Authorization` header's credential scope
 * (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`), not from `X-Amz-Target`; without one, a `POST /` is
 * taken for S3. The signature itself is not checked. {@link motoAuthorization} makes such a header.
 *
 * @example
 * ```ts ignore
 * const moto = await startMoto();
 * try {
 *   await moto.setTransition("glue::job_run", { progression: "manual", times: 3 });
 *   // … run code with `moto.env` (AWS_ENDPOINT_URL, fake keys, AWS_REGION) …
 * } finally {
 *   await moto.stop();
 * }
 * ```
 *
 * @module
 */

/** How a moto state model moves on (moto's `managed_state_model`). */
export type MotoTransition =
  /** The status jumps to the last state whenever it is read. */
  | { progression: "immediate" }
  /** One step per `times` advancing reads; the read that reaches `times` already shows the next state. */
  | { progression: "manual"; times: number }
  /** One step every `seconds` seconds, checked on read. */
  | { progression: "time"; seconds: number };

/** One query's results for {@link MotoServer.seedAthenaResults}: what `GetQueryResults` returns. */
export interface AthenaSeedResult {
  /** Rows as Athena returns them; seed the header row yourself as row 0 to mimic a SELECT. */
  rows: { Data: { VarCharValue?: string }[] }[];
  /** `ResultSetMetadata.ColumnInfo`. */
  column_info?: { Name: string; Type: string; [key: string]: unknown }[];
}

/** A running moto server and the settings to reach it. */
export interface MotoServer {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** `us-east-1` */
  region: string;
  /** `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (fake), `AWS_REGION`: for a child process. */
  env: Record<string, string>;
  /** PID of the server process (also its process group). */
  pid: number;
  /**
   * `POST /moto-api/reset`: wipes every backend (jobs, runs, queries, the queued Athena results, …). It does
   * NOT clear state-manager overrides ({@link setTransition}): call {@link unsetAllTransitions} for that.
   */
  reset(): Promise<void>;
  /**
   * Overrides how model `modelName` (e.g. `glue::job_run`, `glue::crawl`, `athena::execution`) moves on,
   * for the whole server, until {@link unsetTransition}; {@link reset} leaves it in force.
   */
  setTransition(modelName: string, transition: MotoTransition): Promise<void>;
  /** Removes the override of `modelName`: back to moto's default transition. */
  unsetTransition(modelName: string): Promise<void>;
  /** Unsets every model that {@link setTransition} set through this object. */
  unsetAllTransitions(): Promise<void>;
  /** The transition in force for `modelName`. */
  getTransition(modelName: string): Promise<MotoTransition>;
  /**
   * `POST /moto-api/static/athena/query-results`: appends `results` to moto's FIFO queue; each new query
   * execution takes the head of the queue (at `StartQueryExecution`, or its first `GetQueryResults`).
   */
  seedAthenaResults(
    results: AthenaSeedResult[],
    options?: { accountId?: string; region?: string },
  ): Promise<void>;
  /**
   * Kills the server and its children (TERM, then KILL after a bounded wait) and removes its folder: every
   * state, state-manager overrides included, goes with the process. Safe to call twice.
   */
  stop(): Promise<void>;
}

/** The region the server and {@link MotoServer.env} use. */
export const MOTO_REGION = "us-east-1";
/** moto's default account. */
export const MOTO_ACCOUNT_ID = "123456789012";
/** The fake key pair put in {@link MotoServer.env}. */
export const MOTO_ACCESS_KEY_ID = "testing";
/** The fake key pair put in {@link MotoServer.env}. */
export const MOTO_SECRET_ACCESS_KEY = "testing";

const NOT_INSTALLED =
  "moto (Python) is not installed: it is part of this machine image; PyPI is not reachable to install it";

/** How long to wait for the server's first HTTP answer (`MOTO_START_TIMEOUT`, seconds). */
function startTimeoutMs(): number {
  const s = Number(Deno.env.get("MOTO_START_TIMEOUT") ?? "30");
  return (Number.isFinite(s) && s > 0 ? s : 30) * 1000;
}

/**
 * An `Authorization` header that makes moto route a raw request to `service` (moto reads the credential
 * scope; it does not check the signature).
 */
export function motoAuthorization(service: string, region: string = MOTO_REGION): string {
  const date = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  return `AWS4-HMAC-SHA256 Credential=${MOTO_ACCESS_KEY_ID}/${date}/${region}/${service}/aws4_request, ` +
    `SignedHeaders=content-type;host;x-amz-target, Signature=${"0".repeat(64)}`;
}

function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // not there
    }
  }
  return undefined;
}

async function checkMotoImportable(): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("python3", {
      args: ["-c", "import moto"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new Error(`${NOT_INSTALLED} (python3 cannot be run: ${e instanceof Error ? e.message : e})`);
  }
  if (!out.success) {
    const last = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
    throw new Error(`${NOT_INSTALLED} (${last})`);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Is `pid` a live process (not a zombie) whose command line mentions `marker` (any command line when
 * `marker` is undefined: right after the launch, it may not have exec'd moto yet)? A process that is
 * exiting has already lost its command line (an empty one): it still counts, until it is a zombie or reaped.
 */
function alive(pid: number, marker?: string): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))) return false;
    if (marker === undefined) return true;
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    return cmdline === "" || cmdline.includes(marker);
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // already gone
  }
}

async function tail(path: string, lines = 30): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts the server (moto_server in a new session, so its PID is its process group) and a watchdog (also
 * in its own session, so a Ctrl-C to the test's group does not take it down first) that kills the group
 * and removes DIR when WATCH_PID is gone, and exits when the server is gone. Prints "SERVER_PID WATCHDOG_PID".
 */
const LAUNCHER = `
set -eu
dir=$1 port=$2 watch=$3
shift 3
setsid "$@" -H 127.0.0.1 -p "$port" </dev/null >"$dir/moto.log" 2>&1 &
pid=$!
setsid bash -c '
  dir=$1 pid=$2 watch=$3
  running() { # a process that exists and is not a zombie (one nobody reaped yet)
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=\${stat##*) }
    [[ \${stat:0:1} != [ZX] ]]
  }
  while running "$watch" && running "$pid"; do sleep 1; done
  if running "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in 1 2 3 4 5 6 7 8 9 10; do running "$pid" || break; sleep 0.3; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -rf "$dir"
  fi
' lakerun-moto-watchdog "$dir" "$pid" "$watch" </dev/null >/dev/null 2>&1 &
echo "$pid $!"
`;

/**
 * Starts a private moto server on a free loopback port and waits (bounded by `MOTO_START_TIMEOUT`,
 * default 30 s) until it answers HTTP: ~1 s here. Throws a one-line reason when moto is not installed,
 * and the server's log tail when it does not come up.
 */
export async function startMoto(): Promise<MotoServer> {
  await checkMotoImportable();
  const motoServerPath = onPath("moto_server");
  const command = motoServerPath ? [motoServerPath] : ["python3", "-m", "moto.server"];
  const dir = await Deno.makeTempDir({ prefix: "lakerun-moto-" });
  let lastError = "";
  try {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const port = freePort();
      const out = await new Deno.Command("bash", {
        args: ["-c", LAUNCHER, "lakerun-moto-launcher", dir, String(port), String(Deno.pid), ...command],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      const [pid, watchdogPid] = dec.decode(out.stdout).trim().split(" ").map(Number);
      if (!out.success || !pid) {
        lastError = `the launcher failed: ${dec.decode(out.stderr).trim()}`;
        break;
      }
      const endpoint = `http://127.0.0.1:${port}`;
      const marker = `-p\0${port}\0`;
      const deadline = Date.now() + startTimeoutMs();
      // Until it answers, the PID is surely moto's: nobody has reaped it, so it cannot have been reused.
      while (Date.now() < deadline && alive(pid)) {
        try {
          const res = await fetch(
            `${endpoint}/moto-api/state-manager/get-transition?model_name=glue::job_run`,
          );
          await res.body?.cancel();
          return serverAt(endpoint, pid, watchdogPid, dir, marker);
        } catch {
          await sleep(100);
        }
      }
      const exited = !alive(pid);
      killGroup(pid, "SIGKILL");
      const log = await tail(`${dir}/moto.log`);
      if (exited && /address already in use/i.test(log)) {
        lastError = `port ${port} taken (attempt ${attempt} of 3)`;
        continue;
      }
      lastError = exited
        ? `the server exited; last lines of its log:\n${log}`
        : `no HTTP answer on ${endpoint} within ${startTimeoutMs() / 1000} s; last lines of its log:\n${log}`;
      break;
    }
  } catch (e) {
    lastError = e instanceof Error ? e.message : String(e);
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  throw new Error(`could not start moto (${command.join(" ")}): ${lastError}`);
}

function serverAt(
  endpoint: string,
  pid: number,
  watchdogPid: number,
  dir: string,
  marker: string,
): MotoServer {
  const overridden = new Set<string>();

  async function control(path: string, init: RequestInit = {}): Promise<string> {
    const res = await fetch(`${endpoint}${path}`, init);
    const text = await res.text();
    if (!res.ok) {
      throw new Error(`moto ${init.method ?? "GET"} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    }
    return text;
  }
  const post = (path: string, body?: unknown) =>
    control(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  let stopped: Promise<void> | undefined;
  const server: MotoServer = {
    endpoint,
    region: MOTO_REGION,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: MOTO_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: MOTO_SECRET_ACCESS_KEY,
      AWS_REGION: MOTO_REGION,
    },
    pid,
    async reset() {
      await post("/moto-api/reset");
    },
    async setTransition(modelName, transition) {
      await post("/moto-api/state-manager/set-transition", { model_name: modelName, transition });
      overridden.add(modelName);
    },
    async unsetTransition(modelName) {
      await post("/moto-api/state-manager/unset-transition", { model_name: modelName });
      overridden.delete(modelName);
    },
    async unsetAllTransitions() {
      for (const modelName of [...overridden]) await server.unsetTransition(modelName);
    },
    async getTransition(modelName) {
      // moto splits the raw query string without decoding it: `glue%3A%3Ajob_run` would be another model.
      return JSON.parse(await control(`/moto-api/state-manager/get-transition?model_name=${modelName}`));
    },
    async seedAthenaResults(results, options = {}) {
      await post("/moto-api/static/athena/query-results", {
        account_id: options.accountId ?? MOTO_ACCOUNT_ID,
        region: options.region ?? MOTO_REGION,
        results,
      });
    },
    stop() {
      stopped ??= (async () => {
        const gone = async (ms: number) => {
          const deadline = Date.now() + ms;
          while (alive(pid, marker) && Date.now() < deadline) await sleep(50);
        };
        killGroup(pid, "SIGTERM");
        await gone(3000);
        // Whatever is left of the group: the server if TERM was not enough, and any child of it.
        killGroup(pid, "SIGKILL");
        await gone(2000);
        // The watchdog would notice within a second; no need to wait for it.
        if (alive(watchdogPid, dir)) {
          try {
            Deno.kill(watchdogPid, "SIGTERM");
          } catch {
            // gone meanwhile
          }
        }
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      })();
      return stopped;
    },
  };
  return server;
}

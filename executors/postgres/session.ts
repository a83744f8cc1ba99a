/**
 * What every PostgresExecutor task does around its work: connect (the password from `password_env`), cancel
 * the running statement when the step is interrupted and say so, keep the password out of every message, and
 * commit each task's transaction at most once per routine run.
 *
 * **Once per run.** A task's work runs in one transaction. Before the work starts, the step's journal
 * (`lib/cloud/ledger.ts`) records the transaction's id (`txid_current()`) and the server process serving it;
 * after COMMIT it records success. When lakerun re-runs an interrupted run (the same `runId`), a task whose
 * record says it committed, or whose transaction the server reports as committed (`txid_status`; lakerun may
 * have been killed between COMMIT and the journal write), is skipped, so an `append` is never loaded twice;
 * one whose transaction aborted runs again. A transaction still open on the server (its client was killed
 * and the server has not noticed yet) is waited for, then its server process is terminated, before deciding.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { CloudRunLedger } from "../../lib/cloud/ledger.ts";
import { redactCredentials } from "../../lib/mask.ts";
import { type ConnectionParams, connectionTarget } from "../../lib/sql/connection.ts";
import { connectPostgres, type PostgresSession } from "../../lib/sql/postgres_client.ts";

/** How long a re-run waits for a transaction of an earlier attempt that the server still has open. */
const OPEN_TRANSACTION_WAIT_MS = 5_000;

/**
 * Connects with the step's params, runs `work`, and closes the session. An interruption cancels the running
 * statement (logged); any error's message is stripped of the password.
 */
export async function withSession<P extends ConnectionParams, T>(
  context: TaskContext<P>,
  work: (session: PostgresSession) => Promise<T>,
): Promise<T> {
  const target = connectionTarget(context.params, context.resolve);
  const password = target.passwordEnv ? readPassword(target.passwordEnv) : undefined;
  let session: PostgresSession | undefined;
  try {
    session = await connectPostgres(target, { password, signal: context.signal });
    return await work(session);
  } catch (error) {
    if (session?.cancelled || context.signal.aborted) {
      if (session?.cancelled) {
        context.log(
          `interrupted: cancelled the running statement (server process ${session.pid}); nothing was committed`,
        );
      }
      throw new Error("interrupted", { cause: redacted(error, password) });
    }
    throw redacted(error, password);
  } finally {
    await session?.close();
  }
}

function readPassword(name: string): string {
  const value = Deno.env.get(name);
  if (value === undefined) throw new Error(`the environment variable ${name} (password_env) is not set`);
  return value;
}

/**
 * The error with the password replaced by `***` in its message (a password of 4 characters or more), and
 * any credential the server's message quotes (a `PASSWORD '…'` of the statement, a URL's password: see
 * `redactCredentials`, lib/mask.ts).
 */
function redacted(error: unknown, password: string | undefined): unknown {
  if (!(error instanceof Error)) return error;
  const hide = (text: string) =>
    redactCredentials(password && password.length >= 4 ? text.replaceAll(password, "***") : text);
  const message = hide(error.message);
  const stack = hide(error.stack ?? "");
  if (message === error.message && stack === (error.stack ?? "")) return error;
  const clean = new Error(message);
  clean.name = error.name;
  clean.stack = stack;
  return clean;
}

/** What {@link oncePerRun} did. */
export type OnceOutcome<T> =
  | { committed: true; result: T }
  /** `result`: what the attempt that committed recorded, when it got to record it. */
  | { committed: false; reason: string; result?: T };

/**
 * Runs `work` in one transaction unless this routine run already committed it (see the module doc). `key`
 * names the task's work in the step's journal; `fingerprint` what it does (a changed fingerprint is new work).
 * What `work` resolves to is kept in the journal (keep it small, and free of secrets).
 */
export async function oncePerRun<P, T>(
  context: TaskContext<P>,
  session: PostgresSession,
  key: string,
  fingerprint: string,
  work: () => Promise<T>,
): Promise<OnceOutcome<T>> {
  const ledger = await CloudRunLedger.open(context.stateDir, context.runId, context.stepId);
  let { entry, reattach } = await ledger.begin(key, fingerprint);
  if (reattach && entry.state === "succeeded") {
    return { committed: false, reason: "this run already committed it", result: entry.result?.value as T };
  }
  if (reattach && entry.id) {
    const [xid, pid] = entry.id.split(":");
    const status = await settledStatus(session, xid, Number(pid), context.log);
    if (status === "committed") {
      await ledger.ended(key, "succeeded");
      return {
        committed: false,
        reason: `this run already committed it (transaction ${xid}, committed before lakerun was stopped)`,
      };
    }
    if (status === "unknown") {
      throw new Error(
        `cannot tell whether transaction ${xid} of an earlier attempt of this run committed (the server no ` +
          `longer knows it); check the table, then start a new run`,
      );
    }
    context.log(
      `an earlier attempt of this run did not commit (transaction ${xid} ${status}); running again`,
    );
    await ledger.ended(key, "failed");
    ({ entry } = await ledger.begin(key, fingerprint));
  }
  await session.query("BEGIN");
  let result: T;
  try {
    const { rows } = await session.query<{ xid: string }>("SELECT txid_current()::text AS xid");
    await ledger.started(key, `${rows[0].xid}:${session.pid}`);
    result = await work();
  } catch (error) {
    // COMMIT was never sent: nothing was committed, and the next attempt starts over
    if (!session.cancelled) await session.query("ROLLBACK").catch(() => {});
    await ledger.ended(key, "failed").catch(() => {});
    throw error;
  }
  // a COMMIT that fails (a broken connection) leaves the entry "started": the next attempt asks the server
  await session.query("COMMIT");
  await ledger.ended(key, "succeeded", { value: result });
  return { committed: true, result };
}

/**
 * The final status of transaction `xid` of an earlier attempt: `committed`, `aborted`, or `unknown` (too old
 * for the server to tell). A transaction still in progress is waited for, then its server process `pid` is
 * terminated (only if it still runs that transaction).
 */
async function settledStatus(
  session: PostgresSession,
  xid: string,
  pid: number,
  log: (message: string) => void,
): Promise<"committed" | "aborted" | "unknown"> {
  const deadline = Date.now() + OPEN_TRANSACTION_WAIT_MS;
  let terminated = false;
  for (;;) {
    const { rows } = await session.query<{ status: string | null }>(
      "SELECT txid_status($1::bigint) AS status",
      [xid],
    );
    const status = rows[0].status;
    if (status === "committed" || status === "aborted") return status;
    if (status === null) return "unknown";
    if (terminated && Date.now() > deadline + 2 * OPEN_TRANSACTION_WAIT_MS) {
      throw new Error(
        `transaction ${xid} of an earlier attempt is still open on the server; try again later`,
      );
    }
    if (!terminated && Date.now() > deadline) {
      log(
        `transaction ${xid} of an earlier attempt is still open on the server: terminating its process ${pid}`,
      );
      await session.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_xid::text = ($2::bigint % 4294967296)::text",
        [pid, xid],
      );
      terminated = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

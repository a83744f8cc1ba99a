/**
 * The record that keeps a cloud job from being started twice for one routine run: before a task starts an
 * Athena query, a Glue job run, a crawl or a Redshift statement, it opens an entry in the step's journal
 * (`lib/journal.ts`), and it records the job's id the moment the service returns it.
 *
 * An entry belongs to a routine run (`TaskContext.runId`, the same id again when lakerun re-runs a failed or
 * interrupted run) and to a fingerprint of what the job does (its SQL, its arguments). On the next attempt of
 * the same run, with the same fingerprint, {@link CloudRunLedger.begin} hands back the entry, so the task
 * reattaches to the job still going or already finished; a job that ended badly (failed, cancelled, stopped)
 * is started again under a new attempt number. A new routine run, or changed SQL or arguments, starts fresh.
 *
 * Each entry carries a `token` derived from the run, the step, the job's key and the attempt: 64 hex
 * characters, usable as an idempotency token (Athena's `ClientRequestToken` takes 32–128, the Redshift Data
 * API's `ClientToken` up to 64) and as the marker lakerun adds to a Glue run's arguments, so a run can be
 * found even when lakerun died between starting it and recording its id.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Journal } from "../journal.ts";

/** Where a job stands, as far as the ledger knows. */
export type CloudRunState = "starting" | "started" | "succeeded" | "failed";

/** One job's entry. */
export interface CloudRunEntry {
  /** The routine run that started it. */
  runId: string;
  /** What the job does (hash of its SQL or arguments). */
  fingerprint: string;
  /** 1 for the first job of this key in this run, then 2, 3… after jobs that ended badly. */
  attempt: number;
  /** Idempotency token and marker: 64 lower-case hex characters. */
  token: string;
  /** When the entry was opened (ISO 8601): a job found by its marker started after this. */
  openedAt: string;
  /** The job's id at the service, once known. */
  id?: string;
  state: CloudRunState;
  /** What the task wants to remember about the finished job (figures for its report). */
  result?: Record<string, unknown>;
}

/**
 * A fingerprint of what a job does: the sha256 of its parts, as hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fingerprintOf } from "./ledger.ts";
 *
 * assert.equal(fingerprintOf("SELECT 1", { db: "lake" }), fingerprintOf("SELECT 1", { db: "lake" }));
 * assert.notEqual(fingerprintOf("SELECT 1"), fingerprintOf("SELECT 2"));
 * ```
 */
export function fingerprintOf(...parts: unknown[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** The journal keys of the ledger's entries start so (other records of the step's journal do not). */
const ENTRY_PREFIX = "cloud-";

/** What {@link CloudRunLedger.begin} found. */
export interface CloudRunBegin {
  /** The entry to use. */
  entry: CloudRunEntry;
  /** Whether `entry` is an earlier attempt's job to look up instead of starting one. */
  reattach: boolean;
  /**
   * An earlier attempt of this run's entry under the key, for another job (other SQL or arguments: the routine
   * changed), that was not seen to end: it may still run beside the new one unless the caller stops it.
   */
  superseded?: CloudRunEntry;
}

/** The cloud jobs of one step, by key (e.g. `query-0`, `job-run`). */
export class CloudRunLedger {
  private constructor(
    readonly journal: Journal,
    readonly runId: string,
    readonly stepId: string,
  ) {}

  /** Opens the ledger of the step whose state folder is `stateDir`, for routine run `runId`. */
  static async open(stateDir: string, runId: string, stepId: string): Promise<CloudRunLedger> {
    return new CloudRunLedger(await Journal.open(stateDir), runId, stepId);
  }

  /**
   * The journal key of this run's entry under `key`: entries of every run are kept apart, so a run that did
   * not succeed still finds its own when runs for other dates came in between (a backfill re-run).
   */
  #key(key: string): string {
    return `${ENTRY_PREFIX}${
      createHash("sha256").update(`${this.runId}\n${key}`).digest("hex").slice(0, 32)
    }`;
  }

  /** Where earlier versions kept the entry under `key`, one for all runs: read, never written. */
  #sharedKey(key: string): string {
    return `${ENTRY_PREFIX}${createHash("sha256").update(key).digest("hex").slice(0, 32)}`;
  }

  /** This run's entry under `key`. */
  async get(key: string): Promise<CloudRunEntry | undefined> {
    const entry = await this.journal.get<CloudRunEntry>(this.#key(key));
    if (entry) return entry;
    const shared = await this.journal.get<CloudRunEntry>(this.#sharedKey(key));
    return shared?.runId === this.runId ? shared : undefined;
  }

  /**
   * Forgets the entries of run `runId` in the step state folder `stateDir`: the run succeeded, so no later
   * attempt of it will look for them (a run that succeeded is never continued).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { CloudRunLedger } from "./ledger.ts";
   *
   * const stateDir = await Deno.makeTempDir();
   * await (await CloudRunLedger.open(stateDir, "run-1", "pg")).begin("load", "f1");
   * await (await CloudRunLedger.open(stateDir, "run-2", "pg")).begin("load", "f1");
   * await CloudRunLedger.forgetRun(stateDir, "run-2");
   * assert.equal(await (await CloudRunLedger.open(stateDir, "run-2", "pg")).get("load"), undefined);
   * assert.equal((await (await CloudRunLedger.open(stateDir, "run-1", "pg")).get("load"))?.runId, "run-1");
   * await Deno.remove(stateDir, { recursive: true });
   * ```
   */
  static async forgetRun(stateDir: string, runId: string): Promise<void> {
    const journal = await Journal.existing(stateDir);
    if (!journal) return;
    for (const key of await journal.keys()) {
      if (!key.startsWith(ENTRY_PREFIX)) continue;
      const entry = await journal.get<CloudRunEntry>(key);
      if (entry?.runId === runId) await journal.delete(key);
    }
  }

  /**
   * The entry to use for the job under `key`: the existing one when it belongs to this run, has the same
   * fingerprint and did not end badly (`reattach: true`: look the job up by its id or token instead of
   * starting one); otherwise a new entry, saved before this returns (`reattach: false`).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { CloudRunLedger } from "./ledger.ts";
   *
   * const stateDir = await Deno.makeTempDir();
   * const ledger = await CloudRunLedger.open(stateDir, "run-1", "athena");
   * const first = await ledger.begin("query-0", "f1");
   * assert.equal(first.reattach, false);
   * await ledger.started("query-0", "q-123");
   * // the same run again (lakerun was killed while the query ran): reattach to q-123
   * const again = await (await CloudRunLedger.open(stateDir, "run-1", "athena")).begin("query-0", "f1");
   * assert.deepEqual([again.reattach, again.entry.id, again.entry.token], [true, "q-123", first.entry.token]);
   * // the same run with other SQL: a new job, and the earlier one, which may still run, to stop
   * const changed = await (await CloudRunLedger.open(stateDir, "run-1", "athena")).begin("query-0", "f2");
   * assert.deepEqual([changed.reattach, changed.superseded?.id, changed.entry.attempt], [false, "q-123", 2]);
   * // a new run starts fresh
   * const next = await (await CloudRunLedger.open(stateDir, "run-2", "athena")).begin("query-0", "f1");
   * assert.equal(next.reattach, false);
   * await Deno.remove(stateDir, { recursive: true });
   * ```
   */
  async begin(key: string, fingerprint: string): Promise<CloudRunBegin> {
    const existing = await this.get(key);
    if (
      existing && existing.runId === this.runId && existing.fingerprint === fingerprint &&
      existing.state !== "failed"
    ) {
      return { entry: existing, reattach: true };
    }
    // this run's job under the key, for other SQL or arguments (the routine changed between attempts), and not
    // known to have ended: the caller stops it if it still runs
    const superseded =
      existing?.runId === this.runId && (existing.state === "starting" || existing.state === "started")
        ? existing
        : undefined;
    const attempt = existing && existing.runId === this.runId ? existing.attempt + 1 : 1;
    const entry: CloudRunEntry = {
      runId: this.runId,
      fingerprint,
      attempt,
      token: createHash("sha256").update(JSON.stringify([this.runId, this.stepId, key, attempt])).digest(
        "hex",
      ),
      openedAt: new Date().toISOString(),
      state: "starting",
    };
    await this.journal.put(this.#key(key), entry);
    return superseded ? { entry, reattach: false, superseded } : { entry, reattach: false };
  }

  /** Records the job's id, the moment the service returned it. */
  async started(key: string, id: string): Promise<void> {
    await this.#update(key, { id, state: "started" });
  }

  /** Records how the job ended; `failed` makes the next {@link begin} of this run start a new job. */
  async ended(key: string, state: "succeeded" | "failed", result?: Record<string, unknown>): Promise<void> {
    await this.#update(key, result === undefined ? { state } : { state, result });
  }

  async #update(key: string, change: Partial<CloudRunEntry>): Promise<void> {
    const entry = await this.get(key);
    if (!entry) throw new Error(`no cloud run entry ${JSON.stringify(key)} to update`);
    await this.journal.put(this.#key(key), { ...entry, ...change });
  }
}

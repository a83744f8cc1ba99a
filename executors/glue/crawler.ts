/**
 * The `run_crawler` task: starts a Glue crawler, or joins the crawl already running, waits for the crawler
 * to be READY again, and reports the tables the crawl created or updated.
 *
 * - **Never twice.** The crawl is recorded in the step's ledger the moment StartCrawler accepted it (or the
 *   crawl was joined). A re-run of an unfinished routine run waits for that crawl if the crawler is still
 *   running, or reports it if it is over (its `LastCrawl` started after the entry was opened), instead of
 *   crawling again.
 * - **Never left running.** Ctrl-C, SIGTERM, the step's `timeout` or a failure while waiting stop a crawl
 *   this step started (StopCrawler) and say so; a crawl it only joined is left alone.
 * - **Figures.** Tables created, updated and deleted come from GetCrawlerMetrics; the names of the tables
 *   created or updated from GetTables on the crawler's database (their create and update times against the
 *   crawl's start). When a figure is not available (moto has no GetCrawlerMetrics) the log says so and shows
 *   what `LastCrawl` says.
 *
 * Outcomes: `LastCrawl.Status` SUCCEEDED succeeds (moto reports "COMPLETED", accepted too), FAILED fails the
 * task with the crawl's ErrorMessage, CANCELLED fails it as stopped by someone else.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { AwsServiceError, isRefusal } from "../../lib/aws/json_client.ts";
import { CloudRunLedger, fingerprintOf } from "../../lib/cloud/ledger.ts";
import { plural } from "../../lib/format.ts";
import {
  CLOCK_SKEW_MS,
  epochMs,
  type GlueParams,
  GlueTask,
  type GlueTaskOptions,
  isAmbiguous,
  missingParam,
  STOP_TIMEOUT_MS,
  waitOrStop,
} from "./common.ts";

/** `LastCrawl.Status` values of a crawl that succeeded: AWS's SUCCEEDED, and moto's COMPLETED. */
export const SUCCEEDED_CRAWL_STATUSES: ReadonlySet<string> = new Set(["SUCCEEDED", "COMPLETED"]);

const LEDGER_KEY = "run_crawler";
/** READY answers in a row, with no sign of the crawl, after which the crawl is taken as over. */
const READY_READS_WITHOUT_CRAWL = 3;

/** A Glue `Crawler`, as far as lakerun reads it. */
export interface Crawler {
  Name: string;
  State?: string;
  DatabaseName?: string;
  LastCrawl?: {
    Status?: string;
    ErrorMessage?: string;
    LogGroup?: string;
    LogStream?: string;
    MessagePrefix?: string;
    /** Epoch seconds. */
    StartTime?: number;
  };
}

/** What a crawl changed in the catalog, as far as it could be found out. */
export interface CrawlFigures {
  /** From GetCrawlerMetrics, or why they are unavailable. */
  counts: { created: number; updated: number; deleted: number } | { unavailable: string };
  /** From GetTables, or why they are unavailable. */
  names: { created: string[]; updated: string[] } | { unavailable: string };
}

/**
 * Runs the `run_crawler` task (see the module documentation).
 *
 * @example
 * ```ts ignore
 * await runCrawler(context); // context.params: { crawler_name: "raw-sales", … }
 * ```
 */
export async function runCrawler(
  context: TaskContext<GlueParams>,
  options: GlueTaskOptions = {},
): Promise<void> {
  const name = context.params.crawler_name;
  if (!name) throw missingParam("run_crawler", "crawler_name", "the Glue crawler to run");
  const ledger = await CloudRunLedger.open(context.stateDir, context.runId, context.stepId);
  await new CrawlTask(context, options, name, ledger).run();
}

class CrawlTask extends GlueTask {
  readonly #name: string;
  /** Whether this step started the crawl (else it joined one someone else started). */
  #ours = false;

  constructor(
    context: TaskContext<GlueParams>,
    options: GlueTaskOptions,
    name: string,
    ledger: CloudRunLedger,
  ) {
    super(context, options, ledger);
    this.#name = name;
  }

  /** Crawls that started after this (epoch ms, less the clock skew) may be the one of this entry. */
  get #since(): number {
    return Date.parse(this.entry.openedAt) - CLOCK_SKEW_MS;
  }

  async run(): Promise<void> {
    const { entry, reattach } = await this.ledger.begin(
      LEDGER_KEY,
      fingerprintOf("glue.run_crawler", this.#name),
    );
    this.entry = entry;
    if (reattach && entry.state === "succeeded") {
      this.log(
        `crawler ${this.#name} already crawled in an earlier attempt of this routine run: not crawling again` +
          describeResult(entry.result),
      );
      // what the first attempt reported, from what it recorded
      this.#report(entry.result ?? {});
      return;
    }
    if (reattach) {
      const crawler = await this.#getCrawler(this.context.signal);
      this.#ours = entry.state === "starting" || entry.id?.startsWith("started") === true;
      if (crawler.State && crawler.State !== "READY") {
        if (entry.state === "starting") {
          await this.ledger.started(LEDGER_KEY, `started ${new Date().toISOString()}`);
        }
        this.log(
          `crawler ${this.#name} is ${crawler.State}: reattaching to the crawl an earlier attempt of this routine ` +
            "run started",
        );
      } else if (epochMs(crawler.LastCrawl?.StartTime) >= this.#since) {
        this.log(`the crawl of ${this.#name} an earlier attempt of this routine run started is over`);
        return await this.#finish(crawler);
      } else {
        await this.#start();
      }
    } else {
      await this.#start();
    }
    if (!this.context.params.wait) {
      this.log(`not waiting (wait: false): the crawl goes on by itself, and lakerun will not stop it`);
      return;
    }
    await this.#finish(await this.#wait());
  }

  async #start(): Promise<void> {
    const { signal } = this.context;
    for (let attempt = 1;; attempt++) {
      try {
        await this.client.call("StartCrawler", { Name: this.#name }, { signal });
        this.#ours = true;
        await this.ledger.started(LEDGER_KEY, `started ${new Date().toISOString()}`);
        this.log(`started crawler ${this.#name}`);
        return;
      } catch (error) {
        if (error instanceof AwsServiceError && error.code === "CrawlerRunningException") {
          // after an unclear first answer, the running crawl is the one that StartCrawler started
          this.#ours = attempt > 1;
          await this.ledger.started(
            LEDGER_KEY,
            `${this.#ours ? "started" : "joined"} ${new Date().toISOString()}`,
          );
          this.log(
            this.#ours
              ? `crawler ${this.#name} is running: the first StartCrawler had started it`
              : `crawler ${this.#name} is already running (started elsewhere): joining that crawl; it is not ` +
                "stopped if this step is interrupted",
          );
          return;
        }
        // refused (no such crawler, access denied) or never sent: no crawl started, the next attempt starts afresh
        if (isRefusal(error) && !isAmbiguous(error)) await this.ledger.ended(LEDGER_KEY, "failed");
        // a crawler cannot run twice: sending StartCrawler again after an unclear answer is safe
        if (signal.aborted || !isAmbiguous(error) || attempt >= 3) throw error;
        this.log(`StartCrawler got no clear answer (${(error as Error).message}): asking again`);
      }
    }
  }

  async #getCrawler(signal: AbortSignal): Promise<Crawler> {
    const { Crawler } = await this.client.call<{ Crawler: Crawler }>(
      "GetCrawler",
      { Name: this.#name },
      { idempotent: true, signal },
    );
    return Crawler;
  }

  /** Polls GetCrawler until the crawler is READY again after this crawl; stops the crawl if the wait fails. */
  #wait(): Promise<Crawler> {
    let sawCrawl = false;
    let readyReads = 0;
    return waitOrStop(this.context, this.options, {
      label: `crawler ${this.#name}`,
      title: `Glue crawler ${this.#name}`,
      ledger: this.ledger,
      ledgerKey: LEDGER_KEY,
      stop: (why) => this.#stop(why),
      check: async (signal) => {
        const crawler = await this.#getCrawler(signal);
        const state = crawler.State ?? "READY";
        if (state !== "READY") {
          sawCrawl = true;
          readyReads = 0;
          return { done: false, state, value: crawler };
        }
        readyReads++;
        const done = sawCrawl || epochMs(crawler.LastCrawl?.StartTime) >= this.#since ||
          readyReads >= READY_READS_WITHOUT_CRAWL;
        return { done, state, value: crawler };
      },
    });
  }

  /** Stops the crawl if this step started it (StopCrawler); says what happened; true if stopped. */
  async #stop(why: string): Promise<boolean> {
    if (!this.#ours) {
      this.log(`${why}: left crawler ${this.#name} running: this step joined a crawl it did not start`);
      return false;
    }
    try {
      await this.client.call(
        "StopCrawler",
        { Name: this.#name },
        { idempotent: true, signal: AbortSignal.timeout(STOP_TIMEOUT_MS) },
      );
      this.log(`${why}: stopped crawler ${this.#name} (StopCrawler accepted: STOPPING, then READY)`);
      return true;
    } catch (error) {
      if (error instanceof AwsServiceError && error.code === "CrawlerNotRunningException") {
        this.log(`${why}: crawler ${this.#name} had already finished its crawl`);
        return false;
      }
      this.log(
        `${why}: could not stop crawler ${this.#name} (${(error as Error).message}): it may still be running`,
      );
      return false;
    }
  }

  /** Judges the crawl by `LastCrawl`, then reports what it changed. */
  async #finish(crawler: Crawler): Promise<void> {
    const last = crawler.LastCrawl;
    const status = last?.Status;
    if (!status || !SUCCEEDED_CRAWL_STATUSES.has(status)) {
      await this.ledger.ended(LEDGER_KEY, "failed", { status: status ?? null });
      throw new Error(
        !status
          ? `Glue crawler ${this.#name} is READY but reports no crawl (no LastCrawl)`
          : status === "CANCELLED"
          ? `the crawl of Glue crawler ${this.#name} was CANCELLED (stopped outside this step)`
          : `the crawl of Glue crawler ${this.#name} ended ${status}: ${
            last?.ErrorMessage || "(Glue gave no ErrorMessage)"
          }`,
      );
    }
    const figures = await this.#figures(crawler);
    await this.ledger.ended(LEDGER_KEY, "succeeded", { status, ...flatten(figures) });
    this.#report({ status, ...flatten(figures) });
    const started = epochMs(last?.StartTime);
    this.log(
      `crawl of ${this.#name} ${status}${
        Number.isNaN(started) ? "" : ` (started ${new Date(started).toISOString()})`
      }`,
    );
    if ("unavailable" in figures.counts) {
      this.log(
        `tables created/updated: figure unavailable (${figures.counts.unavailable}); LastCrawl says ${status}` +
          (last?.LogGroup ? `, log ${last.LogGroup}/${last.LogStream ?? this.#name}` : "") +
          (last?.MessagePrefix ? ` (message prefix ${last.MessagePrefix})` : ""),
      );
    } else {
      const { created, updated, deleted } = figures.counts;
      this.log(`tables: ${created} created, ${updated} updated, ${deleted} deleted`);
    }
    if ("unavailable" in figures.names) {
      this.log(`table names unavailable (${figures.names.unavailable})`);
    } else {
      const { created, updated } = figures.names;
      const db = crawler.DatabaseName;
      if (created.length === 0 && updated.length === 0) {
        this.log(`no table of database ${db} was created or updated by this crawl`);
      } else {
        if (created.length) this.log(`created in ${db}: ${created.join(", ")}`);
        if (updated.length) this.log(`updated in ${db}: ${updated.join(", ")}`);
      }
    }
    this.context.shared.set("glue.crawl", { crawler: this.#name, status, ...flatten(figures) });
  }

  /**
   * The outputs of a finished crawl, from what the ledger records of it: `crawl_status` (LastCrawl's), and
   * `tables_created`, `tables_updated`, `tables_deleted` when GetCrawlerMetrics gave them.
   */
  #report(result: Record<string, unknown>): void {
    const outputs: Array<[string, unknown]> = [
      ["crawl_status", result.status],
      ["tables_created", result.tablesCreated],
      ["tables_updated", result.tablesUpdated],
      ["tables_deleted", result.tablesDeleted],
    ];
    for (const [name, value] of outputs) {
      if (typeof value === "string" || typeof value === "number") {
        this.context.report({ type: "output", name, value });
      }
    }
  }

  async #figures(crawler: Crawler): Promise<CrawlFigures> {
    const signal = this.context.signal;
    let counts: CrawlFigures["counts"];
    try {
      const { CrawlerMetricsList } = await this.client.call<{
        CrawlerMetricsList?: Array<
          { TablesCreated?: number; TablesUpdated?: number; TablesDeleted?: number }
        >;
      }>("GetCrawlerMetrics", { CrawlerNameList: [this.#name] }, { signal });
      const metrics = CrawlerMetricsList?.[0];
      counts = metrics
        ? {
          created: metrics.TablesCreated ?? 0,
          updated: metrics.TablesUpdated ?? 0,
          deleted: metrics.TablesDeleted ?? 0,
        }
        : { unavailable: "GetCrawlerMetrics returned no metrics for this crawler" };
    } catch (error) {
      if (signal.aborted) throw error;
      counts = { unavailable: `GetCrawlerMetrics: ${(error as Error).message}` };
    }
    return { counts, names: await this.#tableNames(crawler) };
  }

  /** The tables of the crawler's database created or updated since the crawl started (GetTables). */
  async #tableNames(crawler: Crawler): Promise<CrawlFigures["names"]> {
    const database = crawler.DatabaseName;
    const since = epochMs(crawler.LastCrawl?.StartTime);
    if (!database) return { unavailable: "the crawler names no database" };
    if (Number.isNaN(since)) return { unavailable: "LastCrawl has no StartTime" };
    const created: string[] = [];
    const updated: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const answer = await this.client.call<{
          TableList?: Array<{ Name: string; CreateTime?: number; UpdateTime?: number }>;
          NextToken?: string;
        }>(
          "GetTables",
          { DatabaseName: database, ...(nextToken ? { NextToken: nextToken } : {}) },
          { idempotent: true, signal: this.context.signal },
        );
        for (const table of answer.TableList ?? []) {
          if (epochMs(table.CreateTime) >= since) created.push(table.Name);
          else if (epochMs(table.UpdateTime) >= since) updated.push(table.Name);
        }
        nextToken = answer.NextToken;
      } while (nextToken);
    } catch (error) {
      if (this.context.signal.aborted) throw error;
      if (error instanceof AwsServiceError && error.code === "EntityNotFoundException") {
        return { created: [], updated: [] };
      }
      return { unavailable: `GetTables: ${(error as Error).message}` };
    }
    return { created: created.sort(), updated: updated.sort() };
  }
}

function flatten(figures: CrawlFigures): Record<string, unknown> {
  return {
    ...("unavailable" in figures.counts ? {} : {
      tablesCreated: figures.counts.created,
      tablesUpdated: figures.counts.updated,
      tablesDeleted: figures.counts.deleted,
    }),
    ...("unavailable" in figures.names
      ? {}
      : { created: figures.names.created, updated: figures.names.updated }),
  };
}

function describeResult(result: Record<string, unknown> | undefined): string {
  if (!result) return "";
  const parts: string[] = [];
  if (typeof result.tablesCreated === "number") {
    parts.push(`${plural(result.tablesCreated, "table")} created, ${result.tablesUpdated} updated`);
  }
  if (Array.isArray(result.created) && result.created.length) {
    parts.push(`created: ${result.created.join(", ")}`);
  }
  if (Array.isArray(result.updated) && result.updated.length) {
    parts.push(`updated: ${result.updated.join(", ")}`);
  }
  return parts.length ? ` (${parts.join("; ")})` : "";
}

/**
 * GlueExecutor: runs an AWS Glue job (`start_job_run`) or crawler (`run_crawler`) and waits for it, so that
 * a routine can put an ETL job or a catalog refresh between its other steps.
 *
 * - **Never twice:** each run or crawl is recorded in the step's journal the moment it exists, and a job run
 *   carries a marker argument (`--lakerun-run-marker`) so that it is found even when lakerun died before
 *   recording it; a re-run of an unfinished routine run reattaches instead of starting another
 *   (`job_run.ts`, `crawler.ts`).
 * - **Never left running:** Ctrl-C, SIGTERM or the step's `timeout` stop what the step started
 *   (BatchStopJobRun, StopCrawler) before lakerun exits, and the log says so. `wait: false` starts, records
 *   and returns.
 * - **Cheap polling:** adaptive backoff with jitter from `poll_interval` (a 10-minute job costs at most 37
 *   GetJobRun calls with the default 2 s; Airflow's fixed 6 s costs 100); throttling is retried, never fatal.
 * - **Sandbox:** the step reaches Glue's endpoint, STS and the credential sources in use, nothing else
 *   (`lakerun plan` shows it); `lakerun plan --iam` shows the IAM statements it needs.
 *
 * Later tasks of the same step find the run's id in `context.shared` under `glue.job_run_id`, and the crawl's
 * outcome and table figures under `glue.crawl`.
 *
 * moto (the test stand-in) differs from Glue: it has no failed runs, no BatchStopJobRun and no
 * GetCrawlerMetrics; only ListCrawls advances a crawl (GetCrawler stays RUNNING under its default
 * transition: tests set `glue::crawl` to `immediate` or time-based), and a finished crawl's status is
 * "COMPLETED" where Glue says "SUCCEEDED" (both are accepted). Those paths are tested against
 * `tests/support/aws_fake.ts`.
 *
 * @example A routine step
 * ```json
 * "GlueExecutor": {
 *   "params": { "job_name": "clean-sales", "arguments": { "day": "2024-05-01" }, "timeout": 3600 },
 *   "tasks": ["start_job_run"]
 * }
 * ```
 *
 * @module
 */
import type { IamStatement, PermissionContext } from "../../sdk/executor.ts";
import { defineExecutor } from "../../sdk/executor.ts";
import { allow, awsArn, glueCatalogArn, glueCrawlerArn, glueJobArn } from "../../lib/aws/iam.ts";
import { awsRegionOf, awsServiceScope } from "../../lib/aws/scope.ts";
import { type GlueParams, paramsSchema } from "./params.ts";

/**
 * The IAM statements a step needs for the tasks it runs: the job-run actions on its job, the crawler actions
 * on its crawler, and GetTables on the catalog (the crawler's database is only known at run time, so every
 * database and table of the region's catalog: GetTables only reads table definitions).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueStatements } from "./mod.ts";
 *
 * const [statement] = glueStatements({ job_name: "clean-sales" }, { aws: { region: "eu-west-1" }, tasks: ["start_job_run"] });
 * assert.deepEqual(statement.Resource, ["arn:aws:glue:eu-west-1:*:job/clean-sales"]);
 * assert.ok(statement.Action.includes("glue:BatchStopJobRun"));
 * ```
 */
export function glueStatements(
  params: Pick<GlueParams, "job_name" | "crawler_name">,
  context: Pick<PermissionContext, "aws" | "tasks">,
): IamStatement[] {
  const region = awsRegionOf(context.aws);
  const runs = (task: string) => !context.tasks || context.tasks.includes(task);
  const statements: IamStatement[] = [];
  if (runs("start_job_run") && params.job_name) {
    statements.push(allow(
      ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
      [glueJobArn(region, params.job_name)],
    ));
  }
  if (runs("run_crawler") && params.crawler_name) {
    statements.push(
      allow(
        ["glue:StartCrawler", "glue:GetCrawler", "glue:StopCrawler", "glue:GetCrawlerMetrics"],
        [glueCrawlerArn(region, params.crawler_name)],
      ),
      allow(
        ["glue:GetTables"],
        [glueCatalogArn(region), awsArn("glue", region, "database/*"), awsArn("glue", region, "table/*/*")],
      ),
    );
  }
  return statements;
}

export default defineExecutor({
  name: "GlueExecutor",
  description:
    "Runs an AWS Glue job or crawler and waits for it: never started twice for one routine run, stopped if lakerun is interrupted, polled with adaptive backoff.",
  params: paramsSchema,
  permissions: (_params, context) => awsServiceScope("glue", context.aws),
  iam: glueStatements,
  iamNotes: (params, context) =>
    params.crawler_name && (context.tasks ?? ["run_crawler"]).includes("run_crawler")
      ? [
        `the database of crawler ${JSON.stringify(params.crawler_name)}, known only when it runs: ` +
        "glue:GetTables is granted on every database and table of the catalog instead (run_crawler reports " +
        "the tables the crawl created and updated; GetTables only reads table definitions); narrow " +
        "database/* and table/*/* to that database if you know it (without GetTables the crawl still runs, " +
        "its table figures are not reported)",
      ]
      : [],
  tasks: {
    start_job_run: {
      description:
        "Starts a run of job_name with arguments (or reattaches to the one this routine run started), waits for SUCCEEDED; FAILED, TIMEOUT, ERROR, STOPPED or EXPIRED fail the step with Glue's ErrorMessage.",
      needs: ["job_name"],
      outputs: {
        job_run_id: "Glue's id of the run (with wait: false too).",
        job_run_state:
          "The run's final state, SUCCEEDED (not with wait: false, unless a re-run found it over).",
        execution_time_seconds: "The run's execution time, when Glue gives it.",
        dpu_seconds: "The DPU-seconds the run used, when Glue gives them (Flex and auto-scaled runs).",
      },
      run: async (context) => {
        const { startJobRun } = await import("./job_run.ts");
        await startJobRun(context);
      },
    },
    run_crawler: {
      description:
        "Starts crawler_name (or joins the crawl already running), waits until it is READY again, and reports the tables the crawl created or updated.",
      needs: ["crawler_name"],
      outputs: {
        crawl_status: "The crawl's LastCrawl status: SUCCEEDED (moto: COMPLETED); not with wait: false.",
        tables_created: "Tables the crawl created, when GetCrawlerMetrics gives it.",
        tables_updated: "Tables the crawl updated, when GetCrawlerMetrics gives it.",
        tables_deleted: "Tables the crawl deleted, when GetCrawlerMetrics gives it.",
      },
      run: async (context) => {
        const { runCrawler } = await import("./crawler.ts");
        await runCrawler(context);
      },
    },
  },
});

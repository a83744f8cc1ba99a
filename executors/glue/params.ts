/**
 * The params of a GlueExecutor step, validated before anything runs. A light module: the parent process
 * loads it to validate routines without loading any AWS code.
 *
 * @module
 */
import type { ParamsOf, Zod } from "../../sdk/executor.ts";

/** The argument lakerun adds to every run it starts: the ledger entry's token, to find the run again. */
export const RUN_MARKER_ARGUMENT = "--lakerun-run-marker";

/** The default `poll_interval` in seconds: a 10-minute job then costs at most 37 status calls. */
export const DEFAULT_POLL_INTERVAL_S = 2;

/** A Glue job or crawler name: 1–255 characters on one line (Glue's single-line string pattern). */
// deno-lint-ignore no-control-regex -- control characters are what the pattern refuses
const GLUE_NAME = /^[^\u0000-\u0008\u000a-\u001f]{1,255}$/;

/** An argument name, with or without its leading `--`. */
const ARGUMENT_NAME = /^(--)?[^\s-]\S*$/;

/** The schema of a GlueExecutor step's params. */
export const paramsSchema = (z: Zod) => {
  const glueName = (what: string) =>
    z.string().regex(GLUE_NAME, {
      error: (issue) =>
        `must be a Glue ${what} name (1–255 characters on one line), not ${quote(issue.input)}`,
    });
  const argumentValue = z.union([z.string(), z.number(), z.boolean()], {
    error: (issue) => `must be a string, number or boolean, not ${quote(issue.input)}`,
  });
  return z.strictObject({
    job_name: glueName("job").optional().describe("The Glue job start_job_run runs (it must exist)."),
    arguments: z.record(z.string(), argumentValue).default({}).superRefine((args, context) => {
      const seen = new Map<string, string>();
      for (const key of Object.keys(args)) {
        const name = key.startsWith("--") ? key : `--${key}`;
        const problem = !ARGUMENT_NAME.test(key)
          ? `argument name ${quote(key)} must be a word such as "day" or "--day" (no spaces)`
          : name === RUN_MARKER_ARGUMENT
          ? `${quote(key)} is the argument lakerun adds to find its runs again; choose another name`
          : seen.has(name)
          ? `${quote(key)} and ${quote(seen.get(name))} are the same argument ${name}`
          : undefined;
        // the key is the value at fault: lakerun quotes it (input), not the value it maps to
        if (problem) context.addIssue({ code: "custom", message: problem, path: [key], input: key });
        seen.set(name, key);
      }
    }).describe(
      'Arguments of the job run, by name with or without the leading "--" (e.g. {"day": "2024-05-01"}); numbers and booleans are sent as strings.',
    ),
    crawler_name: glueName("crawler").optional().describe(
      "The Glue crawler run_crawler runs (it must exist).",
    ),
    wait: z.boolean().default(true).describe(
      "Wait until the run or crawl ends (and stop it if lakerun is interrupted). false: start it, record it, report its id and return; nothing is stopped on exit then.",
    ),
    timeout: z.number().positive().max(7 * 24 * 3600).optional().describe(
      "Seconds to wait before stopping the run or crawl and failing the step. A job run also gets it as its Glue Timeout (minutes, rounded up), so it ends even if lakerun is killed. Default: no limit.",
    ),
    poll_interval: z.number().min(0.05).max(300).default(DEFAULT_POLL_INTERVAL_S).describe(
      "First interval between status checks, in seconds; later ones grow with the time waited (a quarter of it, at most 30 s).",
    ),
    worker_type: z.string().regex(/^(Standard|[A-Z]\.\d+X)$/, {
      error: (issue) => `must be a Glue worker type such as G.1X or G.2X, not ${quote(issue.input)}`,
    }).optional().describe("Worker type of the job run (G.1X, G.2X, G.025X, …), instead of the job's."),
    number_of_workers: z.number().int().min(1).max(10_000).optional().describe(
      "Number of workers of the job run, instead of the job's.",
    ),
  });
};

/** The validated params of a GlueExecutor step. */
export type GlueParams = ParamsOf<typeof paramsSchema>;

/** `value` as JSON, cut to 80 characters, for messages. */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

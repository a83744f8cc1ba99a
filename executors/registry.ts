/**
 * The built-in executors, by the name routines use; the orchestrator reaches executors only through this table,
 * never by importing one. Each is imported by a URL computed at run time, so that starting lakerun reads only
 * the executors a routine names (a literal `import()` makes Deno read every one's modules up front); `deno
 * compile` embeds them through `--include executors/` (it analyzes the modules of an included folder).
 *
 * @module
 */
import type { ExecutorDefinition } from "../sdk/executor.ts";

/** Where a built-in executor's module is and how to load it. */
export interface ExecutorEntry {
  /** Module URL the step Worker imports. */
  url: string;
  load(): Promise<{ default: ExecutorDefinition }>;
}

const entries: Record<string, ExecutorEntry> = Object.create(null);
const FOLDERS: Record<string, string> = {
  DownloaderExecutor: "downloader",
  StagingExecutor: "staging",
  S3TransferExecutor: "s3_transfer",
  AthenaExecutor: "athena",
  GlueExecutor: "glue",
  PostgresExecutor: "postgres",
  RedshiftExecutor: "redshift",
};
for (const [name, folder] of Object.entries(FOLDERS)) {
  const url = new URL(`./${folder}/mod.ts`, import.meta.url).href;
  entries[name] = { url, load: () => import(url) };
}

/** Built-in executors by name (a null-prototype table: only own names resolve). */
export const builtinExecutors: Readonly<Record<string, ExecutorEntry>> = Object.freeze(entries);

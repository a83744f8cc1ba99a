/**
 * The built-in executors, by the name routines use. Literal `import()` calls let `deno compile` embed them;
 * the orchestrator reaches executors only through this table, never by importing one.
 *
 * @module
 */
import type { ExecutorDefinition } from "../orchestrator/contract.ts";

/** Where a built-in executor's module is and how to load it. */
export interface ExecutorEntry {
  /** Module URL the step Worker imports. */
  url: string;
  load(): Promise<{ default: ExecutorDefinition }>;
}

const entries: Record<string, ExecutorEntry> = Object.create(null);
entries.DownloaderExecutor = {
  url: new URL("./downloader.ts", import.meta.url).href,
  load: () => import("./downloader.ts"),
};
entries.StagingExecutor = {
  url: new URL("./staging.ts", import.meta.url).href,
  load: () => import("./staging.ts"),
};
entries.S3TransferExecutor = {
  url: new URL("./s3_transfer.ts", import.meta.url).href,
  load: () => import("./s3_transfer.ts"),
};

/** Built-in executors by name (a null-prototype table: only own names resolve). */
export const builtinExecutors: Readonly<Record<string, ExecutorEntry>> = Object.freeze(entries);

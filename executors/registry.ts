/**
 * The built-in executors, by the name routines use. Literal `import()` calls let `deno compile` embed them;
 * the orchestrator reaches executors only through this table, never by importing one.
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
entries.DownloaderExecutor = {
  url: new URL("./downloader/mod.ts", import.meta.url).href,
  load: () => import("./downloader/mod.ts"),
};
entries.StagingExecutor = {
  url: new URL("./staging/mod.ts", import.meta.url).href,
  load: () => import("./staging/mod.ts"),
};
entries.S3TransferExecutor = {
  url: new URL("./s3_transfer/mod.ts", import.meta.url).href,
  load: () => import("./s3_transfer/mod.ts"),
};
entries.AthenaExecutor = {
  url: new URL("./athena/mod.ts", import.meta.url).href,
  load: () => import("./athena/mod.ts"),
};
entries.GlueExecutor = {
  url: new URL("./glue/mod.ts", import.meta.url).href,
  load: () => import("./glue/mod.ts"),
};
entries.PostgresExecutor = {
  url: new URL("./postgres/mod.ts", import.meta.url).href,
  load: () => import("./postgres/mod.ts"),
};
entries.RedshiftExecutor = {
  url: new URL("./redshift/mod.ts", import.meta.url).href,
  load: () => import("./redshift/mod.ts"),
};

/** Built-in executors by name (a null-prototype table: only own names resolve). */
export const builtinExecutors: Readonly<Record<string, ExecutorEntry>> = Object.freeze(entries);

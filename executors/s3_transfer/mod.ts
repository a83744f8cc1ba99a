/**
 * S3TransferExecutor: copies, moves or syncs files between two locations, each a local folder or an
 * `s3://bucket/prefix`, keeping relative paths. Files already identical at the destination are skipped;
 * `move` deletes a source file only once its copy is verified; `sync` deletes extraneous destination files
 * only after every copy succeeded. Copies between two S3 locations are server-side when the backend can.
 *
 * @module
 */
import type { TaskContext, Zod } from "../../sdk/executor.ts";
import { defineExecutor } from "../../sdk/executor.ts";
import { formatBytes } from "../../orchestrator/cli/reporter.ts";
import { globProblem, pathFilter } from "../../lib/glob.ts";
import { isWithinLocation, locationScope, mergeScopes, openLocation } from "../../lib/storage/locations.ts";
import type { Storage, StoredFile } from "../../lib/storage/mod.ts";
import { LocalStorage, LocationNotFoundError } from "../../lib/storage/local.ts";
import { copyProblem, verifyCopy } from "../../lib/storage/verify.ts";

const paramsSchema = (z: Zod) => {
  const glob = z.string().superRefine((pattern, context) => {
    const problem = globProblem(pattern);
    if (problem) context.addIssue({ code: "custom", message: `invalid glob: ${problem}` });
  });
  return z.strictObject({
    source: z.string().min(1).describe("Where the files are: a local folder or s3://bucket/prefix."),
    destination: z.string().min(1).describe(
      "Where the files go, keeping their relative paths: a local folder or s3://bucket/prefix.",
    ),
    include: z.array(glob).default([]).describe(
      "Globs selecting files by relative path (`*`, `**`, `?`, `[abc]`, `{a,b}`), matched against the whole path: `*.csv` is top-level only, `**/*.csv` any depth. Default: every file.",
    ),
    exclude: z.array(glob).default([]).describe(
      "Globs of files to leave alone (never copied, moved or deleted), matched like include.",
    ),
    concurrency: z.number().int().min(1).max(64).default(4).describe("Files transferred at the same time."),
    dry_run: z.boolean().default(false).describe(
      "Only log what would be copied, moved or deleted, one line per file; change nothing.",
    ),
    delete_extraneous: z.boolean().default(false).describe(
      "sync only: once every copy succeeded, delete selected destination files that the source lacks. Refused when the source has no selected file.",
    ),
  }).refine((p) => !locationsOverlap(p.source, p.destination), {
    message: "source and destination overlap: one is inside the other",
    path: ["destination"],
  });
};

type Params = ReturnType<ReturnType<typeof paramsSchema>["parse"]>;

/** What a transfer does with each selected file. */
export type TransferMode = "copy" | "move" | "sync";

export default defineExecutor({
  name: "S3TransferExecutor",
  description:
    "Copies, moves or syncs files between local folders and s3://bucket/prefix locations (server-side between S3 locations), verifying before it deletes anything.",
  params: paramsSchema,
  permissions(params, context) {
    // only `move` writes the source (it deletes verified files there); without the step's task list, assume it
    const sourceAccess = !context.tasks || context.tasks.includes("move") ? "write" : "read";
    return mergeScopes(
      locationScope(params.source, sourceAccess, context),
      locationScope(params.destination, "write", context),
    );
  },
  tasks: {
    copy: {
      description: "Copies every selected file to destination, skipping files already identical there.",
      run: (context) => runTransfer(context, "copy"),
    },
    move: {
      description:
        "Copies every selected file, verifies each copy (size, then ETag or sha256) and only then deletes it from source.",
      run: (context) => runTransfer(context, "move"),
    },
    sync: {
      description:
        "Copies new and changed files only (size, then ETag or sha256); with delete_extraneous, then deletes destination files absent from source.",
      run: (context) => runTransfer(context, "sync"),
    },
  },
});

async function runTransfer(context: TaskContext<Params>, mode: TransferMode): Promise<void> {
  const { params } = context;
  if (locationsOverlap(params.source, params.destination, context.resolve)) {
    throw new Error(`source ${params.source} and destination ${params.destination} overlap`);
  }
  const source = await openLocation(params.source, context);
  const destination = await openLocation(params.destination, context);
  const label = `${source.url} → ${destination.url}`;
  let lastProgress = 0;
  const summary = await transferFiles(source, destination, {
    mode,
    include: params.include,
    exclude: params.exclude,
    concurrency: params.concurrency,
    dryRun: params.dry_run,
    deleteExtraneous: params.delete_extraneous,
    signal: context.signal,
    log: context.log,
    progress: (bytes, total) => {
      const now = performance.now();
      if (now - lastProgress < 250 && bytes < total) return;
      lastProgress = now;
      context.report({ type: "progress", bytes, total, label });
    },
  });
  if (!params.dry_run) context.report({ type: "moved", files: summary.files, bytes: summary.bytes });
}

/** Options for {@link transferFiles}. */
export interface TransferOptions {
  mode: TransferMode;
  /** Globs selecting files (every file when empty). */
  include?: readonly string[];
  /** Globs of files to leave alone. */
  exclude?: readonly string[];
  /** Files in flight at once. Default 4. */
  concurrency?: number;
  /** Log what would happen; change nothing. */
  dryRun?: boolean;
  /** With `sync`: delete selected destination files that the source lacks, after every copy succeeded. */
  deleteExtraneous?: boolean;
  signal?: AbortSignal;
  log?: (message: string) => void;
  /** Bytes transferred so far, of the bytes that need transferring. */
  progress?: (bytes: number, total: number) => void;
}

/** What {@link transferFiles} did (or, in a dry run, would do). */
export interface TransferSummary {
  /** Files copied or moved. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** Files of those copied without their bytes passing through lakerun (S3 server-side copy). */
  serverSide: number;
  /** Files skipped because the destination already held identical bytes. */
  identical: number;
  /** Destination files deleted (`sync` with `deleteExtraneous`). */
  deleted: number;
}

/** A failure naming the file and what was being done with it. */
export class TransferError extends Error {
  constructor(readonly path: string, action: string, cause: unknown) {
    super(`${action} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "TransferError";
  }
}

/**
 * Copies, moves or syncs the selected files of `source` to `destination`, at most `concurrency` at a time.
 * Stops at the first failure (files in flight are abandoned; a write never leaves a partial file) and throws
 * a {@link TransferError} naming the file; a re-run skips what is already there.
 *
 * @example
 * ```ts
 * const summary = await transferFiles(landing, archive, { mode: "move", include: ["*.csv"] });
 * console.log(`${summary.files} files moved`);
 * ```
 */
export async function transferFiles(
  source: Storage,
  destination: Storage,
  options: TransferOptions,
): Promise<TransferSummary> {
  const { mode } = options;
  const log = options.log ?? (() => {});
  const signal = options.signal ?? new AbortController().signal;
  const dryRun = options.dryRun ?? false;
  const selected = pathFilter(options.include ?? [], options.exclude ?? []);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const deleting = mode === "sync" && (options.deleteExtraneous ?? false);
  if (options.deleteExtraneous && mode !== "sync") {
    log(`delete_extraneous applies to sync only; ${mode} deletes nothing`);
  }

  const files: StoredFile[] = [];
  const sourcePaths = new Set<string>();
  for await (const file of source.list({ signal })) {
    if (!selected(file.path)) continue;
    sourcePaths.add(file.path);
    if (file.kind === "symlink") log(`skipping symbolic link ${file.path} (never followed)`);
    else files.push(file);
  }
  if (!dryRun) {
    const removed = await destination.removeTemporaries({ recursive: true });
    if (removed) {
      log(`removed ${plural(removed, "temporary file")} left by an interrupted run in ${destination.url}`);
    }
  }
  const existing = await listOrEmpty(destination, signal);
  const extraneous = deleting
    ? [...existing.values()].filter((file) => !sourcePaths.has(file.path) && selected(file.path))
    : [];
  if (extraneous.length > 0 && sourcePaths.size === 0) {
    throw new Error(
      `${source.url} has no selected file: refusing to delete all ${
        plural(extraneous.length, "file")
      } of ${destination.url} (delete_extraneous)`,
    );
  }

  const summary: TransferSummary = { files: 0, bytes: 0, serverSide: 0, identical: 0, deleted: 0 };
  const renames = mode === "move" && source instanceof LocalStorage && destination instanceof LocalStorage;
  let total = files.reduce((sum, file) => sum + file.size, 0);
  let transferred = 0;
  const onBytes = (bytes: number) => {
    transferred += bytes;
    options.progress?.(transferred, total);
  };
  const action = mode === "move" ? "move" : "copy";

  await runPool(files, concurrency, signal, async (file, poolSignal) => {
    const { path } = file;
    try {
      if (renames) {
        // one local file system: a rename, which cannot leave two copies or none (moveTo verifies a
        // cross-device copy before removing the source)
        if (dryRun) log(`move ${path} (${formatBytes(file.size)})`);
        else await (source as LocalStorage).moveTo(path, destination as LocalStorage, path);
        summary.files++;
        summary.bytes += file.size;
        onBytes(file.size);
        return;
      }
      if (await alreadyThere(source, destination, file, existing.get(path), mode === "move", poolSignal)) {
        total -= file.size;
        if (mode !== "move") {
          summary.identical++;
          return;
        }
        // verified identical by lib/verify.ts: only the source copy has to go
        if (dryRun) log(`move ${path} (${formatBytes(file.size)}; already at the destination)`);
        else await source.remove(path);
        summary.files++;
        summary.bytes += file.size;
        return;
      }
      if (dryRun) {
        log(`${action} ${path} (${formatBytes(file.size)})`);
      } else {
        if (await copyFile(source, destination, file, poolSignal, onBytes)) summary.serverSide++;
        if (mode === "move") {
          await verifyCopy(source, path, destination, path, { signal: poolSignal });
          await source.remove(path);
        }
      }
      summary.files++;
      summary.bytes += file.size;
    } catch (error) {
      if (poolSignal.aborted) throw poolSignal.reason ?? error;
      throw new TransferError(path, action, error);
    }
  });

  if (extraneous.length > 0) {
    await runPool(extraneous, concurrency, signal, async (file) => {
      if (file.kind !== "file") {
        log(`skipping symbolic link ${file.path} in the destination (never followed or deleted)`);
        return;
      }
      if (dryRun) log(`delete ${file.path} (${formatBytes(file.size)})`);
      else {
        try {
          await destination.remove(file.path);
        } catch (error) {
          throw new TransferError(file.path, "delete", error);
        }
      }
      summary.deleted++;
    });
  }

  log(describeSummary(summary, mode, dryRun, files.length, source));
  return summary;
}

function describeSummary(
  summary: TransferSummary,
  mode: TransferMode,
  dryRun: boolean,
  selected: number,
  source: Storage,
): string {
  if (selected === 0 && summary.deleted === 0) return `no file to transfer in ${source.url}`;
  const verb = mode === "move" ? "move" : "copy";
  const parts = [
    `${dryRun ? `would ${verb}` : mode === "move" ? "moved" : "copied"} ${plural(summary.files, "file")} (${
      formatBytes(summary.bytes)
    }${summary.serverSide ? `, ${summary.serverSide} server-side` : ""})`,
  ];
  if (summary.identical) parts.push(`${summary.identical} already identical`);
  if (summary.deleted) parts.push(`${dryRun ? "would delete" : "deleted"} ${summary.deleted} extraneous`);
  return `${dryRun ? "dry run: " : ""}${parts.join("; ")}${dryRun ? "; nothing was changed" : ""}`;
}

/**
 * True when the destination already holds the file's bytes: same size, then the same ETag (both S3) or the
 * same content by {@link copyProblem}. `verified` insists on {@link copyProblem}, as before a deletion.
 */
async function alreadyThere(
  source: Storage,
  destination: Storage,
  file: StoredFile,
  there: StoredFile | undefined,
  verified: boolean,
  signal: AbortSignal,
): Promise<boolean> {
  if (!there || there.kind !== "file" || there.size !== file.size) return false;
  if (!verified && file.etag && there.etag && file.etag === there.etag) return true;
  const problem = await copyProblem(source, file.path, destination, file.path, { sourceInfo: file, signal });
  return problem === undefined;
}

/**
 * Copies one file: server-side, or by ranges on several threads, when the pair of locations can (see
 * {@link Storage.copyFrom}), else streamed. True when it was server-side.
 */
async function copyFile(
  source: Storage,
  destination: Storage,
  file: StoredFile,
  signal: AbortSignal,
  onBytes: (bytes: number) => void,
): Promise<boolean> {
  const options = { size: file.size, signal };
  const copied = await destination.copyFrom?.(source, file.path, file.path, { ...options, etag: file.etag });
  if (copied) {
    onBytes(file.size);
    return copied.serverSide;
  }
  const data = await source.read(file.path, { signal });
  const counted = data.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onBytes(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
  try {
    await destination.write(file.path, counted, options);
  } catch (error) {
    await counted.cancel(error).catch(() => {}); // releases the source when the write did not consume it
    throw error;
  }
  return false;
}

/** Every file of `storage` by path; none when the location does not exist yet. */
async function listOrEmpty(storage: Storage, signal: AbortSignal): Promise<Map<string, StoredFile>> {
  const files = new Map<string, StoredFile>();
  try {
    for await (const file of storage.list({ signal })) files.set(file.path, file);
  } catch (error) {
    if (!(error instanceof LocationNotFoundError)) throw error;
  }
  return files;
}

/**
 * Runs `work` on every item with at most `limit` in flight. The first failure stops new work, aborts the
 * work in flight (through the signal it receives) and is rethrown once everything settled.
 */
async function runPool<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal,
  work: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  signal.throwIfAborted();
  const controller = new AbortController();
  const forward = () => controller.abort(signal.reason);
  signal.addEventListener("abort", forward, { once: true });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const runner = async () => {
    while (!failure && !controller.signal.aborted && next < items.length) {
      const item = items[next++];
      try {
        await work(item, controller.signal);
      } catch (error) {
        if (!failure) {
          failure = { error };
          controller.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  } finally {
    signal.removeEventListener("abort", forward);
  }
  if (failure) throw failure.error;
  signal.throwIfAborted();
}

/**
 * Whether two locations overlap (one inside the other). Without `resolve`, relative local paths cannot be
 * compared with absolute ones and are taken as not overlapping; the task checks again with real paths.
 */
function locationsOverlap(a: string, b: string, resolve?: (path: string) => string): boolean {
  return isWithinLocation(a, b, resolve) || isWithinLocation(b, a, resolve);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

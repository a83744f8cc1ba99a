/**
 * Copies, moves or syncs the files of one location to another, keeping relative paths, with bounded
 * concurrency: rclone's `copy`, `move` and `sync`, over lakerun's one copy/move primitive
 * (`lib/transfer/copy.ts`). Files already identical at the destination are skipped; `move` deletes a source
 * file only once its copy is verified; `sync` deletes extraneous destination files only after every copy
 * succeeded.
 *
 * @module
 */
import { runPool } from "../async.ts";
import { formatBytes, plural } from "../format.ts";
import { pathFilter } from "../glob.ts";
import { LocationNotFoundError } from "../storage/local.ts";
import type { Storage, StoredFile } from "../storage/mod.ts";
import { copyProblem } from "../storage/verify.ts";
import { copyFile, moveFile, removeLeftovers } from "./copy.ts";

/** What a transfer does with each selected file. */
export type TransferMode = "copy" | "move" | "sync";

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
  /** Their bytes. */
  identicalBytes: number;
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
 * @example Moving the CSV files of one local folder to another
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { transferFiles } from "./transfer.ts";
 *
 * const root = await Deno.makeTempDir();
 * const landing = new LocalStorage(`${root}/landing`);
 * const archive = new LocalStorage(`${root}/archive`);
 * await landing.write("a.csv", new Blob(["a,b\n"]).stream());
 * await landing.write("notes.txt", new Blob(["hi\n"]).stream());
 * const summary = await transferFiles(landing, archive, { mode: "move", include: ["*.csv"] });
 * assert.deepEqual(summary, { files: 1, bytes: 4, serverSide: 0, identical: 0, identicalBytes: 0, deleted: 0 });
 * assert.deepEqual(await Array.fromAsync(landing.list(), (file) => file.path), ["notes.txt"]);
 * assert.deepEqual(await Array.fromAsync(archive.list(), (file) => file.path), ["a.csv"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @example A re-run skips the files already copied
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { transferFiles } from "./transfer.ts";
 *
 * const root = await Deno.makeTempDir();
 * const landing = new LocalStorage(`${root}/landing`);
 * const staging = new LocalStorage(`${root}/staging`);
 * await landing.write("2024/a.csv", new Blob(["a,b\n"]).stream());
 * const first = await transferFiles(landing, staging, { mode: "copy" });
 * assert.deepEqual(first, { files: 1, bytes: 4, serverSide: 0, identical: 0, identicalBytes: 0, deleted: 0 });
 * const again = await transferFiles(landing, staging, { mode: "copy" });
 * assert.deepEqual(again, { files: 0, bytes: 0, serverSide: 0, identical: 1, identicalBytes: 4, deleted: 0 });
 * await Deno.remove(root, { recursive: true });
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
  if (!dryRun) await removeLeftovers(destination, log);
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

  const summary: TransferSummary = {
    files: 0,
    bytes: 0,
    serverSide: 0,
    identical: 0,
    identicalBytes: 0,
    deleted: 0,
  };
  let total = files.reduce((sum, file) => sum + file.size, 0);
  let transferred = 0;
  const onBytes = (bytes: number) => {
    transferred += bytes;
    options.progress?.(transferred, total);
  };
  const action = mode === "move" ? "move" : "copy";
  // copies whose bytes could not be checked against the source's ETag, said once per transfer (a move checks
  // each copy afterwards, by sha256 of both sides when the ETag cannot tell)
  const unverifiedFiles: { where: string; why: string }[] = [];
  const unverified = (where: string, why: string) => void unverifiedFiles.push({ where, why });
  const sayUnverified = () => {
    if (unverifiedFiles.length === 0) return;
    const [{ where, why }] = unverifiedFiles;
    const others = unverifiedFiles.length - 1;
    const more = others ? ` (and ${plural(others, "other file")})` : "";
    log(`not verified: ${why}: ${where}${more} was checked by its size only`);
  };

  await runPool(files, concurrency, signal, async (file, poolSignal) => {
    const { path } = file;
    try {
      if (mode === "move" && !dryRun && await destination.moveFrom?.(source, path, path)) {
        // one local file system: a rename, which cannot leave two copies or none (a cross-device move is a
        // verified copy before the source goes)
        summary.files++;
        summary.bytes += file.size;
        onBytes(file.size);
        return;
      }
      if (await alreadyThere(source, destination, file, existing.get(path), mode === "move", poolSignal)) {
        total -= file.size;
        if (mode !== "move") {
          summary.identical++;
          summary.identicalBytes += file.size;
          return;
        }
        // verified identical by lib/storage/verify.ts: only the source copy has to go
        if (dryRun) log(`move ${path} (${formatBytes(file.size)}; already at the destination)`);
        else await source.remove(path);
        summary.files++;
        summary.bytes += file.size;
        return;
      }
      if (dryRun) {
        log(`${action} ${path} (${formatBytes(file.size)})`);
      } else {
        const options = { signal: poolSignal, onBytes, ...(mode === "move" ? {} : { unverified }) };
        const done = mode === "move"
          ? await moveFile(source, destination, file, options)
          : await copyFile(source, destination, file, options);
        if (done.serverSide) summary.serverSide++;
      }
      summary.files++;
      summary.bytes += file.size;
    } catch (error) {
      if (poolSignal.aborted) throw poolSignal.reason ?? error;
      throw new TransferError(path, action, error);
    }
  }).finally(sayUnverified);

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
  // both listings are at hand: no look-up of either side's size again (a HEAD per file on S3)
  const problem = await copyProblem(source, file.path, destination, file.path, {
    sourceInfo: file,
    targetInfo: there,
    signal,
  });
  return problem === undefined;
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

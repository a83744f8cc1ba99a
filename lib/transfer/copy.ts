/**
 * The one copy and move primitive every executor shares (rclone's `operations.Copy` / `Move`): the fastest
 * way the pair of locations offers — a rename on one file system, an S3 server-side copy, ranged downloads
 * on several threads — else a stream from one to the other. A move deletes its source only once the copy is
 * verified.
 *
 * @module
 */
import type { CopyResult, Storage } from "../storage/mod.ts";
import { verifyCopy } from "../storage/verify.ts";
import { checkpoint } from "../async.ts";
import { plural } from "../format.ts";

/** The file to copy: its path in the source, and what the source's listing said about it. */
export interface SourceFile {
  path: string;
  /** The listed size; a source of another size fails the copy. */
  size?: number;
  /** The listed S3 ETag: the copy is then made of that version only. */
  etag?: string;
}

/** Options for {@link copyFile} and {@link moveFile}. */
export interface CopyFileOptions {
  /** The path at the destination. Default: the source path. */
  to?: string;
  signal?: AbortSignal;
  /** Told the bytes as they are copied (at once, for a copy that did not pass bytes through lakerun). */
  onBytes?: (bytes: number) => void;
  /** Told when the bytes copied could not be checked against the source's ETag (only their size). */
  unverified?: (where: string, why: string) => void;
}

/**
 * Copies one file: by {@link Storage.copyFrom} when the pair of locations has a faster way (S3 server-side,
 * ranged S3 downloads), else streamed; the destination's write is atomic either way.
 *
 * @example Copying between two local folders
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { copyFile } from "./copy.ts";
 *
 * const root = await Deno.makeTempDir();
 * const source = new LocalStorage(`${root}/a`);
 * const destination = new LocalStorage(`${root}/b`);
 * await source.write("x/1.csv", new Blob(["a,b\n"]).stream());
 * const result = await copyFile(source, destination, { path: "x/1.csv", size: 4 });
 * assert.deepEqual(result, { size: 4, serverSide: false });
 * assert.equal(await Deno.readTextFile(`${root}/b/x/1.csv`), "a,b\n");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function copyFile(
  source: Storage,
  destination: Storage,
  file: SourceFile,
  options: CopyFileOptions = {},
): Promise<CopyResult> {
  const to = options.to ?? file.path;
  const { signal, onBytes, unverified } = options;
  const copied = await destination.copyFrom?.(source, file.path, to, {
    size: file.size,
    etag: file.etag,
    signal,
    unverified,
  });
  if (copied) {
    onBytes?.(copied.size);
    return copied;
  }
  const data = await source.read(file.path, { signal, unverified });
  const counted = onBytes ? data.pipeThrough(counter(onBytes)) : data;
  try {
    const written = await destination.write(to, counted, { size: file.size, signal });
    return { size: written.size, ...(written.etag ? { etag: written.etag } : {}), serverSide: false };
  } catch (error) {
    await counted.cancel(error).catch(() => {}); // releases the source when the write did not consume it
    throw error;
  }
}

/**
 * Copies `files` of `source` to the same paths in `destination`. Where the destination's write batch can copy
 * from the source (two local folders), every copy is staged in the batch by the operating system's file copy
 * and the batch lands once all are done: a new folder moves into place in one rename, instead of a temporary
 * name and a rename per file; a failure lands nothing. Otherwise file by file with {@link copyFile}. Returns
 * the bytes copied.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { copyFiles } from "./copy.ts";
 *
 * const root = await Deno.makeTempDir();
 * const landing = new LocalStorage(`${root}/landing`);
 * await landing.write("2024/a.csv", new Blob(["a,b\n"]).stream());
 * await landing.write("2024/b.csv", new Blob(["c,d\n"]).stream());
 * const files = await Array.fromAsync(landing.list());
 * assert.equal(await copyFiles(landing, new LocalStorage(`${root}/staging`), files), 8);
 * assert.equal(await Deno.readTextFile(`${root}/staging/2024/b.csv`), "c,d\n");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function copyFiles(
  source: Storage,
  destination: Storage,
  files: SourceFile[],
  options: Omit<CopyFileOptions, "to"> = {},
): Promise<number> {
  let bytes = 0;
  if (files.length === 0) return bytes;
  const batch = await destination.batch();
  try {
    for (const file of files) {
      await checkpoint(options.signal); // the copies are synchronous: let an abort through
      const copied = await batch.copyFrom?.(source, file.path, file.path, {
        size: file.size,
        signal: options.signal,
      });
      if (!copied) {
        if (bytes > 0) throw new Error(`internal error: ${destination.url}'s batch copied only some files`);
        await batch.abort();
        for (const each of files) bytes += (await copyFile(source, destination, each, options)).size;
        return bytes;
      }
      options.onBytes?.(copied.size);
      bytes += copied.size;
    }
    await batch.commit();
    return bytes;
  } catch (error) {
    await batch.abort();
    throw error;
  }
}

/** How {@link moveFile} moved a file. */
export interface MoveResult extends CopyResult {
  /** True when it was a rename (no copy, nothing to verify). */
  renamed: boolean;
}

/**
 * Moves one file: a rename when the destination can take it from this source that way
 * ({@link Storage.moveFrom}), otherwise {@link copyFile}, then a check that the copy has the source's bytes
 * (`verifyCopy`: size, then ETag or sha256), and only then the source's removal. A failure at any point
 * leaves the source where it was.
 *
 * @example Moving between two local folders (a rename)
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { moveFile } from "./copy.ts";
 *
 * const root = await Deno.makeTempDir();
 * const landing = new LocalStorage(`${root}/landing`);
 * const archive = new LocalStorage(`${root}/archive`);
 * await landing.write("2024/q1.csv", new Blob(["a,b\n"]).stream());
 * const result = await moveFile(landing, archive, { path: "2024/q1.csv" }, { to: "2024/q1.old.csv" });
 * assert.equal(result.renamed, true);
 * assert.equal(await landing.stat("2024/q1.csv"), undefined);
 * assert.equal(await Deno.readTextFile(`${root}/archive/2024/q1.old.csv`), "a,b\n");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function moveFile(
  source: Storage,
  destination: Storage,
  file: SourceFile,
  options: CopyFileOptions = {},
): Promise<MoveResult> {
  const to = options.to ?? file.path;
  if (await destination.moveFrom?.(source, file.path, to)) {
    const size = file.size ?? (await destination.stat(to))?.size ?? 0;
    options.onBytes?.(size);
    return { size, serverSide: false, renamed: true };
  }
  const copied = await copyFile(source, destination, file, options);
  await verifyCopy(source, file.path, destination, to, { signal: options.signal });
  await source.remove(file.path);
  return { ...copied, renamed: false };
}

/**
 * Removes what a killed run left in `storage`: files under temporary names (its whole tree), and the
 * incomplete multipart uploads that killed runs of this step recorded (see `Storage.removeTemporaries`: never
 * an upload another program or a running step started), and says so through `log`. Temporary names are safe
 * to remove because a routine runs under its run lock and a temporary name is never the only copy of
 * anything. Returns how many entries and uploads were removed.
 */
export async function removeLeftovers(storage: Storage, log: (message: string) => void): Promise<number> {
  const { temporaries, uploads } = await storage.removeTemporaries({ recursive: true });
  if (temporaries) {
    log(`removed ${plural(temporaries, "temporary file")} left by an interrupted run in ${storage.url}`);
  }
  if (uploads) {
    log(
      `aborted ${
        plural(uploads, "incomplete multipart upload")
      } left by an interrupted run in ${storage.url}`,
    );
  }
  return temporaries + uploads;
}

function counter(onBytes: (bytes: number) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      onBytes(chunk.byteLength);
      controller.enqueue(chunk);
    },
  });
}

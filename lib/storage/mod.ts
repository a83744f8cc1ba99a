/**
 * Storage locations: a local folder or an `s3://bucket/prefix`, behind one interface that every executor uses.
 *
 * Paths handed to a {@link Storage} are relative to the location, `/`-separated and already checked by
 * {@link checkRelativePath} (no `..` or `.`, no leading `/`, no empty segments).
 *
 * @module
 */

/** One file (object) found under a location. */
export interface StoredFile {
  /** Path relative to the location, `/`-separated. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** `"symlink"` only for local symbolic links, which lakerun never follows. */
  kind: "file" | "symlink";
  /** The S3 ETag (quotes removed), where the backend has one. */
  etag?: string;
  /** Last modification time, where known. */
  mtime?: Date;
}

/** What a completed write stored. */
export interface WriteResult {
  size: number;
  /** Lower-case hex sha256 of the bytes written, when {@link WriteOptions.sha256} asked for it. */
  sha256?: string;
  etag?: string;
}

/** Options for {@link Storage.write}. */
export interface WriteOptions {
  /** Expected size; a stream of another length fails the write and nothing is stored. */
  size?: number;
  /** Compute the sha256 of the bytes while writing them (costs CPU; off by default). */
  sha256?: boolean;
  signal?: AbortSignal;
}

/** A file being written by {@link WriteBatch.open}. */
export interface FileWriter {
  /**
   * Writes `bytes` (or a copy of them), or starts writing them on another thread and returns a promise: the
   * caller then leaves `bytes` alone and awaits it before the next call. When nothing is returned, the caller
   * may reuse its buffer at once.
   */
  write(bytes: Uint8Array): void | Promise<void>;
  /** Finishes the file, which lands with the batch; fails when it is not the expected size. */
  close(): Promise<WriteResult>;
  /** Removes what was written; safe to call more than once, and does nothing after a successful close. */
  abort(): void;
}

/**
 * Copies `sourcePath` of `source` to `path` without streaming it through the caller, where the pair of
 * locations has a way; resolves to `undefined`, having done nothing, where it has none (see
 * {@link WriteBatch.copyFrom} and {@link Storage.copyFrom}).
 */
export type CopyFrom = (
  source: Storage,
  sourcePath: string,
  path: string,
  options?: CopyOptions,
) => Promise<CopyResult | undefined>;

/**
 * A group of writes that become visible together: nothing appears at its final path before
 * {@link WriteBatch.commit}, and {@link WriteBatch.abort} removes everything staged.
 */
export interface WriteBatch {
  write(path: string, data: ReadableStream<Uint8Array>, options?: WriteOptions): Promise<WriteResult>;
  /**
   * Stages a file whose bytes are all in memory, where the backend can (a local folder). It may resolve before
   * the file is written: the bytes must then not change until {@link WriteBatch.flush}, `commit` or `abort`,
   * and a failure is reported by a later call as an error whose `entry` is the file's path.
   */
  writeBytes?(path: string, bytes: Uint8Array): Promise<WriteResult>;
  /** Waits until what `writeBytes` staged is written; rejects with the first failure. */
  flush?(): Promise<void>;
  /**
   * Stages a file written through the returned {@link FileWriter}, where the backend can (a local folder): for
   * data produced into reused buffers (an inflater's output), written as it comes.
   */
  open?(path: string, options?: Pick<WriteOptions, "size" | "sha256">): Promise<FileWriter>;
  /**
   * Stages a copy of `sourcePath` of `source` without reading it, where this pair can (two local folders: the
   * operating system's file copy); resolves to `undefined`, having staged nothing, for any other source. A
   * source of another size than `options.size` fails the copy.
   */
  copyFrom?: CopyFrom;
  /** Stages an empty folder, which lands with the files, where the backend has folders (a local folder). */
  makeFolder?(path: string): Promise<void>;
  /** Moves every staged file to its final path. */
  commit(): Promise<void>;
  /** Removes everything staged; safe to call more than once and after a failed commit. */
  abort(): Promise<void>;
}

/** Options for {@link Storage.copyFrom}. */
export interface CopyOptions {
  /** The source's expected size; a source of another size fails the copy. */
  size?: number;
  /**
   * The source's ETag as listed: the copy is then made of that version of the source only, and a copy whose
   * ETag equals it needs no further request to be verified.
   */
  etag?: string;
  signal?: AbortSignal;
  /** Told when the bytes copied could not be checked (see {@link ReadOptions.unverified}). */
  unverified?: (where: string, why: string) => void;
}

/** Options for {@link Storage.read}. */
export interface ReadOptions {
  signal?: AbortSignal;
  /**
   * Told when the bytes read could not be checked against what the store says of them: an S3 multipart
   * ETag whose part size is neither recorded nor one that tools use and fits (only the size was checked).
   */
  unverified?: (where: string, why: string) => void;
}

/** What {@link Storage.copyFrom} made. */
export interface CopyResult {
  size: number;
  etag?: string;
  /** True when the bytes did not pass through lakerun (an S3 server-side copy). */
  serverSide: boolean;
}

/**
 * A location that can download a large file into a local file faster than one stream: S3 fetches byte
 * ranges on several threads, checking the multipart ETag from the parts' MD5s.
 */
export interface RangedSource {
  /**
   * Creates the local `file` with the bytes of `path` and checks them; resolves to `undefined`, having
   * created nothing, when the file is better streamed (small, or single-part with a plain MD5 ETag). On
   * failure the caller removes `file`.
   */
  downloadInto(
    path: string,
    file: string,
    options?: CopyOptions,
  ): Promise<{ size: number; etag?: string } | undefined>;
}

/** True when `storage` can {@link RangedSource.downloadInto} a local file. */
export function isRangedSource(storage: Storage): storage is Storage & RangedSource {
  return typeof (storage as Partial<RangedSource>).downloadInto === "function";
}

/** A folder-like place holding files: a local directory or an S3 prefix. */
export interface Storage {
  /** `"local"` or `"s3"`. */
  readonly kind: "local" | "s3";
  /** The location as shown to users: an absolute local path or `s3://bucket/prefix`. */
  readonly url: string;
  /** Every file under the location, recursively, sorted by path; lakerun's own temporary names are skipped. */
  list(options?: { signal?: AbortSignal }): AsyncIterable<StoredFile>;
  /** The file at `path`, or `undefined` when there is none. */
  stat(path: string): Promise<StoredFile | undefined>;
  /** The bytes of the file at `path`. */
  read(path: string, options?: ReadOptions): Promise<ReadableStream<Uint8Array>>;
  /** Writes atomically: the file appears at `path` only once complete (temporary name, then rename). */
  write(path: string, data: ReadableStream<Uint8Array>, options?: WriteOptions): Promise<WriteResult>;
  /** Starts a {@link WriteBatch}. */
  batch(): Promise<WriteBatch>;
  /**
   * Copies `sourcePath` of `source` to `path` here by a faster way than one stream, when this pair of
   * locations has one: server-side when both are on one S3 endpoint (CopyObject / UploadPartCopy), by ranges
   * on several threads from S3 to a local folder (see {@link RangedSource}). Resolves to `undefined` when
   * there is none; the caller then streams. Optional: backends with no such way leave it out.
   */
  copyFrom?: CopyFrom;
  /**
   * Moves `sourcePath` of `source` to `path` here without copying, when this pair of locations can (two local
   * folders: a rename, or a verified copy across file systems). Resolves to `false`, having changed nothing,
   * when it cannot; the caller then copies, verifies and removes (see `lib/transfer/copy.ts`). Optional.
   */
  moveFrom?(source: Storage, sourcePath: string, path: string): Promise<boolean>;
  /**
   * Moves the files `paths` of `source` to the same paths here without copying, where this pair of locations
   * can rename them (two local folders on one file system): a folder this location lacks and whose every
   * entry is in `paths` moves in one rename. A file this location already has at its path stays where it is,
   * as does anything not in `paths`. Resolves to the paths moved (possibly none); the caller moves the others
   * one by one. Optional.
   */
  moveAllFrom?(source: Storage, paths: Iterable<string>): Promise<Set<string>>;
  /** The absolute path of the folder, for a local location (a program can be pointed at it). */
  readonly localFolder?: string;
  /** Removes the file at `path`; no error when it is already gone. */
  remove(path: string): Promise<void>;
  /**
   * The empty folders under the location, sorted, which {@link Storage.list} does not show (`cp -r` copies
   * them). Optional: only backends with folders (a local folder) have it; S3 has none.
   */
  emptyFolders?(options?: { signal?: AbortSignal }): Promise<string[]>;
  /** Creates the folder at `path` and those above it. Optional, as {@link Storage.emptyFolders}. */
  makeFolder?(path: string): Promise<void>;
  /** Whether there is a folder at `path`. Optional, as {@link Storage.emptyFolders}. */
  hasFolder?(path: string): Promise<boolean>;
  /** Removes the folder at `path` if empty, then the folders above it it left empty. Optional. */
  removeFolder?(path: string): Promise<void>;
  /** Lower-case hex sha256 of the stored bytes. */
  sha256(path: string, options?: { signal?: AbortSignal }): Promise<string>;
  /**
   * The size and sha256 of the file at `path` from one look-up and one read, `undefined` when there is no
   * file there. Given the `size` expected, a file of another size is not read (no `sha256`). Optional: where a
   * look-up per file is cheap (a local folder), checking a copy this way costs one read per side and no
   * listing.
   */
  sha256AndSize?(
    path: string,
    options?: { size?: number; signal?: AbortSignal },
  ): Promise<{ size: number; sha256?: string } | undefined>;
  /**
   * Removes lakerun's temporary entries left by a killed run: temporary names (only the folder's top level
   * unless `recursive`) and, on S3, the incomplete multipart uploads that killed runs of this step recorded
   * (never another program's, nor one still in use). Returns how many of each were removed.
   */
  removeTemporaries(options?: { recursive?: boolean }): Promise<RemovedLeftovers>;
}

/** What {@link Storage.removeTemporaries} removed. */
export interface RemovedLeftovers {
  /** Entries under temporary names (a local temporary folder counts once, an S3 object each). */
  temporaries: number;
  /** Incomplete multipart uploads aborted (S3 only). */
  uploads: number;
}

/** Prefix of every temporary name lakerun writes; listings skip names that start with it. */
export const TEMP_PREFIX = ".lakerun-tmp-";

/** True when a path segment is one of lakerun's temporary names. */
export function isTemporaryName(segment: string): boolean {
  return segment.startsWith(TEMP_PREFIX);
}

/**
 * Checks that `path` is a safe relative path for a storage location and returns it (see
 * {@link storagePathProblem}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRelativePath, UnsafePathError } from "./mod.ts";
 *
 * assert.equal(checkRelativePath("2024/sales.csv"), "2024/sales.csv");
 * assert.throws(() => checkRelativePath("../etc/passwd"), UnsafePathError);
 * assert.throws(() => checkRelativePath("../etc/passwd"), {
 *   message: "unsafe path '../etc/passwd': '..' segment",
 * });
 * ```
 */
export function checkRelativePath(path: string): string {
  const problem = storagePathProblem(path);
  if (problem) throw new UnsafePathError(path, problem);
  return path;
}

/**
 * Why `path` cannot name a file inside a storage location, or `undefined` when it can: it would leave the
 * location (`..`, a leading `/`), or is not one name per segment (empty, `.`, NUL). A backslash or a drive
 * letter (`back\slash.csv`, `C:report.csv`) is an ordinary character in a Linux file name and an S3 key, so
 * such paths are accepted, except on Windows, where a local folder would take them as a separator or a drive.
 * Archive entry names get the stricter {@link relativePathProblem}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relativePathProblem, storagePathProblem } from "./mod.ts";
 *
 * assert.equal(storagePathProblem("../x.csv"), "'..' segment");
 * assert.equal(storagePathProblem("C:report.csv"), Deno.build.os === "windows" ? "drive letter" : undefined);
 * assert.equal(relativePathProblem("C:report.csv"), "drive letter"); // refused in archives everywhere
 * ```
 */
export function storagePathProblem(path: string): string | undefined {
  if (Deno.build.os === "windows") return relativePathProblem(path);
  if (path.length === 0) return "empty path";
  if (path.includes("\0")) return "NUL character";
  if (path.startsWith("/")) return "absolute path";
  return segmentProblem(path);
}

/** An empty, `.` or `..` segment (a quick test first: most paths have none). */
const EMPTY_OR_DOT_SEGMENT = /(?:^|\/)\.{0,2}(?:\/|$)/;

function segmentProblem(path: string): string | undefined {
  if (!EMPTY_OR_DOT_SEGMENT.test(path)) return undefined;
  for (const segment of path.split("/")) {
    if (segment === "") return "empty path segment";
    if (segment === "." || segment === "..") return `'${segment}' segment`;
  }
  return undefined;
}

/**
 * Why `path` is not a portable safe relative path, or `undefined` when it is: the rules for names that come
 * from elsewhere (archive entries), which must be safe wherever they are extracted, so a backslash and a drive
 * letter are refused too.
 */
export function relativePathProblem(path: string): string | undefined {
  if (path.length === 0) return "empty path";
  if (path.includes("\0")) return "NUL character";
  if (path.includes("\\")) return "backslash in path";
  if (path.startsWith("/")) return "absolute path";
  if (/^[A-Za-z]:/.test(path)) return "drive letter";
  return segmentProblem(path);
}

/** A path that would leave its location. */
export class UnsafePathError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`unsafe path '${path}': ${reason}`);
    this.name = "UnsafePathError";
  }
}

export { isS3Url } from "../aws/s3/url.ts";

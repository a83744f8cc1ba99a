/**
 * Samples of staged files for column inference (`inferTable` in ./infer.ts): the first bytes of the first
 * data files of a location, read through {@link Storage.read} and decompressed where asked. The read stops
 * there: the stream is cancelled, so a large file costs no more than its sample.
 *
 * Which files count as data: one rule for every executor, Hive's ({@link isHiddenPath}: `_`- and
 * `.`-prefixed names, Spark's and Hadoop's work files), applied by {@link listDataFiles}. How many are read
 * and how much of each is each executor's own policy, passed as options.
 *
 * @module
 */
import type { Storage, StoredFile } from "../storage/mod.ts";
import { headerLineFields } from "./csv.ts";

/** A file's first bytes, as text. */
export interface FileSample {
  /** The file's path relative to the location. */
  path: string;
  /** Up to `maxBytes` bytes from the start of the file (after decompression), decoded as UTF-8. */
  text: string;
  /** The sample is the whole file, so its last line is complete even without a line break. */
  whole: boolean;
}

/** Options of {@link sampleFile}. */
export interface SampleFileOptions {
  /** How many bytes to read (after decompression). */
  maxBytes: number;
  /** Decompress the file with this format first (`"gzip"`, `"deflate"`, `"deflate-raw"`). */
  compression?: CompressionFormat;
  /** The file's listed size: a sample of all of it is whole even when the stream was not read to its end. */
  size?: number;
  signal?: AbortSignal;
}

/** Options of {@link sampleFiles}. */
export interface SampleFilesOptions {
  /** How many files to sample at the most. */
  maxFiles: number;
  /** How many bytes to read from each (after decompression). */
  maxBytes: number;
  signal?: AbortSignal;
  /**
   * The files to choose from, in order. Default: `storage.list()` (every file, sorted by path). An async
   * listing is read only as far as the samples need.
   */
  files?: Iterable<StoredFile> | AsyncIterable<StoredFile>;
  /** True for a file that is not data and is not sampled. Empty files and symbolic links never are. */
  skip?(path: string): boolean;
  /**
   * The compression to undo before sampling a chosen file, or `undefined` for none. May throw to refuse a
   * file that cannot be sampled (a compression inference does not read); the error is passed on.
   */
  decompress?(path: string): CompressionFormat | undefined;
}

/**
 * Whether a path is hidden from Athena (Hive's rule): some segment starts with `_` or `.` (`_SUCCESS`,
 * `_temporary/…`, `.part.crc`, lakerun's own `.lakerun-tmp-…` names).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isHiddenPath } from "./sample.ts";
 *
 * assert.equal(isHiddenPath("_SUCCESS"), true);
 * assert.equal(isHiddenPath("day=1/.part-0.csv.crc"), true);
 * assert.equal(isHiddenPath("_temporary/0/part-0.csv"), true);
 * assert.equal(isHiddenPath("day=1/part_0.csv"), false);
 * ```
 */
export function isHiddenPath(path: string): boolean {
  return path.split("/").some((segment) => segment.startsWith("_") || segment.startsWith("."));
}

/** A listing split into the files that hold data and those passed over, by why. */
export interface DataFileListing {
  /** The data files, in the listing's order (sorted by path). */
  files: StoredFile[];
  /** Paths {@link isHiddenPath} hides (`_SUCCESS`, `_temporary/…`, `.part-0.csv.crc`), empty or not. */
  hidden: StoredFile[];
  /** Other files of 0 bytes. */
  empty: StoredFile[];
  /** Local symbolic links, never followed. */
  symlinks: StoredFile[];
}

/**
 * Every file of `storage`, split by {@link isHiddenPath} and emptiness: what a load reads and what it skips.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { listDataFiles, skippedLines } from "./sample.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/_temporary/0`, { recursive: true });
 * for (const [name, text] of [["part-0.csv", "id\n1\n"], [".part-0.csv.crc", "crc"], ["_SUCCESS", ""], ["_temporary/0/part-1.csv", "id\n1\n"], ["b.csv", ""]]) {
 *   await Deno.writeTextFile(`${root}/${name}`, text);
 * }
 * const listing = await listDataFiles(new LocalStorage(root));
 * assert.deepEqual(listing.files.map((f) => f.path), ["part-0.csv"]);
 * assert.deepEqual(skippedLines(listing), [
 *   "skipping 3 hidden or work files (a name starting with _ or .): .part-0.csv.crc, _SUCCESS, _temporary/0/part-1.csv",
 *   "skipping 1 empty file: b.csv",
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function listDataFiles(
  storage: Storage,
  options: { signal?: AbortSignal } = {},
): Promise<DataFileListing> {
  const listing: DataFileListing = { files: [], hidden: [], empty: [], symlinks: [] };
  for await (const file of storage.list({ signal: options.signal })) {
    if (isHiddenPath(file.path)) listing.hidden.push(file);
    else if (file.kind === "symlink") listing.symlinks.push(file);
    else if (file.size === 0) listing.empty.push(file);
    else listing.files.push(file);
  }
  return listing;
}

/** What a {@link DataFileListing} passed over: one line per kind, counted, naming the first few. */
export function skippedLines(listing: DataFileListing): string[] {
  const line = (files: StoredFile[], what: (n: number) => string) =>
    files.length === 0 ? [] : [`skipping ${what(files.length)}: ${examplePaths(files)}`];
  return [
    ...line(
      listing.hidden,
      (n) => `${n} hidden or work file${n === 1 ? "" : "s"} (a name starting with _ or .)`,
    ),
    ...line(listing.empty, (n) => `${n} empty file${n === 1 ? "" : "s"}`),
    ...line(listing.symlinks, (n) => `${n} symbolic link${n === 1 ? "" : "s"} (never followed)`),
  ];
}

/** The first few paths of `files`, then how many more. */
export function examplePaths(files: readonly Pick<StoredFile, "path">[], shown = 3): string {
  const paths = files.slice(0, shown).map((file) => file.path).join(", ");
  return files.length > shown ? `${paths} and ${files.length - shown} more` : paths;
}

/**
 * The first `maxBytes` bytes of the file at `path` (after decompression, when `compression` is given) as
 * text, and whether that is the whole file. Reads no further: the stream is cancelled once the sample is
 * read. A cut inside a UTF-8 character decodes to U+FFFD.
 *
 * @example A sample cut at `maxBytes`, and a whole small file
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { sampleFile } from "./sample.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/sales.csv`, "id,amount\n1,2.5\n2,3\n");
 * const storage = new LocalStorage(root);
 * assert.deepEqual(await sampleFile(storage, "sales.csv", { maxBytes: 13 }), {
 *   path: "sales.csv",
 *   text: "id,amount\n1,2",
 *   whole: false,
 * });
 * assert.equal((await sampleFile(storage, "sales.csv", { maxBytes: 1024 })).whole, true);
 * // read to exactly its listed size: whole, without reading on to the end of the stream
 * assert.equal((await sampleFile(storage, "sales.csv", { maxBytes: 20, size: 20 })).whole, true);
 * await Deno.remove(root, { recursive: true });
 * ```
 * @throws Error when the file cannot be read, or (naming the file) is not in the `compression` format.
 */
export async function sampleFile(
  storage: Storage,
  path: string,
  options: SampleFileOptions,
): Promise<FileSample> {
  const { maxBytes, compression, size, signal } = options;
  let stream = await storage.read(path, { signal });
  if (compression) {
    stream = stream.pipeThrough(
      new DecompressionStream(compression) as TransformStream<Uint8Array, Uint8Array>,
    );
  }
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let whole = false;
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read();
      if (done) {
        whole = true;
        break;
      }
      chunks.push(value);
      bytes += value.byteLength;
    }
  } catch (error) {
    if (!compression || signal?.aborted) throw error;
    throw new Error(`${path} is not ${compression} data: ${(error as Error).message}`, { cause: error });
  } finally {
    if (!whole) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  const joined = new Uint8Array(await new Blob(chunks as Uint8Array<ArrayBuffer>[]).arrayBuffer());
  return {
    path,
    text: new TextDecoder().decode(joined.subarray(0, maxBytes)),
    whole: bytes <= maxBytes && (whole || (!compression && bytes === size)),
  };
}

/**
 * Samples of the first `maxFiles` data files of `storage` (or of `files`, in their order): each file's first
 * `maxBytes` bytes, read as {@link sampleFile} reads them. Empty files, symbolic links and the files `skip`
 * names are passed over. Resolves to fewer samples when there are fewer data files (none when there are none).
 *
 * @example Skipping what Athena skips, sampling the first two data files
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { isHiddenPath, sampleFiles } from "./sample.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/_SUCCESS`, "done");
 * await Deno.writeTextFile(`${root}/a.csv`, "");
 * for (const name of ["b.csv", "c.csv", "d.csv"]) await Deno.writeTextFile(`${root}/${name}`, "id\n1\n");
 * const samples = await sampleFiles(new LocalStorage(root), { maxFiles: 2, maxBytes: 1024, skip: isHiddenPath });
 * assert.deepEqual(samples.map((s) => s.path), ["b.csv", "c.csv"]);
 * assert.deepEqual(samples[0], { path: "b.csv", text: "id\n1\n", whole: true });
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @example Gzipped files decompressed, other compressions refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { gzipSync } from "node:zlib";
 * import { LocalStorage } from "../storage/local.ts";
 * import { sampleFiles } from "./sample.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeFile(`${root}/a.csv.gz`, gzipSync("id,name\n1,Ada\n"));
 * const storage = new LocalStorage(root);
 * const decompress = (path: string) => {
 *   if (path.endsWith(".bz2")) throw new Error(`cannot sample the compressed file ${path}`);
 *   return path.endsWith(".gz") ? "gzip" as const : undefined;
 * };
 * const [sample] = await sampleFiles(storage, { maxFiles: 3, maxBytes: 1024, decompress });
 * assert.deepEqual(sample, { path: "a.csv.gz", text: "id,name\n1,Ada\n", whole: true });
 *
 * await Deno.writeFile(`${root}/b.csv.bz2`, new Uint8Array([1, 2, 3]));
 * await assert.rejects(sampleFiles(storage, { maxFiles: 3, maxBytes: 1024, decompress }), {
 *   message: "cannot sample the compressed file b.csv.bz2",
 * });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function sampleFiles(storage: Storage, options: SampleFilesOptions): Promise<FileSample[]> {
  const { maxFiles, maxBytes, signal } = options;
  const samples: FileSample[] = [];
  if (maxFiles <= 0) return samples;
  for await (const file of options.files ?? storage.list({ signal })) {
    if (file.kind !== "file" || file.size === 0 || options.skip?.(file.path)) continue;
    const compression = options.decompress?.(file.path);
    samples.push(await sampleFile(storage, file.path, { maxBytes, compression, size: file.size, signal }));
    if (samples.length >= maxFiles) break;
  }
  return samples;
}

/** Options of {@link headerFields}. */
export interface HeaderFieldsOptions {
  /** The field delimiter. Default `,`. */
  delimiter?: string;
  /** Decompress the file with this format first. */
  compression?: CompressionFormat;
  /** The file as messages name it. Default its path. */
  name?: string;
  signal?: AbortSignal;
}

/**
 * The fields of the first line of a delimited file (its header), quotes undone: its first 64 KiB are read,
 * then its first MiB when the line is longer. A header COPY would not end where it ends here (a quote inside
 * a field, a blank first line: {@link headerLineFields}) is refused, naming the file, the line and the field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../storage/local.ts";
 * import { headerFields } from "./sample.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.csv`, '"price",qty,"a, b"\n1,2,3\n');
 * const storage = new LocalStorage(root);
 * assert.deepEqual(await headerFields(storage, { path: "a.csv", size: 24 }), ["price", "qty", "a, b"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 * @throws Error naming the file when it has no header line, or none that ends in its first MiB, or when its
 * header is refused.
 */
export async function headerFields(
  storage: Storage,
  file: Pick<StoredFile, "path" | "size">,
  options: HeaderFieldsOptions = {},
): Promise<string[]> {
  const { delimiter = ",", compression, name = file.path, signal } = options;
  for (const maxBytes of [64 * 1024, 1024 * 1024]) {
    const sample = await sampleFile(storage, file.path, { maxBytes, compression, size: file.size, signal });
    let fields: string[] | undefined;
    try {
      fields = headerLineFields(sample.text, { delimiter, wholeFile: sample.whole });
    } catch (error) {
      throw new Error(`${name} ${(error as Error).message}`, { cause: error });
    }
    if (fields !== undefined) return fields;
    if (sample.whole) throw new Error(`${name} has no header line`);
  }
  throw new Error(`${name}: no complete header line in its first MiB`);
}

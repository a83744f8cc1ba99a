/**
 * The types of the zip extraction API: the sink that receives the entries ({@link ZipEntrySink}), the
 * limits ({@link ZipLimits}) and what an extraction reports ({@link ZipSummary}).
 *
 * @module
 */

/**
 * Receives the file entries of an archive, one at a time.
 *
 * @example A sink that stages the entries in a local folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { LocalStorage } from "../storage/local.ts";
 * import { extractZipStream } from "./stream.ts";
 * import type { ZipEntrySink } from "./types.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"));
 * await writer.add("2024/a.csv", new TextReader("a,b\n"));
 * const zip = await writer.close();
 *
 * const root = await Deno.makeTempDir();
 * const batch = await new LocalStorage(root).batch();
 * const sink: ZipEntrySink = {
 *   async writeEntry(path, data) {
 *     await batch.write(path, data); // staged: nothing visible yet
 *   },
 * };
 * await extractZipStream(zip.stream(), sink);
 * await batch.commit(); // only after the extraction succeeded
 * assert.equal(await Deno.readTextFile(`${root}/2024/a.csv`), "a,b\n");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export interface ZipEntrySink {
  /** Called once per file entry in archive order with a validated relative path; must consume `data` fully (or throw). */
  writeEntry(
    path: string,
    data: ReadableStream<Uint8Array>,
    info: { uncompressedSize?: number },
  ): Promise<void>;
  /**
   * Optional: called instead of {@link ZipEntrySink.writeEntry} for a small entry (at most 1 MiB) whose data
   * is already inflated and verified (size, CRC-32), so that an archive of many small files costs no stream
   * per file. Without it such entries go to `writeEntry` as a one-chunk stream.
   */
  writeEntryBytes?(path: string, data: Uint8Array): Promise<void>;
  /**
   * Optional: called instead of {@link ZipEntrySink.writeEntry} for a larger entry, to write its data through
   * an {@link EntryWriter}. The extraction then inflates into two buffers used in turn, one being written while
   * the other fills: no garbage per chunk, and no stream between zlib and the file. `close` is called once the data is verified (sizes, CRC-32), `abort` on any failure.
   */
  openEntry?(path: string, info: { uncompressedSize?: number }): Promise<EntryWriter>;
  /**
   * Optional: called for each directory entry (`dir/`), in archive order, with its validated path without the
   * trailing `/`, so that empty folders are made too (as unzip makes them). Without it they are only validated.
   */
  makeFolder?(path: string): Promise<void>;
  /**
   * Optional: called once after the last entry (streamed: after the central directory too), for a sink whose
   * writes may end after the call that asked for them (`writeEntryBytes` resolving before its file is
   * written). A sink error that has an `entry` property (a string) is reported for that entry, whichever call
   * reported it.
   */
  finish?(): Promise<void>;
}

/** Where {@link ZipEntrySink.openEntry} has an entry's data written. */
export interface EntryWriter {
  /**
   * Writes `bytes`, or starts writing them and returns a promise: the caller then leaves the buffer alone and
   * awaits that promise before its next call (inflating the next chunk into another buffer meanwhile). When
   * nothing is returned, the buffer may be reused at once.
   */
  write(bytes: Uint8Array): void | Promise<unknown>;
  /** All of the entry's data was written and verified (what it resolves to is not used). */
  close(): Promise<unknown>;
  /** The entry failed: what was written must not remain. */
  abort(): void;
}

/**
 * Limits that make an extraction fail instead of filling the disk, and what else it accepts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { extractZipStream } from "./stream.ts";
 * import type { ZipLimits } from "./types.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"));
 * await writer.add("a.csv", new TextReader("a,b\n".repeat(1000))); // 4000 bytes
 * const zip = await writer.close();
 *
 * const limits: ZipLimits = { maxBytes: 1000, archiveSize: zip.size };
 * const sink = {
 *   writeEntry: (_path: string, data: ReadableStream<Uint8Array>) => data.pipeTo(new WritableStream()),
 * };
 * await assert.rejects(extractZipStream(zip.stream(), sink, limits), {
 *   name: "ZipError",
 *   message: "zip entry 'a.csv': inflated data exceeds maxBytes (1000 bytes)",
 * });
 * ```
 */
export interface ZipLimits {
  /** Fail once total inflated bytes exceed this. Default: Infinity */
  maxBytes?: number;
  /**
   * Fail once total inflated bytes exceed maxRatio × archive size, and {@link ZipLimits.ratioFloor}. Default 200.
   *
   * The archive size is the larger of `archiveSize` and the archive bytes received so far (the file size for
   * {@link extractZipFile}). Real data can compress far better than 200× (a CSV of mostly empty columns), so
   * the ratio only applies past the floor; a bomb is stopped by `maxBytes` (callers tie it to the free disk
   * space) below it, and by the ratio above it.
   */
  maxRatio?: number;
  /** Inflated bytes up to which `maxRatio` is not applied. Default 1 GiB. */
  ratioFloor?: number;
  /** Known total archive size (e.g. Content-Length), used for the ratio. */
  archiveSize?: number;
  /** Aborts the extraction, which then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Extract entries inside `.git`, `.hg` or `.svn` folders. Default false: such an entry fails the
   * extraction, since version-control metadata can make git (hg, svn) run commands in the folder it lands in.
   */
  allowVcsMetadata?: boolean;
}

/**
 * What an extraction produced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { extractZipFile } from "./file.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"));
 * await writer.add("a.csv", new TextReader("a,b\n"));
 * await writer.add("2024/", undefined, { directory: true });
 * await writer.add("2024/b.csv", new TextReader("1,2\n"));
 * const zip = await writer.close();
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/data.zip`, zip.stream());
 *
 * const sink = {
 *   writeEntry: (_path: string, data: ReadableStream<Uint8Array>) => data.pipeTo(new WritableStream()),
 * };
 * const { entries, bytes, archiveBytes } = await extractZipFile(`${dir}/data.zip`, sink);
 * assert.deepEqual([entries, bytes, archiveBytes], [2, 8, zip.size]); // the folder entry is not counted
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface ZipSummary {
  /** File entries handed to the sink (directory entries are not counted). */
  entries: number;
  /** Total inflated bytes handed to the sink. */
  bytes: number;
  /** Size of the archive. */
  archiveBytes: number;
  /**
   * What was accepted but is unusual, where unzip warns too (e.g. a self-extracting stub whose entry offsets
   * had to be corrected); absent when there is nothing to say.
   */
  warnings?: string[];
}

/**
 * The types of the zip extraction API: the sink that receives the entries ({@link ZipEntrySink}), the
 * limits ({@link ZipLimits}) and what an extraction reports ({@link ZipSummary}).
 *
 * @module
 */

/**
 * Receives the file entries of an archive, one at a time.
 *
 * @example
 * ```ts ignore
 * const batch = await storage.batch();
 * const sink: ZipEntrySink = {
 *   async writeEntry(path, data) {
 *     await batch.write(path, data); // staged; batch.commit() only after the extraction succeeded
 *   },
 * };
 * ```
 */
export interface ZipEntrySink {
  /** Called once per file entry in archive order with a validated relative path; must consume `data` fully (or throw). */
  writeEntry(
    path: string,
    data: ReadableStream<Uint8Array>,
    info: { uncompressedSize?: number },
  ): Promise<void>;
}

/**
 * Limits that make an extraction fail instead of filling the disk.
 *
 * @example
 * ```ts ignore
 * const limits: ZipLimits = { maxBytes: 10 * 2 ** 30, maxRatio: 100, archiveSize: contentLength };
 * ```
 */
export interface ZipLimits {
  /** Fail once total inflated bytes exceed this. Default: Infinity */
  maxBytes?: number;
  /**
   * Fail once total inflated bytes exceed maxRatio × archive size. Default 200.
   *
   * The archive size is the largest of `archiveSize`, the archive bytes received so far (the file size for
   * {@link extractZipFile}) and 64 KiB. The 64 KiB floor keeps tiny archives of very compressible small files
   * from being refused for ratios that are normal at that size, while a bomb streamed without a known size is
   * still stopped early: with the defaults, after 12.5 MiB of output if it has sent less than 64 KiB.
   */
  maxRatio?: number;
  /** Known total archive size (e.g. Content-Length), used for the ratio. */
  archiveSize?: number;
  /** Aborts the extraction, which then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * What an extraction produced.
 *
 * @example
 * ```ts ignore
 * const { entries, bytes, archiveBytes } = await extractZipFile("data.zip", sink);
 * console.log(`${entries} files, ${bytes} bytes from ${archiveBytes} archive bytes`);
 * ```
 */
export interface ZipSummary {
  /** File entries handed to the sink (directory entries are not counted). */
  entries: number;
  /** Total inflated bytes handed to the sink. */
  bytes: number;
  /** Size of the archive. */
  archiveBytes: number;
}

/**
 * The errors a zip extraction throws ({@link ZipError}, {@link ZipNeedsRandomAccess}) and the helpers that
 * word their messages: entry names shown safely, CRC-32 values in hex, a short look at what a non-zip starts
 * with.
 *
 * @module
 */

/**
 * An archive that is malformed, hostile, over a limit or not a zip at all.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { ZipError } from "./errors.ts";
 * import { extractZipStream } from "./stream.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"));
 * await writer.add("../evil.txt", new TextReader("x"));
 * const zip = await writer.close();
 *
 * const sink = {
 *   writeEntry: (_path: string, data: ReadableStream<Uint8Array>) => data.pipeTo(new WritableStream()),
 * };
 * const error = await extractZipStream(zip.stream(), sink).catch((e) => e);
 * assert.ok(error instanceof ZipError);
 * assert.equal(error.message, "zip entry '../evil.txt': '..' segment");
 * assert.equal(error.entry, "../evil.txt");
 * ```
 */
export class ZipError extends Error {
  /** The entry the problem is about, when there is one. */
  readonly entry?: string;
  /** The limit the archive went over, when that is the problem (a caller can name its own setting). */
  readonly limit?: ZipLimit;

  /**
   * Creates an error; `options.entry` names the archive entry it concerns, `options.limit` the limit it broke.
   */
  constructor(message: string, options?: ZipErrorOptions) {
    super(message, options);
    this.name = "ZipError";
    this.entry = options?.entry;
    this.limit = options?.limit;
  }
}

/** Options of {@link ZipError}. */
export type ZipErrorOptions = ErrorOptions & { entry?: string; limit?: ZipLimit };

/** The limits an extraction can go over: `maxBytes`, `maxRatio`, or (a caller's own) the disk's free space. */
export type ZipLimit = "maxBytes" | "maxRatio" | "freeSpace";

/**
 * Thrown by {@link extractZipStream} when an entry cannot be delimited while streaming (STORED with a data
 * descriptor: no size before the data). Discard what the sink received, download the archive to a temporary
 * file and use {@link extractZipFile}.
 *
 * @example Falling back to a temporary file
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { ZipNeedsRandomAccess } from "./errors.ts";
 * import { extractZipFile } from "./file.ts";
 * import { extractZipStream } from "./stream.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"), { level: 0, dataDescriptor: true });
 * await writer.add("a.csv", new TextReader("a,b\n"));
 * const zip = await writer.close(); // STORED with a data descriptor
 *
 * const files: Record<string, string> = {};
 * const sink = { writeEntry: async (path: string, data: ReadableStream<Uint8Array>) => {
 *   files[path] = await new Response(data).text();
 * } };
 * const error = await extractZipStream(zip.stream(), sink).catch((e) => e);
 * assert.ok(error instanceof ZipNeedsRandomAccess);
 * // discard what the sink received, download the archive to a temporary file, read it from there
 * const file = await Deno.makeTempFile({ suffix: ".zip" });
 * await Deno.writeFile(file, zip.stream());
 * await extractZipFile(file, sink);
 * assert.deepEqual(files, { "a.csv": "a,b\n" });
 * await Deno.remove(file);
 * ```
 */
export class ZipNeedsRandomAccess extends ZipError {
  /** Creates the error; `options.entry` names the entry that cannot be streamed. */
  constructor(message: string, options?: ErrorOptions & { entry?: string }) {
    super(message, options);
    this.name = "ZipNeedsRandomAccess";
  }
}

/** A name as shown in messages: control and bidi characters escaped, very long names shortened. */
export function shown(name: string): string {
  const escaped = name.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return escaped.length > 200 ? `${escaped.slice(0, 200)}…` : escaped;
}

/** A {@link ZipError} whose message starts with the entry's name (shown safely), when there is an entry. */
export function zipError(entry: string | undefined, message: string, options?: ZipErrorOptions): ZipError {
  return entry === undefined
    ? new ZipError(message, options)
    : new ZipError(`zip entry '${shown(entry)}': ${message}`, { ...options, entry });
}

/** The error for an archive that ends in the middle of `where`. */
export function truncated(entry: string | undefined, where: string): ZipError {
  return zipError(entry, `truncated archive (unexpected end of data in ${where})`);
}

/** The error for a stream that is not a zip, showing a short printable prefix of what it is. */
export function notZip(prefix: Uint8Array, more: boolean): ZipError {
  if (prefix.length === 0) return new ZipError("not a zip archive (empty)");
  let text = "";
  for (const byte of prefix) {
    if (byte === 0x09 || byte === 0x0a || byte === 0x0d || byte === 0x20) {
      if (!text.endsWith(" ")) text += " ";
    } else if (byte > 0x20 && byte < 0x7f) {
      text += byte === 0x22 || byte === 0x5c ? `\\${String.fromCharCode(byte)}` : String.fromCharCode(byte);
    } else {
      text += `\\x${byte.toString(16).padStart(2, "0")}`;
    }
  }
  return new ZipError(`not a zip archive (starts with "${text}${more ? "…" : ""}")`);
}

/** A 32-bit value (a CRC-32 or a signature) as `0x` and eight hex digits. */
export function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

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
 * ```ts ignore
 * try {
 *   await extractZipStream(response.body!, sink);
 * } catch (e) {
 *   if (e instanceof ZipError) console.error(e.message); // zip entry '../evil.txt': '..' segment
 * }
 * ```
 */
export class ZipError extends Error {
  /** The entry the problem is about, when there is one. */
  readonly entry?: string;

  /** Creates an error; `options.entry` names the archive entry it concerns. */
  constructor(message: string, options?: ErrorOptions & { entry?: string }) {
    super(message, options);
    this.name = "ZipError";
    this.entry = options?.entry;
  }
}

/**
 * Thrown by {@link extractZipStream} when an entry cannot be delimited while streaming (STORED with a data
 * descriptor: no size before the data). Discard what the sink received, download the archive to a temporary
 * file and use {@link extractZipFile}.
 *
 * @example
 * ```ts ignore
 * try {
 *   await extractZipStream(body, sink);
 * } catch (e) {
 *   if (!(e instanceof ZipNeedsRandomAccess)) throw e;
 *   await batch.abort();
 *   await extractZipFile(await downloadToTemporaryFile(url), freshSink);
 * }
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
export function zipError(entry: string | undefined, message: string, options?: ErrorOptions): ZipError {
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

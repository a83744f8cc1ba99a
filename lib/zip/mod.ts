/**
 * Streaming ZIP extraction that treats every archive as hostile.
 *
 * {@link extractZipStream} parses local file headers as the bytes arrive and inflates each entry while it
 * downloads; {@link extractZipFile} reads a local file with random access (central directory first) and is the
 * fallback for archives that cannot be delimited while streaming ({@link ZipNeedsRandomAccess}).
 *
 * Both refuse, naming the entry: unsafe names (the rules of `relativePathProblem` in `storage.ts`, plus
 * lakerun's temporary names), duplicate names (exact, or equal after Unicode NFC normalisation), a file whose
 * name is also a parent folder of another entry (`a` and `a/b`), symbolic links and other special files,
 * encrypted entries, compression methods other than STORED (0) and DEFLATE (8), CRC-32 or size mismatches,
 * and any disagreement between the local headers and the central directory (entries present in one but not
 * the other, other names, sizes, CRCs or methods, gaps or overlaps between entries, data after the end).
 *
 * Entry names are UTF-8 when general-purpose flag bit 11 is set; otherwise the Info-ZIP Unicode Path extra
 * field (0x7075) is used when its CRC matches the raw name; else the raw bytes are read as UTF-8 when they
 * are valid UTF-8 (Info-ZIP `zip` on Linux writes UTF-8 names without the flag), and otherwise mapped through
 * code page 437, the ZIP specification's default. Bytes below 0x80 are ASCII either way, so NUL, `\` and
 * `/` stay what they are and are validated as such.
 *
 * Sink contract: a {@link ZipEntrySink} must only make entries visible once the whole extraction has
 * succeeded (stage, then commit: see `WriteBatch` in `storage.ts`). In streaming mode some checks can only
 * run at the end: symbolic links (local headers carry no file mode; it is in the central directory's external
 * attributes) and the central-directory cross-checks. An entry's data stream errors instead of closing when
 * its CRC-32 or size is wrong, so a sink that reads to the end never mistakes bad data for a complete file.
 *
 * @module
 */

import { crc32, createInflateRaw } from "node:zlib";
import { isTemporaryName, relativePathProblem } from "../storage/mod.ts";

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

// ---------------------------------------------------------------------------------------------------------
// Constants

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;

const FLAG_ENCRYPTED = 0x0001;
const FLAG_DESCRIPTOR = 0x0008;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;
const FLAG_MASKED_HEADERS = 0x2000;

const EXTRA_ZIP64 = 0x0001;
const EXTRA_UNICODE_PATH = 0x7075;

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** Largest slice of compressed input handed to the inflater, or of stored data to the sink, at once. */
const PIECE = 256 * 1024;
/** Output chunk size of the inflater. */
const INFLATE_CHUNK = 256 * 1024;
/** Archive bytes read ahead of the parser. */
const READ_AHEAD = 512 * 1024;
/** Bytes an entry's stream may queue ahead of the sink. */
const ENTRY_HIGH_WATER = 512 * 1024;
/** Smallest archive size used for the ratio limit. */
const RATIO_FLOOR = 64 * 1024;
/** Largest ZIP64 end-of-central-directory record accepted (its extensible data is skipped). */
const MAX_ZIP64_EOCD = 64 * 1024;

const METHOD_NAMES: Record<number, string> = {
  1: "shrink",
  6: "implode",
  9: "deflate64",
  12: "bzip2",
  14: "lzma",
  93: "zstd",
  95: "xz",
  98: "ppmd",
  99: "AES encryption",
};

const CP437_HIGH =
  "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0";

const utf8 = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------------------
// Small helpers

function u16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

function u64(b: Uint8Array, at: number, what: string, entry?: string): number {
  const value = u32(b, at) + u32(b, at + 4) * 2 ** 32;
  if (!Number.isSafeInteger(value)) throw zipError(entry, `${what} too large`);
  return value;
}

/** A name as shown in messages: control and bidi characters escaped, very long names shortened. */
function shown(name: string): string {
  const escaped = name.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return escaped.length > 200 ? `${escaped.slice(0, 200)}…` : escaped;
}

function zipError(entry: string | undefined, message: string, options?: ErrorOptions): ZipError {
  return entry === undefined
    ? new ZipError(message, options)
    : new ZipError(`zip entry '${shown(entry)}': ${message}`, { ...options, entry });
}

function truncated(entry: string | undefined, where: string): ZipError {
  return zipError(entry, `truncated archive (unexpected end of data in ${where})`);
}

/** The error for a stream that is not a zip, showing a short printable prefix of what it is. */
function notZip(prefix: Uint8Array, more: boolean): ZipError {
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

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

function methodName(method: number): string {
  return METHOD_NAMES[method] ? `${method} (${METHOD_NAMES[method]})` : `${method}`;
}

/** Extra fields by id (first occurrence); a malformed tail is ignored, as Info-ZIP does. */
function extraFields(extra: Uint8Array): Map<number, Uint8Array> {
  const fields = new Map<number, Uint8Array>();
  let at = 0;
  while (at + 4 <= extra.length) {
    const id = u16(extra, at);
    const size = u16(extra, at + 2);
    if (at + 4 + size > extra.length) break;
    if (!fields.has(id)) fields.set(id, extra.subarray(at + 4, at + 4 + size));
    at += 4 + size;
  }
  return fields;
}

function decodeName(raw: Uint8Array, flags: number, extra: Map<number, Uint8Array>): string {
  if (flags & FLAG_UTF8) {
    try {
      return utf8.decode(raw);
    } catch {
      throw zipError(cp437(raw), "name is flagged UTF-8 but is not valid UTF-8");
    }
  }
  const unicode = extra.get(EXTRA_UNICODE_PATH);
  if (unicode && unicode.length >= 5 && unicode[0] === 1 && u32(unicode, 1) === crc32(raw)) {
    try {
      return utf8.decode(unicode.subarray(5));
    } catch {
      throw zipError(cp437(raw), "Unicode path extra field is not valid UTF-8");
    }
  }
  // Many writers (Info-ZIP zip on Linux among them) store UTF-8 names without flag bit 11; bytes that are
  // valid UTF-8 are almost never meant as code page 437 (that would take box-drawing characters followed by
  // Greek or maths symbols), so they are read as UTF-8.
  try {
    return utf8.decode(raw);
  } catch {
    return cp437(raw);
  }
}

function cp437(raw: Uint8Array): string {
  let s = "";
  for (const byte of raw) s += byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH[byte - 0x80];
  return s;
}

function checkMethodAndFlags(name: string, method: number, flags: number): void {
  if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS) || method === 99) {
    throw zipError(name, "encrypted entries are not supported");
  }
  if (method !== 0 && method !== 8) {
    throw zipError(name, `unsupported compression method ${methodName(method)}`);
  }
}

/**
 * Checks the Unix file type in a central directory header's external attributes (high 16 bits): only
 * regular files and directories (or no type at all, as DOS/Windows writers leave it) are accepted.
 */
function checkFileType(name: string, externalAttributes: number): void {
  const mode = externalAttributes >>> 16;
  const type = mode & S_IFMT;
  const isDir = name.endsWith("/");
  if (type === 0 || type === S_IFREG || (type === S_IFDIR && isDir)) return;
  if (type === S_IFLNK) throw zipError(name, "symbolic link");
  if (type === S_IFDIR) throw zipError(name, "file mode says directory but the name does not end with '/'");
  throw zipError(name, `special file (mode 0o${mode.toString(8)})`);
}

// ---------------------------------------------------------------------------------------------------------
// Names: validation, duplicates and file/folder conflicts

class NameRegistry {
  /** NFC name → name, for file entries. */
  #files = new Map<string, string>();
  /** NFC path → entry that made it a folder (explicit directory entries and parents of every entry). */
  #dirs = new Map<string, string>();
  /** NFC path → name, for explicit directory entries. */
  #explicitDirs = new Map<string, string>();

  /** Validates `name` and records it; returns whether it is a directory entry. */
  add(name: string): boolean {
    const isDir = name.endsWith("/");
    const path = isDir ? name.slice(0, -1) : name;
    const problem = relativePathProblem(path) ??
      (path.split("/").some(isTemporaryName) ? "reserved temporary name" : undefined);
    if (problem) throw zipError(name, problem);

    const key = path.normalize("NFC");
    const segments = key.split("/");
    const parents: string[] = [];
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join("/");
      const file = this.#files.get(parent);
      if (file !== undefined) throw zipError(name, `its parent folder is the file entry '${shown(file)}'`);
      parents.push(parent);
    }
    const duplicate = (other: string) =>
      zipError(
        name,
        other === name
          ? "duplicate name"
          : `duplicate of '${shown(other)}' (same name after Unicode normalisation)`,
      );
    if (isDir) {
      const file = this.#files.get(key);
      if (file !== undefined) throw zipError(name, `folder name is also the file entry '${shown(file)}'`);
      const other = this.#explicitDirs.get(key);
      if (other !== undefined) throw duplicate(other);
      this.#explicitDirs.set(key, name);
      if (!this.#dirs.has(key)) this.#dirs.set(key, name);
    } else {
      const other = this.#files.get(key);
      if (other !== undefined) throw duplicate(other);
      const folder = this.#dirs.get(key);
      if (folder !== undefined) {
        throw zipError(name, `name is also a folder (of the entry '${shown(folder)}')`);
      }
      this.#files.set(key, name);
    }
    for (const parent of parents) if (!this.#dirs.has(parent)) this.#dirs.set(parent, name);
    return isDir;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Limits and abort

class Budget {
  /** Inflated bytes so far. */
  total = 0;
  readonly signal?: AbortSignal;
  readonly #maxBytes: number;
  readonly #maxRatio: number;
  readonly #archiveSize: number;
  readonly #archiveBytes: () => number;

  constructor(limits: ZipLimits | undefined, archiveBytes: () => number) {
    const maxBytes = limits?.maxBytes ?? Infinity;
    const maxRatio = limits?.maxRatio ?? 200;
    const archiveSize = limits?.archiveSize ?? 0;
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be a number >= 0, got ${maxBytes}`);
    if (!(maxRatio > 0)) throw new RangeError(`maxRatio must be a number > 0, got ${maxRatio}`);
    if (!(archiveSize >= 0)) throw new RangeError(`archiveSize must be a number >= 0, got ${archiveSize}`);
    this.#maxBytes = maxBytes;
    this.#maxRatio = maxRatio;
    this.#archiveSize = archiveSize;
    this.#archiveBytes = archiveBytes;
    this.signal = limits?.signal;
  }

  /** The archive size the ratio limit is based on. */
  #ratioBase(): number {
    return Math.max(this.#archiveSize, this.#archiveBytes(), RATIO_FLOOR);
  }

  /** Fails early when the sizes a central directory declares already break a limit. */
  checkDeclared(total: number): void {
    if (total > this.#maxBytes) {
      throw new ZipError(`archive declares ${total} inflated bytes, over maxBytes (${this.#maxBytes} bytes)`);
    }
    const base = this.#ratioBase();
    if (total > this.#maxRatio * base) {
      throw new ZipError(
        `archive declares ${total} inflated bytes, over maxRatio (${this.#maxRatio} × ${base} archive bytes)`,
      );
    }
  }

  /** Counts `n` more inflated bytes of entry `name`, failing past a limit. */
  count(n: number, name: string): void {
    this.total += n;
    if (this.total > this.#maxBytes) {
      throw zipError(name, `inflated data exceeds maxBytes (${this.#maxBytes} bytes)`);
    }
    if (this.total > this.#maxRatio * RATIO_FLOOR) {
      const base = this.#ratioBase();
      if (this.total > this.#maxRatio * base) {
        throw zipError(name, `inflated data exceeds maxRatio (${this.#maxRatio} × ${base} archive bytes)`);
      }
    }
  }

  checkAbort(): void {
    this.signal?.throwIfAborted();
  }
}

/** `promise`, or the abort reason as soon as `signal` aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Buffered byte reader over a pull function (a stream reader or positioned file reads)

class ByteReader {
  readonly #pull: () => Promise<Uint8Array | null>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #eof = false;
  #failure: { error: unknown } | undefined;
  #inflight: Promise<void> | undefined;
  /** Bytes obtained from the source so far. */
  received = 0;
  /** Archive offset of the next unconsumed byte. */
  position: number;

  constructor(pull: () => Promise<Uint8Array | null>, position = 0) {
    this.#pull = pull;
    this.position = position;
  }

  /**
   * Keeps one read in flight while less than {@link READ_AHEAD} bytes are buffered, so that the source's I/O
   * overlaps with inflating and small source chunks pile up into larger slices.
   */
  #readAhead(want = 0): void {
    if (this.#inflight || this.#eof || this.#failure || this.#buffered >= Math.max(READ_AHEAD, want)) return;
    this.#inflight = this.#pull().then((chunk) => {
      this.#inflight = undefined;
      if (chunk === null) {
        this.#eof = true;
      } else if (chunk.length > 0) {
        this.#chunks.push(chunk);
        this.#buffered += chunk.length;
        this.received += chunk.length;
      }
      this.#readAhead();
    }, (error) => {
      this.#inflight = undefined;
      this.#failure = { error };
    });
  }

  /** Buffers at least `n` bytes unless the source ends first; returns the number buffered. */
  async fill(n: number): Promise<number> {
    while (this.#buffered < n && !this.#eof) {
      if (this.#failure) throw this.#failure.error;
      this.#readAhead(n);
      await this.#inflight;
    }
    return this.#buffered;
  }

  /** The first `n` buffered bytes (`n` <= buffered), without consuming them. */
  peek(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const chunk of this.#chunks) {
      if (at >= n) break;
      const part = chunk.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** The signature at the reader's position, or undefined when fewer than 4 bytes are left. */
  async signature(): Promise<number | undefined> {
    return await this.fill(4) >= 4 ? u32(this.peek(4), 0) : undefined;
  }

  /** Consumes the first `n` buffered bytes (`n` <= buffered). */
  take(n: number): Uint8Array {
    const out = this.peek(n);
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0];
      if (first.length <= left) {
        this.#chunks.shift();
        left -= first.length;
      } else {
        this.#chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.#buffered -= n;
    this.position += n;
    return out;
  }

  /** Consumes exactly `n` bytes, failing as truncated when the source ends first. */
  async need(n: number, entry: string | undefined, where: string): Promise<Uint8Array> {
    if (await this.fill(n) < n) throw truncated(entry, where);
    return this.take(n);
  }

  /** Consumes and returns up to `max` of the buffered bytes (waiting only when none are), or null at the end. */
  async piece(max: number): Promise<Uint8Array | null> {
    if (this.#buffered === 0 && await this.fill(1) === 0) return null;
    const n = Math.min(max, this.#buffered);
    this.#readAhead();
    return this.take(n);
  }

  /** Puts consumed bytes back in front. */
  unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.unshift(bytes);
    this.#buffered += bytes.length;
    this.position -= bytes.length;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Inflater: node:zlib InflateRaw in paused mode, fed one slice at a time

/**
 * Inflates raw DEFLATE data read from a {@link ByteReader}, one output chunk per `next()` call.
 *
 * The readable side is used in paused mode, so zlib stops producing once its output buffer is full, even in
 * the middle of one input slice: memory stays bounded whatever the compression ratio. Slices are written one
 * at a time and the next one only once zlib consumed all of the previous one; when the deflate stream ends
 * inside a slice, zlib stops consuming and `bytesWritten` says how much it used, so the unused tail of the
 * last slice goes back to the reader (it holds the data descriptor or the next header).
 */
class Inflater {
  readonly #z = createInflateRaw({ chunkSize: INFLATE_CHUNK });
  readonly #input: ByteReader;
  readonly #name: string;
  /** Compressed bytes still to feed, when the compressed size is known. */
  #remaining: number | undefined;
  #fed = 0;
  #last: Uint8Array = new Uint8Array(0);
  #writing = false;
  #finishing = false;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(input: ByteReader, name: string, compressedSize: number | undefined) {
    this.#input = input;
    this.#name = name;
    this.#remaining = compressedSize;
    this.#z.on("readable", () => this.#wakeUp());
    this.#z.on("end", () => {
      this.#ended = true;
      this.#wakeUp();
    });
    this.#z.on("error", (e: Error) => {
      this.#error ??= e;
      this.#wakeUp();
    });
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Compressed bytes the deflate stream used. */
  get consumed(): number {
    return this.#z.bytesWritten;
  }

  /** The next inflated chunk, or null once the deflate stream has ended. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#error) {
        throw zipError(this.#name, `invalid deflate data (${this.#error.message})`, { cause: this.#error });
      }
      const out: Uint8Array | null = this.#z.read();
      if (out !== null) return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      if (this.#ended) return null;
      // Feed the next slice once zlib took all of the previous one; when it did not, the deflate stream
      // ended inside it and the "end" event is on its way.
      if (!this.#writing && !this.#finishing && this.#fed === this.#z.bytesWritten) {
        if (this.#remaining === 0) {
          this.#finishing = true;
          this.#z.end();
          continue;
        }
        const piece = await this.#input.piece(Math.min(this.#remaining ?? PIECE, PIECE));
        if (piece === null) throw truncated(this.#name, "compressed data");
        if (this.#ended || this.#error) {
          this.#input.unread(piece);
          continue;
        }
        this.#fed += piece.length;
        if (this.#remaining !== undefined) this.#remaining -= piece.length;
        this.#last = piece;
        this.#writing = true;
        this.#z.write(piece, () => {
          this.#writing = false;
          this.#wakeUp();
        });
        continue;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** The fed bytes the deflate stream did not use (never more than the tail of the last slice). */
  leftover(): Uint8Array {
    const unused = this.#fed - this.#z.bytesWritten;
    if (unused < 0 || unused > this.#last.length) {
      throw new ZipError(
        `internal error: inflater left ${unused} bytes of a ${this.#last.length}-byte slice`,
      );
    }
    return this.#last.subarray(this.#last.length - unused);
  }

  destroy(): void {
    this.#z.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------
// One entry's data: a pull-driven ReadableStream that verifies sizes and CRC-32 before it closes

interface BodyPlan {
  name: string;
  method: number;
  /** Exact compressed size, when known before the data. */
  compressedSize?: number;
  /** Uncompressed size declared before the data (an upper bound while streaming, checked at the end). */
  declaredSize?: number;
  declaredCrc?: number;
  /** A data descriptor follows the data. */
  descriptor: boolean;
  /** The local header had a ZIP64 extra field (the descriptor then normally has 8-byte sizes). */
  zip64: boolean;
}

interface BodyResult {
  crc: number;
  compressedSize: number;
  size: number;
}

class EntryBody {
  readonly stream: ReadableStream<Uint8Array>;
  result: BodyResult | undefined;
  error: unknown;
  readonly #input: ByteReader;
  readonly #plan: BodyPlan;
  readonly #budget: Budget;
  readonly #inflater: Inflater | undefined;
  #remaining: number;
  #crc = 0;
  #size = 0;

  constructor(input: ByteReader, plan: BodyPlan, budget: Budget) {
    this.#input = input;
    this.#plan = plan;
    this.#budget = budget;
    this.#remaining = plan.compressedSize ?? 0;
    // A deflated entry with no compressed bytes at all (some writers do that for empty files) is empty.
    const inflate = plan.method === 8 && plan.compressedSize !== 0;
    this.#inflater = inflate ? new Inflater(input, plan.name, plan.compressedSize) : undefined;
    this.stream = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.abandon(),
    }, new ByteLengthQueuingStrategy({ highWaterMark: ENTRY_HIGH_WATER }));
  }

  abandon(): void {
    this.#inflater?.destroy();
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    if (this.error !== undefined || this.result) return;
    try {
      const chunk = await this.#next();
      if (chunk) {
        controller.enqueue(chunk);
      } else {
        this.result = await this.#finish();
        controller.close();
      }
    } catch (e) {
      this.error = e;
      this.abandon();
      controller.error(e);
    }
  }

  async #next(): Promise<Uint8Array | null> {
    this.#budget.checkAbort();
    const { name, declaredSize } = this.#plan;
    let out: Uint8Array | null;
    if (this.#inflater) {
      out = await this.#inflater.next();
    } else if (this.#remaining === 0) {
      out = null;
    } else {
      out = await this.#input.piece(Math.min(this.#remaining, PIECE));
      if (out === null) throw truncated(name, "stored data");
      this.#remaining -= out.length;
    }
    if (out === null) return null;
    this.#size += out.length;
    if (declaredSize !== undefined && this.#size > declaredSize) {
      throw zipError(name, `data is larger than its declared size (${declaredSize} bytes)`);
    }
    this.#budget.count(out.length, name);
    this.#crc = crc32(out, this.#crc);
    return out;
  }

  async #finish(): Promise<BodyResult> {
    const plan = this.#plan;
    const { name } = plan;
    let compressedSize = plan.compressedSize ?? 0;
    if (this.#inflater) {
      const leftover = this.#inflater.leftover();
      compressedSize = this.#inflater.consumed;
      this.#inflater.destroy();
      if (plan.compressedSize === undefined) {
        this.#input.unread(leftover);
      } else if (compressedSize !== plan.compressedSize) {
        throw zipError(
          name,
          `deflate data ends after ${compressedSize} of its ${plan.compressedSize} compressed bytes`,
        );
      }
    }
    const actual = { crc: this.#crc >>> 0, compressedSize, size: this.#size };
    if (plan.declaredSize !== undefined && actual.size !== plan.declaredSize) {
      throw zipError(name, `size mismatch (declared ${plan.declaredSize} bytes, data has ${actual.size})`);
    }
    if (plan.declaredCrc !== undefined && actual.crc !== plan.declaredCrc) {
      throw zipError(
        name,
        `CRC-32 mismatch (declared ${hex32(plan.declaredCrc)}, data has ${hex32(actual.crc)})`,
      );
    }
    if (plan.descriptor) await readDescriptor(this.#input, name, actual, plan.zip64);
    return actual;
  }
}

/** Signatures that may follow an entry (and so its data descriptor). */
function isRecordSignature(sig: number): boolean {
  return sig === SIG_LOCAL || sig === SIG_CENTRAL || sig === SIG_EOCD || sig === SIG_ZIP64_EOCD;
}

/**
 * Consumes the data descriptor after an entry's data and checks it against what the data gave. Its layout
 * varies (optional signature; 4- or 8-byte sizes), so each layout is tried: the one that matches the actual
 * CRC and sizes and is followed by a record signature wins.
 */
async function readDescriptor(
  input: ByteReader,
  name: string,
  actual: BodyResult,
  zip64: boolean,
): Promise<void> {
  const available = await input.fill(4 + 4 + 16 + 4);
  const bytes = input.peek(available);
  const hasSignature = available >= 4 && u32(bytes, 0) === SIG_DESCRIPTOR;
  const widths = zip64 ? [8, 4] : [4, 8];
  let first: BodyResult | undefined;
  for (const signature of hasSignature ? [true, false] : [false]) {
    for (const width of widths) {
      const at = signature ? 4 : 0;
      const length = at + 4 + 2 * width;
      if (available < length) continue;
      const fields = {
        crc: u32(bytes, at),
        compressedSize: width === 8 ? u32(bytes, at + 4) + u32(bytes, at + 8) * 2 ** 32 : u32(bytes, at + 4),
        size: width === 8 ? u32(bytes, at + 12) + u32(bytes, at + 16) * 2 ** 32 : u32(bytes, at + 8),
      };
      first ??= fields;
      const matches = fields.crc === actual.crc && fields.compressedSize === actual.compressedSize &&
        fields.size === actual.size;
      if (matches && (available < length + 4 || isRecordSignature(u32(bytes, length)))) {
        input.take(length);
        return;
      }
    }
  }
  if (!first) throw truncated(name, "data descriptor");
  if (first.crc !== actual.crc) {
    throw zipError(
      name,
      `CRC-32 mismatch (data descriptor says ${hex32(first.crc)}, data has ${hex32(actual.crc)})`,
    );
  }
  throw zipError(
    name,
    `data descriptor does not match the data (says ${first.compressedSize} compressed / ${first.size} bytes, ` +
      `data has ${actual.compressedSize} / ${actual.size})`,
  );
}

/** Hands one entry's data to the sink (or drains a directory entry) and returns what the data gave. */
async function deliver(
  sink: ZipEntrySink,
  input: ByteReader,
  plan: BodyPlan,
  isDir: boolean,
  budget: Budget,
): Promise<BodyResult> {
  const body = new EntryBody(input, plan, budget);
  if (isDir) {
    try {
      for await (const chunk of body.stream) {
        if (chunk.length > 0) throw zipError(plan.name, "directory entry with data");
      }
    } finally {
      body.abandon();
    }
    return body.result!;
  }
  try {
    await sink.writeEntry(plan.name, body.stream, { uncompressedSize: plan.declaredSize });
  } catch (e) {
    body.abandon();
    throw body.error ?? e;
  }
  if (body.error !== undefined) throw body.error;
  if (!body.result) {
    body.abandon();
    throw zipError(plan.name, "the sink returned before reading all of the entry's data");
  }
  return body.result;
}

// ---------------------------------------------------------------------------------------------------------
// Headers

interface LocalHeader {
  offset: number;
  flags: number;
  method: number;
  /** CRC and sizes from the header (zero when a data descriptor follows). */
  crc: number;
  compressedSize: number;
  size: number;
  name: string;
  zip64: boolean;
}

/** Reads the local file header at the reader's position (its signature already checked by the caller). */
async function readLocalHeader(input: ByteReader): Promise<LocalHeader> {
  const offset = input.position;
  const where = `the local header at offset ${offset}`;
  const fixed = await input.need(30, undefined, where);
  const flags = u16(fixed, 6);
  const method = u16(fixed, 8);
  let crc = u32(fixed, 14);
  let compressedSize = u32(fixed, 18);
  let size = u32(fixed, 22);
  const nameLength = u16(fixed, 26);
  const extraLength = u16(fixed, 28);
  const rest = await input.need(nameLength + extraLength, undefined, where);
  const extra = extraFields(rest.subarray(nameLength));
  const name = decodeName(rest.subarray(0, nameLength), flags, extra);
  const zip64Field = extra.get(EXTRA_ZIP64);
  if (zip64Field) {
    let at = 0;
    const next = (what: string) => {
      if (at + 8 > zip64Field.length) throw zipError(name, `ZIP64 extra field lacks the ${what}`);
      const value = u64(zip64Field, at, what, name);
      at += 8;
      return value;
    };
    if (zip64Field.length >= 16) {
      // Local headers must hold both sizes (APPNOTE 4.5.3).
      const zipSize = next("size");
      const zipCompressed = next("compressed size");
      if (size === U32_MAX) size = zipSize;
      if (compressedSize === U32_MAX) compressedSize = zipCompressed;
    } else {
      if (size === U32_MAX) size = next("size");
      if (compressedSize === U32_MAX) compressedSize = next("compressed size");
    }
  }
  if (flags & FLAG_DESCRIPTOR) crc = compressedSize = size = 0;
  return { offset, flags, method, crc, compressedSize, size, name, zip64: zip64Field !== undefined };
}

interface CentralEntry {
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  offset: number;
  externalAttributes: number;
  name: string;
}

/** Reads the central directory header at the reader's position (signature included). */
async function readCentralHeader(input: ByteReader): Promise<CentralEntry> {
  const where = `the central directory header at offset ${input.position}`;
  const fixed = await input.need(46, undefined, where);
  const flags = u16(fixed, 8);
  const method = u16(fixed, 10);
  const crc = u32(fixed, 16);
  let compressedSize = u32(fixed, 20);
  let size = u32(fixed, 24);
  const nameLength = u16(fixed, 28);
  const extraLength = u16(fixed, 30);
  const commentLength = u16(fixed, 32);
  let disk = u16(fixed, 34);
  const externalAttributes = u32(fixed, 38);
  let offset = u32(fixed, 42);
  const rest = await input.need(nameLength + extraLength + commentLength, undefined, where);
  const extra = extraFields(rest.subarray(nameLength, nameLength + extraLength));
  const name = decodeName(rest.subarray(0, nameLength), flags, extra);
  if (size === U32_MAX || compressedSize === U32_MAX || offset === U32_MAX || disk === U16_MAX) {
    const zip64Field = extra.get(EXTRA_ZIP64);
    if (!zip64Field) throw zipError(name, "central directory header needs a ZIP64 extra field but has none");
    let at = 0;
    const next = (what: string, width: number) => {
      if (at + width > zip64Field.length) throw zipError(name, `ZIP64 extra field lacks the ${what}`);
      const value = width === 8 ? u64(zip64Field, at, what, name) : u32(zip64Field, at);
      at += width;
      return value;
    };
    if (size === U32_MAX) size = next("size", 8);
    if (compressedSize === U32_MAX) compressedSize = next("compressed size", 8);
    if (offset === U32_MAX) offset = next("local header offset", 8);
    if (disk === U16_MAX) disk = next("disk number", 4);
  }
  if (disk !== 0) throw zipError(name, "multi-disk archives are not supported");
  return { flags, method, crc, compressedSize, size, offset, externalAttributes, name };
}

interface EndRecord {
  entries: number;
  cdSize: number;
  cdOffset: number;
  commentLength: number;
}

function parseEocd(b: Uint8Array): EndRecord & { saturated: boolean } {
  const disk = u16(b, 4);
  const cdDisk = u16(b, 6);
  const entriesOnDisk = u16(b, 8);
  const entries = u16(b, 10);
  const cdSize = u32(b, 12);
  const cdOffset = u32(b, 16);
  const saturated = disk === U16_MAX || cdDisk === U16_MAX || entriesOnDisk === U16_MAX ||
    entries === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX;
  if (!saturated && (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== entries)) {
    throw new ZipError("multi-disk archives are not supported");
  }
  return { entries, cdSize, cdOffset, commentLength: u16(b, 20), saturated };
}

/** Parses the fixed 56 bytes of a ZIP64 end-of-central-directory record; `length` is the whole record's. */
function parseZip64Eocd(b: Uint8Array): EndRecord & { length: number } {
  const recordSize = u64(b, 4, "ZIP64 end of central directory size");
  if (recordSize < 44 || recordSize > MAX_ZIP64_EOCD) {
    throw new ZipError(`bad ZIP64 end of central directory record (size ${recordSize})`);
  }
  const disk = u32(b, 16);
  const cdDisk = u32(b, 20);
  const entriesOnDisk = u64(b, 24, "ZIP64 entry count");
  const entries = u64(b, 32, "ZIP64 entry count");
  if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== entries) {
    throw new ZipError("multi-disk archives are not supported");
  }
  return {
    entries,
    cdSize: u64(b, 40, "ZIP64 central directory size"),
    cdOffset: u64(b, 48, "ZIP64 central directory offset"),
    commentLength: 0,
    length: 12 + recordSize,
  };
}

/** The EOCD values, taken from the ZIP64 record where the EOCD ones are saturated. */
function endValues(eocd: EndRecord & { saturated: boolean }, zip64: EndRecord | undefined): EndRecord {
  if (!zip64) {
    if (eocd.saturated) throw new ZipError("end of central directory needs a ZIP64 record but there is none");
    return eocd;
  }
  const pick = (small: number, max: number, big: number, what: string) => {
    if (small !== max && small !== big) {
      throw new ZipError(
        `end of central directory ${what} (${small}) disagrees with its ZIP64 record (${big})`,
      );
    }
    return big;
  };
  return {
    entries: pick(eocd.entries, U16_MAX, zip64.entries, "entry count"),
    cdSize: pick(eocd.cdSize, U32_MAX, zip64.cdSize, "size"),
    cdOffset: pick(eocd.cdOffset, U32_MAX, zip64.cdOffset, "offset"),
    commentLength: eocd.commentLength,
  };
}

/** Checks a central directory header against the entry extracted from its local header. */
function compareCentral(local: LocalHeader & BodyResult, central: CentralEntry): void {
  const name = central.name;
  if (local.name !== central.name) {
    throw zipError(name, `central directory name differs from the local header name '${shown(local.name)}'`);
  }
  const differences: string[] = [];
  if (local.method !== central.method) differences.push(`method ${local.method} vs ${central.method}`);
  if (local.crc !== central.crc) differences.push(`CRC-32 ${hex32(local.crc)} vs ${hex32(central.crc)}`);
  if (local.size !== central.size) differences.push(`size ${local.size} vs ${central.size}`);
  if (local.compressedSize !== central.compressedSize) {
    differences.push(`compressed size ${local.compressedSize} vs ${central.compressedSize}`);
  }
  if ((local.flags ^ central.flags) & (FLAG_ENCRYPTED | FLAG_DESCRIPTOR)) differences.push("flags");
  if (differences.length) {
    throw zipError(
      name,
      `central directory disagrees with the local data (local vs central: ${differences.join(", ")})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Streaming extraction

/**
 * Extract from a byte stream, inflating each entry as its bytes arrive.
 *
 * Memory stays bounded whatever the archive size or compression ratio: at most 512 KiB of archive bytes is
 * read ahead, zlib gets slices of at most 256 KiB and stops producing while its 64 KiB output chunk is
 * unread, and at most 512 KiB of an entry is queued ahead of the sink, so the sink's reading pace throttles the
 * source. Per entry, a few dozen bytes of metadata are kept until the end for the central-directory checks.
 * Symbolic links can only be detected in the central directory at the end (see the module notes on the sink
 * contract). Throws {@link ZipNeedsRandomAccess} for an entry that cannot be delimited while streaming.
 *
 * @example
 * ```ts ignore
 * const response = await fetch(url);
 * const summary = await extractZipStream(response.body!, sink, {
 *   archiveSize: Number(response.headers.get("content-length")) || undefined,
 *   maxBytes: 50 * 2 ** 30,
 * });
 * ```
 */
export async function extractZipStream(
  source: ReadableStream<Uint8Array>,
  sink: ZipEntrySink,
  limits?: ZipLimits,
): Promise<ZipSummary> {
  const signal = limits?.signal;
  signal?.throwIfAborted();
  const streamReader = source.getReader();
  const input = new ByteReader(async () => {
    const { done, value } = await raceAbort(streamReader.read(), signal);
    if (done) return null;
    if (!(value instanceof Uint8Array)) throw new TypeError("zip source stream must yield Uint8Array chunks");
    return value;
  });
  let ok = false;
  try {
    const budget = new Budget(limits, () => input.received);
    const summary = await extractFromStream(input, sink, budget);
    ok = true;
    return summary;
  } finally {
    if (!ok) await streamReader.cancel().catch(() => {});
    streamReader.releaseLock();
  }
}

async function extractFromStream(input: ByteReader, sink: ZipEntrySink, budget: Budget): Promise<ZipSummary> {
  const first = await input.signature();
  if (first !== SIG_LOCAL && first !== SIG_EOCD) {
    const available = await input.fill(41);
    throw notZip(input.peek(Math.min(available, 40)), available > 40);
  }
  const names = new NameRegistry();
  const extracted = new Map<number, LocalHeader & BodyResult & { matched: boolean }>();
  let entries = 0;

  // Local entries, in archive order.
  while (await input.signature() === SIG_LOCAL) {
    budget.checkAbort();
    const local = await readLocalHeader(input);
    const { name, flags, method } = local;
    const isDir = names.add(name);
    checkMethodAndFlags(name, method, flags);
    const descriptor = (flags & FLAG_DESCRIPTOR) !== 0;
    if (method === 0 && descriptor) {
      const reason = "stored with a data descriptor, so its end cannot be found while streaming";
      throw new ZipNeedsRandomAccess(`zip entry '${shown(name)}': ${reason}`, { entry: name });
    }
    const result = await deliver(
      sink,
      input,
      {
        name,
        method,
        compressedSize: descriptor ? undefined : local.compressedSize,
        declaredSize: descriptor ? undefined : local.size,
        declaredCrc: descriptor ? undefined : local.crc,
        descriptor,
        zip64: local.zip64,
      },
      isDir,
      budget,
    );
    extracted.set(local.offset, { ...local, ...result, matched: false });
    if (!isDir) entries++;
  }
  const afterEntries = await input.signature();
  if (afterEntries === undefined) throw truncated(undefined, "the central directory");
  if (afterEntries !== SIG_CENTRAL && afterEntries !== SIG_ZIP64_EOCD && afterEntries !== SIG_EOCD) {
    throw new ZipError(
      `unexpected data at offset ${input.position} (${hex32(afterEntries)}) after the last entry`,
    );
  }

  // Central directory: every header must match one extracted entry, and every entry must be listed.
  const cdStart = input.position;
  let count = 0;
  while (await input.signature() === SIG_CENTRAL) {
    budget.checkAbort();
    const central = await readCentralHeader(input);
    const local = extracted.get(central.offset);
    if (!local || local.matched) {
      throw zipError(
        central.name,
        local
          ? `its local header (offset ${central.offset}) is already listed in the central directory`
          : "in the central directory but not in the local headers",
      );
    }
    compareCentral(local, central);
    checkFileType(central.name, central.externalAttributes);
    local.matched = true;
    count++;
  }
  const cdEnd = input.position;

  // ZIP64 end of central directory record and locator (optional), then the end of central directory record.
  let zip64: EndRecord | undefined;
  if (await input.signature() === SIG_ZIP64_EOCD) {
    const where = "the ZIP64 end of central directory record";
    const at = input.position;
    const record = parseZip64Eocd(await input.need(56, undefined, where));
    await input.need(record.length - 56, undefined, where);
    zip64 = record;
    const locator = await input.need(20, undefined, "the ZIP64 end of central directory locator");
    if (u32(locator, 0) !== SIG_ZIP64_LOCATOR || u64(locator, 8, "ZIP64 locator offset") !== at) {
      throw new ZipError("bad ZIP64 end of central directory locator");
    }
  }
  const signature = await input.signature();
  if (signature === undefined) throw truncated(undefined, "the central directory");
  if (signature !== SIG_EOCD) {
    throw new ZipError(
      signature === SIG_LOCAL
        ? `local header at offset ${input.position}, inside the central directory`
        : `unexpected data at offset ${input.position} (${hex32(signature)}) in the central directory`,
    );
  }
  for (const local of extracted.values()) {
    if (!local.matched) throw zipError(local.name, "in the local headers but not in the central directory");
  }
  const end = endValues(
    parseEocd(await input.need(22, undefined, "the end of central directory record")),
    zip64,
  );
  await input.need(end.commentLength, undefined, "the archive comment");
  if (end.entries !== count || end.cdSize !== cdEnd - cdStart || end.cdOffset !== cdStart) {
    const says = `${end.entries} entries, ${end.cdSize} bytes at offset ${end.cdOffset}`;
    const found = `${count} entries, ${cdEnd - cdStart} bytes at offset ${cdStart}`;
    throw new ZipError(
      `end of central directory record disagrees with the archive (says ${says}; found ${found})`,
    );
  }
  if (await input.fill(1) > 0) throw new ZipError(`unexpected data after the end of the archive`);
  return { entries, bytes: budget.total, archiveBytes: input.position };
}

// ---------------------------------------------------------------------------------------------------------
// Random-access extraction

async function readAt(file: Deno.FsFile, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let at = 0;
  while (at < length) {
    const n = await file.read(buffer.subarray(at));
    if (n === null) break;
    at += n;
  }
  return buffer.subarray(0, at);
}

/** A file read at explicit positions; reads are queued, so that a seek and its read are never interleaved. */
class PositionedFile {
  readonly #file: Deno.FsFile;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  read(position: number, length: number): Promise<Uint8Array> {
    const result = this.#queue.then(() => readAt(this.#file, position, length));
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Resolves once no read is queued. */
  async idle(): Promise<void> {
    for (let queue; queue !== this.#queue;) await (queue = this.#queue);
  }
}

/** A reader over the file bytes [start, end), read in slices. */
function fileReader(file: PositionedFile, start: number, end: number, signal?: AbortSignal): ByteReader {
  let position = start;
  return new ByteReader(async () => {
    signal?.throwIfAborted();
    if (position >= end) return null;
    const bytes = await file.read(position, Math.min(PIECE, end - position));
    if (bytes.length === 0) return null;
    position += bytes.length;
    return bytes;
  }, start);
}

/** Fails naming the entry when unlisted bytes at `position` hold a local header. */
async function refuseHiddenEntry(file: PositionedFile, position: number): Promise<void> {
  const fixed = await file.read(position, 30);
  if (fixed.length < 30 || u32(fixed, 0) !== SIG_LOCAL) return;
  const variable = await file.read(position + 30, u16(fixed, 26) + u16(fixed, 28));
  const nameBytes = variable.subarray(0, u16(fixed, 26));
  let name: string;
  try {
    name = decodeName(nameBytes, u16(fixed, 6), extraFields(variable.subarray(nameBytes.length)));
  } catch {
    return;
  }
  throw zipError(name, "in the local headers but not in the central directory");
}

/**
 * Extract from a local file with random access (central directory first). Used as a fallback.
 *
 * Every name, file type, method and the declared total size (against the limits) are checked from the
 * central directory before any byte reaches the sink; then the entries are read in archive order through
 * their local headers, which must agree with the central directory and follow one another from offset 0 to
 * the central directory without gaps or overlaps. Data is still inflated and verified as it is read.
 *
 * @example
 * ```ts ignore
 * const summary = await extractZipFile("/tmp/download.zip", sink, { maxBytes: 50 * 2 ** 30 });
 * console.log(`${summary.entries} files`);
 * ```
 */
export async function extractZipFile(
  path: string,
  sink: ZipEntrySink,
  limits?: ZipLimits,
): Promise<ZipSummary> {
  limits?.signal?.throwIfAborted();
  const handle = await Deno.open(path, { read: true });
  const file = new PositionedFile(handle);
  try {
    const size = (await handle.stat()).size;
    const budget = new Budget(limits, () => size);
    return await extractFromFile(file, size, sink, budget);
  } finally {
    await file.idle();
    handle.close();
  }
}

async function extractFromFile(
  file: PositionedFile,
  size: number,
  sink: ZipEntrySink,
  budget: Budget,
): Promise<ZipSummary> {
  const head = await file.read(0, Math.min(size, 41));
  if (head.length < 4 || (u32(head, 0) !== SIG_LOCAL && u32(head, 0) !== SIG_EOCD)) {
    throw notZip(head.subarray(0, 40), head.length > 40);
  }

  // End of central directory: the last record whose comment reaches exactly the end of the file.
  const tailStart = Math.max(0, size - (22 + U16_MAX));
  const tail = await file.read(tailStart, size - tailStart);
  let eocdAt = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (u32(tail, i) === SIG_EOCD && i + 22 + u16(tail, i + 20) === tail.length) {
      eocdAt = i;
      break;
    }
  }
  if (eocdAt < 0) throw new ZipError("truncated archive (no end of central directory record at its end)");
  const eocdPosition = tailStart + eocdAt;
  const eocd = parseEocd(tail.subarray(eocdAt, eocdAt + 22));
  let zip64: EndRecord | undefined;
  let cdEnd = eocdPosition;
  if (eocdPosition >= 20) {
    const locator = await file.read(eocdPosition - 20, 20);
    if (u32(locator, 0) === SIG_ZIP64_LOCATOR) {
      const at = u64(locator, 8, "ZIP64 locator offset");
      const fixed = at + 56 <= eocdPosition - 20 ? await file.read(at, 56) : new Uint8Array(0);
      if (fixed.length < 56 || u32(fixed, 0) !== SIG_ZIP64_EOCD) {
        throw new ZipError("bad ZIP64 end of central directory locator");
      }
      const record = parseZip64Eocd(fixed);
      if (at + record.length !== eocdPosition - 20) {
        throw new ZipError("data between the ZIP64 end of central directory record and its locator");
      }
      zip64 = record;
      cdEnd = at;
    }
  }
  const end = endValues(eocd, zip64);
  if (end.cdOffset + end.cdSize !== cdEnd) {
    throw new ZipError(
      `end of central directory record disagrees with the archive (central directory of ${end.cdSize} bytes ` +
        `at offset ${end.cdOffset}, but it must end at ${cdEnd})`,
    );
  }

  // Central directory: everything is validated before the first entry is extracted.
  const cd = fileReader(file, end.cdOffset, cdEnd, budget.signal);
  const centrals: CentralEntry[] = [];
  while (cd.position < cdEnd) {
    budget.checkAbort();
    if (await cd.signature() !== SIG_CENTRAL) {
      throw new ZipError(`bad central directory header at offset ${cd.position}`);
    }
    centrals.push(await readCentralHeader(cd));
  }
  if (centrals.length !== end.entries) {
    throw new ZipError(
      `end of central directory record says ${end.entries} entries, the central directory has ${centrals.length}`,
    );
  }
  centrals.sort((a, b) => a.offset - b.offset);
  const names = new NameRegistry();
  const dirs = new Set<CentralEntry>();
  let declared = 0;
  for (const central of centrals) {
    if (names.add(central.name)) dirs.add(central);
    checkMethodAndFlags(central.name, central.method, central.flags);
    checkFileType(central.name, central.externalAttributes);
    declared += central.size;
  }
  budget.checkDeclared(declared);

  // Entries in archive order, contiguous from offset 0 to the central directory.
  let expected = 0;
  let entries = 0;
  for (const central of centrals) {
    budget.checkAbort();
    const { name } = central;
    if (central.offset > expected) await refuseHiddenEntry(file, expected);
    if (central.offset !== expected) {
      throw zipError(
        name,
        central.offset < expected
          ? `overlaps the previous entry (local header at offset ${central.offset}, previous entry ends at ${expected})`
          : `${central.offset - expected} unlisted bytes before its local header (offset ${central.offset})`,
      );
    }
    // Read no further than this entry (its header, data, a descriptor and the next signature).
    const fixed = await file.read(central.offset, 30);
    if (fixed.length < 30 || u32(fixed, 0) !== SIG_LOCAL) {
      throw zipError(name, `no local header at offset ${central.offset}`);
    }
    const dataEnd = central.offset + 30 + u16(fixed, 26) + u16(fixed, 28) + central.compressedSize;
    const input = fileReader(file, central.offset, Math.min(end.cdOffset, dataEnd + 28), budget.signal);
    const local = await readLocalHeader(input);
    const descriptor = (local.flags & FLAG_DESCRIPTOR) !== 0;
    if (local.name !== name) {
      throw zipError(
        name,
        `central directory name differs from the local header name '${shown(local.name)}'`,
      );
    }
    if (
      local.method !== central.method || (local.flags ^ central.flags) & (FLAG_ENCRYPTED | FLAG_DESCRIPTOR)
    ) {
      throw zipError(name, "local header disagrees with the central directory (method or flags)");
    }
    if (
      !descriptor &&
      (local.crc !== central.crc || local.size !== central.size ||
        local.compressedSize !== central.compressedSize)
    ) {
      const crcs = `CRC-32 ${hex32(local.crc)} vs ${hex32(central.crc)}`;
      const sizes = `size ${local.size} vs ${central.size}`;
      const compressed = `compressed size ${local.compressedSize} vs ${central.compressedSize}`;
      throw zipError(
        name,
        `local header disagrees with the central directory (${crcs}, ${sizes}, ${compressed})`,
      );
    }
    if (input.position + central.compressedSize > end.cdOffset) {
      throw zipError(name, "compressed data runs into the central directory");
    }
    const isDir = dirs.has(central);
    await deliver(
      sink,
      input,
      {
        name,
        method: central.method,
        compressedSize: central.compressedSize,
        declaredSize: central.size,
        declaredCrc: central.crc,
        descriptor,
        zip64: local.zip64,
      },
      isDir,
      budget,
    );
    expected = input.position;
    if (!isDir) entries++;
  }
  if (expected !== end.cdOffset) {
    await refuseHiddenEntry(file, expected);
    throw new ZipError(
      `${end.cdOffset - expected} unlisted bytes between the last entry and the central directory`,
    );
  }
  return { entries, bytes: budget.total, archiveBytes: size };
}

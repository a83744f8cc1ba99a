/**
 * Random-access extraction from a local file ({@link extractZipFile}): the end records and the whole central
 * directory are read and validated first, then the entries are extracted in archive order through their
 * local headers.
 *
 * @module
 */

import { Budget } from "./budget.ts";
import { ByteReader, PIECE } from "./byte_reader.ts";
import { deliver, finishSink } from "./entry_body.ts";
import { hex32, notZip, shown, ZipError, zipError } from "./errors.ts";
import {
  FLAG_DESCRIPTOR,
  FLAG_ENCRYPTED,
  SIG_CENTRAL,
  SIG_EOCD,
  SIG_LOCAL,
  SIG_ZIP64_EOCD,
  SIG_ZIP64_LOCATOR,
  u16,
  U16_MAX,
  u32,
  u64,
} from "./format.ts";
import {
  checkFileType,
  checkMethodAndFlags,
  endValues,
  MAX_TRAILING,
  parseEocd,
  parseZip64Eocd,
  readCentralHeader,
  readLocalHeader,
  trailingDataProblem,
} from "./headers.ts";
import type { CentralEntry, EndRecord, LocalHeader } from "./headers.ts";
import { decodeName, NameRegistry, withoutDotSegments } from "./names.ts";
import type { ZipEntrySink, ZipLimits, ZipSummary } from "./types.ts";

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

/**
 * Bytes read at once into the window that small reads are served from: entries are read in archive order, so
 * an archive of many small entries costs one read per window rather than a few (each a hop to another
 * thread) per entry.
 */
const WINDOW = 1024 * 1024;

/**
 * A file read at explicit positions; reads are queued, so that a seek and its read are never interleaved.
 * Reads shorter than {@link WINDOW} are served from the last window read (a buffer of its own each time:
 * what was handed out is never overwritten).
 */
class PositionedFile {
  readonly #file: Deno.FsFile;
  #queue: Promise<unknown> = Promise.resolve();
  #window: Uint8Array = new Uint8Array(0);
  #windowStart = 0;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Up to `length` bytes at `position` (fewer at the end of the file). */
  read(position: number, length: number): Promise<Uint8Array> {
    const result = this.#queue.then(() => this.#read(position, length));
    this.#queue = result.catch(() => {});
    return result;
  }

  async #read(position: number, length: number): Promise<Uint8Array> {
    const offset = position - this.#windowStart;
    if (offset >= 0 && offset + length <= this.#window.length) {
      return this.#window.subarray(offset, offset + length);
    }
    if (length >= WINDOW) return await readAt(this.#file, position, length);
    this.#window = await readAt(this.#file, position, WINDOW);
    this.#windowStart = position;
    return this.#window.subarray(0, Math.min(length, this.#window.length));
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
    name = decodeName(nameBytes, u16(fixed, 6), variable.subarray(nameBytes.length));
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
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { extractZipFile } from "./file.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"));
 * await writer.add("2024/a.csv", new TextReader("a,b\n1,2\n"));
 * await writer.add("b.csv", new TextReader("x\n"));
 * const file = await Deno.makeTempFile({ suffix: ".zip" });
 * await Deno.writeFile(file, (await writer.close()).stream());
 *
 * const files: Record<string, string> = {};
 * const sink = { writeEntry: async (path: string, data: ReadableStream<Uint8Array>) => {
 *   files[path] = await new Response(data).text();
 * } };
 * const summary = await extractZipFile(file, sink, { maxBytes: 50 * 2 ** 30 });
 * assert.equal(summary.entries, 2);
 * assert.deepEqual(files, { "2024/a.csv": "a,b\n1,2\n", "b.csv": "x\n" });
 * await Deno.remove(file);
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
  const end = await readEndRecords(file, size);
  const centrals = await readCentralDirectory(file, end, budget);
  const dirs = checkCentralEntries(centrals, budget);
  const warnings: string[] = [];
  if (end.shift > 0) {
    warnings.push(
      `${end.shift} extra bytes at the beginning of the archive (a self-extracting stub?): entry offsets corrected`,
    );
  }

  // Entries in archive order, contiguous from the first one (offset 0, or after a self-extracting stub) to
  // the central directory.
  let expected = await startOfEntries(file, centrals[0]?.offset ?? end.cdOffset);
  let entries = 0;
  for (const central of centrals) {
    budget.checkAbort();
    await checkContiguous(file, central, expected);
    const isDir = dirs.has(central);
    expected = await extractEntry(file, central, isDir, end.cdOffset, sink, budget);
    if (!isDir) entries++;
  }
  await finishSink(sink, budget);
  if (expected !== end.cdOffset) {
    await refuseHiddenEntry(file, expected);
    throw new ZipError(
      `${end.cdOffset - expected} unlisted bytes between the last entry and the central directory`,
    );
  }
  return { entries, bytes: budget.total, archiveBytes: size, ...(warnings.length ? { warnings } : {}) };
}

/**
 * Where the first entry starts: bytes before it are a self-extracting stub (a program that unzips what
 * follows it), which unzip skips too, unless they start with a local header: an entry the central directory
 * does not list.
 */
async function startOfEntries(file: PositionedFile, first: number): Promise<number> {
  if (first > 0) await refuseHiddenEntry(file, 0);
  return first;
}

/** Fails with what the file starts with when it is not a zip archive at all. */
async function refuseNonZip(file: PositionedFile, size: number): Promise<void> {
  const head = await file.read(0, Math.min(size, 41));
  if (head.length < 4 || (u32(head, 0) !== SIG_LOCAL && u32(head, 0) !== SIG_EOCD)) {
    throw notZip(head.subarray(0, 40), head.length > 40);
  }
}

/** The end records, where the central directory is, and how the archive sits in the file. */
interface ArchiveEnd extends EndRecord {
  /** Where the central directory must end (where the ZIP64 record or else the end record starts). */
  cdEnd: number;
  /**
   * Bytes before the archive that its offsets do not count (a self-extracting stub prepended without
   * `zip -A`): added to every offset read from the archive (`cdOffset` already includes it).
   */
  shift: number;
}

/** Reads the end of central directory record and, when there is one, the ZIP64 record. */
async function readEndRecords(file: PositionedFile, size: number): Promise<ArchiveEnd> {
  const found = await findEocd(file, size);
  if (!found) {
    await refuseNonZip(file, size);
    throw new ZipError("truncated archive (no end of central directory record at its end)");
  }
  const { eocd, position } = found;
  const zip64 = await readZip64End(file, position);
  const cdEnd = zip64 ? zip64.at : position;
  const end = endValues(eocd, zip64?.record);
  const shift = cdEnd - (end.cdOffset + end.cdSize);
  if (shift < 0 || (zip64 && zip64.shift !== shift)) {
    throw new ZipError(
      `end of central directory record disagrees with the archive (central directory of ${end.cdSize} bytes ` +
        `at offset ${end.cdOffset}, but it must end at ${cdEnd})`,
    );
  }
  return { ...end, cdOffset: end.cdOffset + shift, cdEnd, shift };
}

/**
 * Finds the end of central directory record: the last one whose comment reaches exactly the end of the file,
 * else the last one followed by at most 64 KiB of bytes that hold no zip record (a newline or padding some
 * tools add, which unzip accepts); `undefined` when there is none.
 */
async function findEocd(
  file: PositionedFile,
  size: number,
): Promise<{ eocd: EndRecord & { saturated: boolean }; position: number } | undefined> {
  const tailStart = Math.max(0, size - (22 + U16_MAX + MAX_TRAILING));
  const tail = await file.read(tailStart, size - tailStart);
  const found = (at: number) => ({ eocd: parseEocd(tail.subarray(at, at + 22)), position: tailStart + at });
  const candidates: number[] = [];
  for (let i = tail.length - 22; i >= 0; i--) {
    if (u32(tail, i) !== SIG_EOCD) continue;
    const recordEnd = i + 22 + u16(tail, i + 20);
    if (recordEnd === tail.length && tail.length - i <= 22 + U16_MAX) return found(i);
    if (recordEnd < tail.length) candidates.push(i);
  }
  for (const i of candidates) {
    const trailing = tail.subarray(i + 22 + u16(tail, i + 20));
    if (trailing.length <= MAX_TRAILING && !trailingDataProblem(trailing)) return found(i);
  }
  return undefined;
}

/**
 * Reads the ZIP64 end of central directory record when a locator precedes the end record at `eocdPosition`;
 * `at` is the record's offset, `shift` how far it is from where the locator says (a prepended stub).
 */
async function readZip64End(
  file: PositionedFile,
  eocdPosition: number,
): Promise<{ record: EndRecord; at: number; shift: number } | undefined> {
  if (eocdPosition < 20) return undefined;
  const locator = await file.read(eocdPosition - 20, 20);
  if (u32(locator, 0) !== SIG_ZIP64_LOCATOR) return undefined;
  const said = u64(locator, 8, "ZIP64 locator offset");
  // where the locator says, or (when a stub was prepended without adjusting offsets) right before the locator
  for (const at of new Set([said, eocdPosition - 20 - 56])) {
    const fixed = at >= 0 && at + 56 <= eocdPosition - 20 ? await file.read(at, 56) : new Uint8Array(0);
    if (fixed.length < 56 || u32(fixed, 0) !== SIG_ZIP64_EOCD) continue;
    const record = parseZip64Eocd(fixed);
    if (at + record.length !== eocdPosition - 20) {
      throw new ZipError("data between the ZIP64 end of central directory record and its locator");
    }
    return { record, at, shift: at - said };
  }
  throw new ZipError("bad ZIP64 end of central directory locator");
}

/** Reads all the central directory headers, checking their count; returns them in archive (offset) order. */
async function readCentralDirectory(
  file: PositionedFile,
  end: ArchiveEnd,
  budget: Budget,
): Promise<CentralEntry[]> {
  const cd = fileReader(file, end.cdOffset, end.cdEnd, budget.signal);
  const centrals: CentralEntry[] = [];
  while (cd.position < end.cdEnd) {
    budget.checkAbort();
    if (await cd.signature() !== SIG_CENTRAL) {
      throw new ZipError(`bad central directory header at offset ${cd.position}`);
    }
    const central = await readCentralHeader(cd);
    central.offset += end.shift;
    centrals.push(central);
  }
  if (centrals.length !== end.entries) {
    throw new ZipError(
      `end of central directory record says ${end.entries} entries, the central directory has ${centrals.length}`,
    );
  }
  return centrals.sort((a, b) => a.offset - b.offset);
}

/**
 * Validates every entry from its central directory header (name, method and flags, file type) and the
 * declared total size against the limits, before any data is read; returns the directory entries.
 */
function checkCentralEntries(centrals: CentralEntry[], budget: Budget): Set<CentralEntry> {
  const names = new NameRegistry({ allowVcsMetadata: budget.allowVcsMetadata });
  const dirs = new Set<CentralEntry>();
  let declared = 0;
  for (const central of centrals) {
    const path = withoutDotSegments(central.name);
    // `./` is the archive's own folder: nothing to make
    if ((path === "" && central.name !== "") || names.add(path)) dirs.add(central);
    checkMethodAndFlags(central.name, central.method, central.flags);
    checkFileType(central.name, central.externalAttributes);
    declared += central.size;
  }
  budget.checkDeclared(declared);
  return dirs;
}

/** Fails unless the entry's local header is at `expected`, where the previous entry ended. */
async function checkContiguous(file: PositionedFile, central: CentralEntry, expected: number): Promise<void> {
  if (central.offset > expected) await refuseHiddenEntry(file, expected);
  if (central.offset !== expected) {
    throw zipError(
      central.name,
      central.offset < expected
        ? `overlaps the previous entry (local header at offset ${central.offset}, previous entry ends at ${expected})`
        : `${central.offset - expected} unlisted bytes before its local header (offset ${central.offset})`,
    );
  }
}

/**
 * Extracts one entry through its local header, which must agree with its central directory header, and
 * returns the offset where the entry (with its data descriptor) ends.
 */
async function extractEntry(
  file: PositionedFile,
  central: CentralEntry,
  isDir: boolean,
  cdOffset: number,
  sink: ZipEntrySink,
  budget: Budget,
): Promise<number> {
  const { name } = central;
  // Read no further than this entry (its header, data, a descriptor and the next signature).
  const fixed = await file.read(central.offset, 30);
  if (fixed.length < 30 || u32(fixed, 0) !== SIG_LOCAL) {
    throw zipError(name, `no local header at offset ${central.offset}`);
  }
  const dataEnd = central.offset + 30 + u16(fixed, 26) + u16(fixed, 28) + central.compressedSize;
  const input = fileReader(file, central.offset, Math.min(cdOffset, dataEnd + 28), budget.signal);
  const local = await readLocalHeader(input);
  compareLocal(local, central);
  if (input.position + central.compressedSize > cdOffset) {
    throw zipError(name, "compressed data runs into the central directory");
  }
  await deliver(
    sink,
    input,
    {
      name,
      path: withoutDotSegments(name).replace(/\/$/, ""),
      method: central.method,
      compressedSize: central.compressedSize,
      declaredSize: central.size,
      declaredCrc: central.crc,
      descriptor: (local.flags & FLAG_DESCRIPTOR) !== 0,
      zip64: local.zip64,
      flags: local.flags,
    },
    isDir,
    budget,
  );
  return input.position;
}

/**
 * Checks a local header against its central directory header: name, method and flags, and (unless a data
 * descriptor follows, when the local header has none) CRC-32 and sizes.
 */
function compareLocal(local: LocalHeader, central: CentralEntry): void {
  const { name } = central;
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
}

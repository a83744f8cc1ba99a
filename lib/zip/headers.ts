/**
 * The archive's records: local file headers, central directory headers, the end of central directory
 * record and its ZIP64 counterpart (with their ZIP64 extra fields), and the checks on what they declare:
 * compression method and flags, Unix file type, and agreement between an entry's local and central headers.
 *
 * @module
 */

import type { ByteReader } from "./byte_reader.ts";
import { type BodyResult, OWN_DECODERS } from "./entry_body.ts";
import { hex32, shown, ZipError, zipError } from "./errors.ts";
import {
  EXTRA_ZIP64,
  extraField,
  FLAG_DESCRIPTOR,
  FLAG_ENCRYPTED,
  FLAG_MASKED_HEADERS,
  FLAG_STRONG_ENCRYPTION,
  indexOfSignature,
  SIG_CENTRAL,
  SIG_EOCD,
  SIG_LOCAL,
  SIG_ZIP64_EOCD,
  SIG_ZIP64_LOCATOR,
  u16,
  U16_MAX,
  u32,
  U32_MAX,
  u64,
} from "./format.ts";
import { decodeName } from "./names.ts";

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

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

function methodName(method: number): string {
  return METHOD_NAMES[method] ? `${method} (${METHOD_NAMES[method]})` : `${method}`;
}

/**
 * Refuses encrypted entries and compression methods other than STORED (0), DEFLATE (8) and those with decoders
 * of lakerun's own ({@link OWN_DECODERS}).
 */
export function checkMethodAndFlags(name: string, method: number, flags: number): void {
  if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS) || method === 99) {
    throw zipError(name, "encrypted entries are not supported");
  }
  if (method !== 0 && method !== 8 && !(method in OWN_DECODERS)) {
    throw zipError(name, `unsupported compression method ${methodName(method)}`);
  }
}

/**
 * Checks the Unix file type in a central directory header's external attributes (high 16 bits). Symbolic
 * links are refused, and a directory mode on a name without a trailing `/`. Any other type is extracted as a
 * regular file holding the entry's data, as unzip does: `zip` reading its standard input records the pipe's
 * mode (FIFO, `0o10600`) on what is an ordinary file, and a file with data is a file.
 */
export function checkFileType(name: string, externalAttributes: number): void {
  const mode = externalAttributes >>> 16;
  const type = mode & S_IFMT;
  const isDir = name.endsWith("/");
  if (type === S_IFLNK) throw zipError(name, "symbolic link");
  if (type === S_IFDIR && !isDir) {
    throw zipError(name, "file mode says directory but the name does not end with '/'");
  }
}

/** A local file header, with its ZIP64 sizes applied. */
export interface LocalHeader {
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

/** A header's fixed size, and the length of what follows it (names, extra fields, comment) from its fixed part. */
interface HeaderLayout {
  size: number;
  variable(fixed: Uint8Array): number;
}

const LOCAL_HEADER: HeaderLayout = { size: 30, variable: (fixed) => u16(fixed, 26) + u16(fixed, 28) };
const CENTRAL_HEADER: HeaderLayout = {
  size: 46,
  variable: (fixed) => u16(fixed, 28) + u16(fixed, 30) + u16(fixed, 32),
};

/** A header's fixed part and the variable part after it, consumed once the reader has them. */
async function readHeaderParts(
  input: ByteReader,
  layout: HeaderLayout,
  where: () => string,
): Promise<[Uint8Array, Uint8Array]> {
  // a copy: the reader's next wait may reuse the buffer a view of it would be in
  const fixed = (await input.need(layout.size, undefined, where)).slice();
  return [fixed, await input.need(layout.variable(fixed), undefined, where)];
}

/**
 * {@link readHeaderParts} without waiting: the parts when all of the header is buffered (consumed), else
 * `undefined` (nothing consumed).
 */
function takeHeaderParts(input: ByteReader, layout: HeaderLayout): [Uint8Array, Uint8Array] | undefined {
  if (!input.has(layout.size)) return undefined;
  const variable = layout.variable(input.peek(layout.size));
  if (!input.has(layout.size + variable)) return undefined;
  const fixed = input.take(layout.size);
  return [fixed, input.take(variable)];
}

/** Reads the local file header at the reader's position (its signature already checked by the caller). */
export async function readLocalHeader(input: ByteReader): Promise<LocalHeader> {
  const offset = input.position;
  const where = () => `the local header at offset ${offset}`;
  const [fixed, rest] = await readHeaderParts(input, LOCAL_HEADER, where);
  return localHeaderOf(offset, fixed, rest);
}

/**
 * The local header at the reader's position when all of it is buffered (consumed), else `undefined` (nothing
 * consumed): {@link readLocalHeader} without waiting.
 */
export function takeLocalHeader(input: ByteReader): LocalHeader | undefined {
  const offset = input.position;
  const parts = takeHeaderParts(input, LOCAL_HEADER);
  return parts && localHeaderOf(offset, parts[0], parts[1]);
}

/** A local header from its 30 fixed bytes and its name and extra field. */
function localHeaderOf(offset: number, fixed: Uint8Array, rest: Uint8Array): LocalHeader {
  const flags = u16(fixed, 6);
  const method = u16(fixed, 8);
  let crc = u32(fixed, 14);
  let compressedSize = u32(fixed, 18);
  let size = u32(fixed, 22);
  const nameLength = u16(fixed, 26);
  const extra = rest.subarray(nameLength);
  const name = decodeName(rest.subarray(0, nameLength), flags, extra);
  const zip64Field = extraField(extra, EXTRA_ZIP64);
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

/** A central directory header, with its ZIP64 values applied. */
export interface CentralEntry {
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
export async function readCentralHeader(input: ByteReader): Promise<CentralEntry> {
  const headerAt = input.position;
  const where = () => `the central directory header at offset ${headerAt}`;
  const [fixed, rest] = await readHeaderParts(input, CENTRAL_HEADER, where);
  return centralHeaderOf(fixed, rest);
}

/**
 * The central directory header at the reader's position when all of it is buffered (consumed), else
 * `undefined` (nothing consumed): {@link readCentralHeader} without waiting.
 */
export function takeCentralHeader(input: ByteReader): CentralEntry | undefined {
  const parts = takeHeaderParts(input, CENTRAL_HEADER);
  return parts && centralHeaderOf(parts[0], parts[1]);
}

/** A central directory header from its 46 fixed bytes and its name, extra field and comment. */
function centralHeaderOf(fixed: Uint8Array, rest: Uint8Array): CentralEntry {
  const flags = u16(fixed, 8);
  const method = u16(fixed, 10);
  const crc = u32(fixed, 16);
  let compressedSize = u32(fixed, 20);
  let size = u32(fixed, 24);
  const nameLength = u16(fixed, 28);
  const extraLength = u16(fixed, 30);
  let disk = u16(fixed, 34);
  const externalAttributes = u32(fixed, 38);
  let offset = u32(fixed, 42);
  const extra = rest.subarray(nameLength, nameLength + extraLength);
  const name = decodeName(rest.subarray(0, nameLength), flags, extra);
  if (size === U32_MAX || compressedSize === U32_MAX || offset === U32_MAX || disk === U16_MAX) {
    const zip64Field = extraField(extra, EXTRA_ZIP64);
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

/** Where the central directory is and what it holds, as an end record declares it. */
export interface EndRecord {
  entries: number;
  cdSize: number;
  cdOffset: number;
  commentLength: number;
}

/**
 * Parses the 22 fixed bytes of an end of central directory record; `saturated` says some value defers to
 * the ZIP64 record.
 */
export function parseEocd(b: Uint8Array): EndRecord & { saturated: boolean } {
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
export function parseZip64Eocd(b: Uint8Array): EndRecord & { length: number } {
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
export function endValues(eocd: EndRecord & { saturated: boolean }, zip64: EndRecord | undefined): EndRecord {
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
export function compareCentral(
  local: Pick<LocalHeader, "name" | "method" | "flags"> & BodyResult,
  central: CentralEntry,
): void {
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

/** Most bytes accepted after the end record (a newline, padding to a block). */
export const MAX_TRAILING = 64 * 1024;

/**
 * Why bytes found after an archive's end record cannot be ignored, or `undefined` when they can: they hold a
 * zip record signature, so another reader could see a second archive (or other entries) there.
 */
export function trailingDataProblem(trailing: Uint8Array): string | undefined {
  for (const signature of [SIG_LOCAL, SIG_CENTRAL, SIG_EOCD, SIG_ZIP64_EOCD, SIG_ZIP64_LOCATOR]) {
    const at = indexOfSignature(trailing, signature);
    if (at >= 0) return `a zip record signature ${hex32(signature)} ${at} bytes after the end record`;
  }
  return undefined;
}

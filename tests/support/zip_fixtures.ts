/**
 * A small ZIP writer for tests, able to forge hostile archives, plus sinks and stream helpers.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32, deflateRawSync } from "node:zlib";
import type { ZipEntrySink } from "../../lib/zip/mod.ts";

const encoder = new TextEncoder();

/** Values that replace what the writer would compute, to make a header lie. */
export interface Lies {
  crc?: number;
  compressedSize?: number;
  size?: number;
  method?: number;
  name?: string;
  flags?: number;
}

/**
 * One entry to write.
 *
 * @example
 * ```ts ignore
 * buildZip([{ name: "a.txt", data: "hello" }, { name: "dir/" }, { name: "b.bin", data: bytes, method: 0 }]);
 * ```
 */
export interface FixtureEntry {
  name: string;
  /** Raw name bytes (instead of the UTF-8 encoding of `name`). */
  nameBytes?: Uint8Array;
  data?: Uint8Array | string;
  /** 0 STORED, 8 DEFLATE (default), anything else is written with `data` as it is. */
  method?: number;
  /** Write sizes and CRC in a data descriptor (flag bit 3) instead of the local header. */
  descriptor?: boolean;
  /** Whether the descriptor starts with its optional signature (default true). */
  descriptorSignature?: boolean;
  /** ZIP64 extra fields (sizes 0xFFFFFFFF in the headers) and 8-byte descriptor sizes. */
  zip64?: boolean;
  /** General-purpose flag bit 11 (default: when the name is not ASCII and no nameBytes are given). */
  utf8?: boolean;
  /** More general-purpose flag bits. */
  flags?: number;
  /** Unix mode (e.g. 0o120777 for a symlink) stored in the central directory's external attributes. */
  mode?: number;
  /** Compressed bytes to write instead of compressing `data`. */
  compressed?: Uint8Array;
  /** An extra field for both headers (e.g. an Info-ZIP Unicode Path field). */
  extra?: Uint8Array;
  /** Lies in the local header. */
  local?: Lies;
  /** Lies in the data descriptor. */
  descriptorLies?: Lies;
  /** Lies in the central directory header; `omit` leaves the entry out of the central directory. */
  central?: Lies & { omit?: boolean; offset?: number };
}

/** Archive-level options. */
export interface ZipOptions {
  /** Central directory headers for entries that have no local header. */
  phantomCentral?: { name: string; offset: number; size?: number }[];
  /** Always write ZIP64 end of central directory record and locator. */
  zip64Eocd?: boolean;
  comment?: string;
  /** Lies in the end of central directory record. */
  eocd?: { entries?: number; cdSize?: number; cdOffset?: number };
  /** Bytes appended after the end of central directory record. */
  trailing?: Uint8Array;
}

class Writer {
  #parts: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array) {
    this.#parts.push(b);
    this.length += b.length;
  }
  u16(n: number) {
    this.bytes(new Uint8Array([n & 0xff, (n >>> 8) & 0xff]));
  }
  u32(n: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n >>> 0, true);
    this.bytes(b);
  }
  u64(n: number) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    this.bytes(b);
  }
  result(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function extraField(id: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  out[0] = id & 0xff;
  out[1] = id >>> 8;
  out[2] = body.length & 0xff;
  out[3] = body.length >>> 8;
  out.set(body, 4);
  return out;
}

function u64Bytes(...values: number[]): Uint8Array {
  const b = new Uint8Array(8 * values.length);
  values.forEach((v, i) => new DataView(b.buffer).setBigUint64(8 * i, BigInt(v), true));
  return b;
}

/** The bytes of `parts`, one after the other. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An Info-ZIP Unicode Path extra field (0x7075) for a header whose raw name is `raw`. */
export function unicodePathExtra(raw: Uint8Array, name: string): Uint8Array {
  const body = new Uint8Array(5 + encoder.encode(name).length);
  body[0] = 1;
  new DataView(body.buffer).setUint32(1, crc32(raw), true);
  body.set(encoder.encode(name), 5);
  return extraField(0x7075, body);
}

/**
 * Builds a zip archive in memory.
 *
 * @example
 * ```ts ignore
 * const zip = buildZip([{ name: "../evil.txt", data: "x" }]);
 * ```
 */
export function buildZip(entries: FixtureEntry[], options: ZipOptions = {}): Uint8Array {
  const w = new Writer();
  const centrals: {
    entry: FixtureEntry;
    offset: number;
    crc: number;
    csize: number;
    size: number;
    nameBytes: Uint8Array;
    flags: number;
    method: number;
  }[] = [];
  for (const entry of entries) {
    const data = typeof entry.data === "string"
      ? encoder.encode(entry.data)
      : entry.data ?? new Uint8Array(0);
    const method = entry.method ?? 8;
    const compressed = entry.compressed ?? (method === 8 ? new Uint8Array(deflateRawSync(data)) : data);
    const crc = crc32(data);
    const nameBytes = entry.nameBytes ?? encoder.encode(entry.name);
    // deno-lint-ignore no-control-regex
    const utf8 = entry.utf8 ?? (!entry.nameBytes && /[^\u0000-\u007f]/.test(entry.name));
    const flags = (entry.descriptor ? 0x8 : 0) | (utf8 ? 0x800 : 0) | (entry.flags ?? 0);
    const offset = w.length;
    const lie = entry.local ?? {};
    const localName = lie.name !== undefined ? encoder.encode(lie.name) : nameBytes;
    const zip64 = entry.zip64 === true;
    const localCrc = entry.descriptor ? 0 : crc;
    const localCsize = entry.descriptor ? 0 : compressed.length;
    const localSize = entry.descriptor ? 0 : data.length;
    const extra = concat(
      zip64
        ? extraField(1, u64Bytes(lie.size ?? localSize, lie.compressedSize ?? localCsize))
        : new Uint8Array(0),
      entry.extra ?? new Uint8Array(0),
    );
    w.u32(0x04034b50);
    w.u16(zip64 ? 45 : 20);
    w.u16(lie.flags ?? flags);
    w.u16(lie.method ?? method);
    w.u16(0); // time
    w.u16(0x21); // date 1980-01-01
    w.u32(lie.crc ?? localCrc);
    w.u32(zip64 ? 0xffffffff : lie.compressedSize ?? localCsize);
    w.u32(zip64 ? 0xffffffff : lie.size ?? localSize);
    w.u16(localName.length);
    w.u16(extra.length);
    w.bytes(localName);
    w.bytes(extra);
    w.bytes(compressed);
    if (entry.descriptor) {
      const d = entry.descriptorLies ?? {};
      if (entry.descriptorSignature !== false) w.u32(0x08074b50);
      w.u32(d.crc ?? crc);
      if (zip64) {
        w.u64(d.compressedSize ?? compressed.length);
        w.u64(d.size ?? data.length);
      } else {
        w.u32(d.compressedSize ?? compressed.length);
        w.u32(d.size ?? data.length);
      }
    }
    centrals.push({
      entry,
      offset,
      crc,
      csize: compressed.length,
      size: data.length,
      nameBytes,
      flags,
      method,
    });
  }

  const cdStart = w.length;
  let count = 0;
  const central = (
    nameBytes: Uint8Array,
    flags: number,
    method: number,
    crc: number,
    csize: number,
    size: number,
    offset: number,
    mode: number | undefined,
    zip64: boolean,
    extraIn: Uint8Array,
  ) => {
    const extra = concat(zip64 ? extraField(1, u64Bytes(size, csize, offset)) : new Uint8Array(0), extraIn);
    w.u32(0x02014b50);
    w.u16(mode !== undefined ? (3 << 8) | 45 : 45); // made by: Unix when a mode is given
    w.u16(zip64 ? 45 : 20);
    w.u16(flags);
    w.u16(method);
    w.u16(0);
    w.u16(0x21);
    w.u32(crc);
    w.u32(zip64 ? 0xffffffff : csize);
    w.u32(zip64 ? 0xffffffff : size);
    w.u16(nameBytes.length);
    w.u16(extra.length);
    w.u16(0); // comment
    w.u16(0); // disk
    w.u16(0); // internal attributes
    w.u32(mode !== undefined ? (mode << 16) >>> 0 : 0);
    w.u32(zip64 ? 0xffffffff : offset);
    w.bytes(nameBytes);
    w.bytes(extra);
    count++;
  };
  for (const c of centrals) {
    const lie = c.entry.central ?? {};
    if (lie.omit) continue;
    central(
      lie.name !== undefined ? encoder.encode(lie.name) : c.nameBytes,
      lie.flags ?? c.flags,
      lie.method ?? c.method,
      lie.crc ?? c.crc,
      lie.compressedSize ?? c.csize,
      lie.size ?? c.size,
      lie.offset ?? c.offset,
      c.entry.mode,
      c.entry.zip64 === true,
      c.entry.extra ?? new Uint8Array(0),
    );
  }
  for (const p of options.phantomCentral ?? []) {
    central(
      encoder.encode(p.name),
      0,
      0,
      0,
      p.size ?? 0,
      p.size ?? 0,
      p.offset,
      undefined,
      false,
      new Uint8Array(0),
    );
  }
  const cdSize = w.length - cdStart;
  const e = options.eocd ?? {};
  if (options.zip64Eocd) {
    const zip64At = w.length;
    w.u32(0x06064b50);
    w.u64(44);
    w.u16(45);
    w.u16(45);
    w.u32(0);
    w.u32(0);
    w.u64(e.entries ?? count);
    w.u64(e.entries ?? count);
    w.u64(e.cdSize ?? cdSize);
    w.u64(e.cdOffset ?? cdStart);
    w.u32(0x07064b50);
    w.u32(0);
    w.u64(zip64At);
    w.u32(1);
  }
  const comment = encoder.encode(options.comment ?? "");
  w.u32(0x06054b50);
  w.u16(0);
  w.u16(0);
  w.u16(options.zip64Eocd ? 0xffff : e.entries ?? count);
  w.u16(options.zip64Eocd ? 0xffff : e.entries ?? count);
  w.u32(options.zip64Eocd ? 0xffffffff : e.cdSize ?? cdSize);
  w.u32(options.zip64Eocd ? 0xffffffff : e.cdOffset ?? cdStart);
  w.u16(comment.length);
  w.bytes(comment);
  if (options.trailing) w.bytes(options.trailing);
  return w.result();
}

/** The next chunk's size, from a fixed size, a list of sizes (repeated) or a size function. */
function chunkSizes(chunk: number | number[] | (() => number)): () => number {
  let i = 0;
  return () =>
    typeof chunk === "number" ? chunk : typeof chunk === "function" ? chunk() : chunk[i++ % chunk.length];
}

/** A stream of `bytes` cut into chunks: a fixed size, a list of sizes (repeated), or a size function. */
export function streamOf(
  bytes: Uint8Array,
  chunk: number | number[] | (() => number) = 64 * 1024,
): ReadableStream<Uint8Array> {
  let at = 0;
  const next = chunkSizes(chunk);
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      const n = Math.max(1, next());
      controller.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

/**
 * Like {@link streamOf}, as a byte stream (`type: "bytes"`), which a reader can read into its own buffers
 * (BYOB), as it reads a fetch response's body; a BYOB read gets at most the chunk's size.
 *
 * @example
 * ```ts ignore
 * const reader = byteStreamOf(zip, 1000).getReader({ mode: "byob" });
 * const { value } = await reader.read(new Uint8Array(4096)); // 1000 bytes, in the buffer given
 * ```
 */
export function byteStreamOf(
  bytes: Uint8Array,
  chunk: number | number[] | (() => number) = 64 * 1024,
): ReadableStream<Uint8Array> {
  let at = 0;
  const next = chunkSizes(chunk);
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const request = controller.byobRequest;
      if (at >= bytes.length) {
        controller.close();
        request?.respond(0);
        return;
      }
      const size = Math.max(1, next());
      if (request?.view) {
        const view = new Uint8Array(request.view.buffer, request.view.byteOffset, request.view.byteLength);
        const n = Math.min(size, view.length, bytes.length - at);
        view.set(bytes.subarray(at, at + n));
        at += n;
        request.respond(n);
      } else {
        controller.enqueue(bytes.slice(at, at + size));
        at += size;
      }
    },
  });
}

/** A pseudo-random generator (mulberry32), so that "random" chunking is reproducible from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pseudo-random bytes (incompressible). */
export function randomBytes(n: number, seed = 1): Uint8Array {
  // xorshift32, a word at a time: incompressible, reproducible, fast enough for a GiB
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new Uint8Array(words.buffer, 0, n);
}

/** CSV-like text of about `n` bytes. */
export function csvText(n: number, seed = 7): Uint8Array {
  const random = seededRandom(seed);
  const lines: string[] = ["id,region,amount,ratio,label"];
  let length = lines[0].length + 1;
  for (let i = 0; length < n; i++) {
    const region = (random() * 50) | 0;
    const amount = (random() * 1e6).toFixed(2);
    const line = `${i},R${region},${amount},${random().toFixed(6)},item-${(random() * 1000) | 0}`;
    lines.push(line);
    length += line.length + 1;
  }
  return encoder.encode(lines.join("\n") + "\n").subarray(0, n);
}

/** Lower-case hex sha256. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A sink that keeps every entry in memory, recording the calls it got. */
export interface MemorySink extends ZipEntrySink {
  files: Map<string, Uint8Array>;
  /** Paths in call order, with the info given. */
  calls: { path: string; uncompressedSize?: number }[];
  /** Bytes received per path, including entries whose stream later failed. */
  received: Map<string, number>;
}

/**
 * A sink that reads each entry completely into memory (tests only).
 *
 * @example
 * ```ts ignore
 * const sink = memorySink();
 * await extractZipStream(streamOf(zip), sink);
 * sink.files.get("a.txt");
 * ```
 */
export function memorySink(options: { readChunkDelayMs?: number } = {}): MemorySink {
  const files = new Map<string, Uint8Array>();
  const calls: MemorySink["calls"] = [];
  const received = new Map<string, number>();
  return {
    files,
    calls,
    received,
    async writeEntry(path, data, info) {
      calls.push({ path, uncompressedSize: info.uncompressedSize });
      received.set(path, 0);
      const parts: Uint8Array[] = [];
      for await (const chunk of data) {
        parts.push(chunk);
        received.set(path, received.get(path)! + chunk.length);
        if (options.readChunkDelayMs) await new Promise((r) => setTimeout(r, options.readChunkDelayMs));
      }
      files.set(path, concat(...parts));
    },
  };
}

/** A sink that only hashes what it reads (for large entries). */
export function hashingSink(): ZipEntrySink & { hashes: Map<string, string>; sizes: Map<string, number> } {
  const hashes = new Map<string, string>();
  const sizes = new Map<string, number>();
  return {
    hashes,
    sizes,
    async writeEntry(path, data) {
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of data) {
        hash.update(chunk);
        size += chunk.length;
      }
      hashes.set(path, hash.digest("hex"));
      sizes.set(path, size);
    },
  };
}

/**
 * The small survey-like archive the download tests share: two CSV files (one in nested folders), an empty
 * file and a folder entry, with the sha256 of every file it holds.
 *
 * @example
 * ```ts ignore
 * const { archive, files } = surveyArchive();
 * files["sales.csv"]; // sha256 of sales.csv
 * ```
 */
export function surveyArchive(): {
  archive: Uint8Array;
  sales: Uint8Array;
  files: Record<string, string>;
} {
  const sales = csvText(300_000, 1);
  const regions = csvText(50_000, 2);
  const archive = buildZip([
    { name: "sales.csv", data: sales },
    { name: "nested/deeper/regions.csv", data: regions },
    { name: "empty.csv", data: "" },
    { name: "nested/" },
  ]);
  const files = {
    "empty.csv": sha256(new Uint8Array()),
    "nested/deeper/regions.csv": sha256(regions),
    "sales.csv": sha256(sales),
  };
  return { archive, sales, files };
}

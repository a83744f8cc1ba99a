/**
 * One entry's data: {@link EntryBody}, a pull-driven ReadableStream that verifies the entry's sizes and
 * CRC-32 (and its data descriptor) before it closes, and {@link deliver}, which hands it to the sink.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import type { Budget } from "./budget.ts";
import { PIECE } from "./byte_reader.ts";
import type { ByteReader } from "./byte_reader.ts";
import { hex32, truncated, ZipError, zipError } from "./errors.ts";
import { SIG_CENTRAL, SIG_DESCRIPTOR, SIG_EOCD, SIG_LOCAL, SIG_ZIP64_EOCD, u32 } from "./format.ts";
import { Inflater, inflateWhole } from "./inflater.ts";
import { bunzip2 } from "./bunzip2.ts";
import { DecoderReader } from "./decoder_reader.ts";
import type { Decoder } from "./decoder_reader.ts";
import { inflate64 } from "./inflate64.ts";
import { explode, unshrink } from "./legacy.ts";
import type { EntryWriter, ZipEntrySink } from "./types.ts";

/** Bytes an entry's stream may queue ahead of the sink. */
const ENTRY_HIGH_WATER = 512 * 1024;

/**
 * Entries whose compressed and declared sizes are both known and at most this are read and inflated whole,
 * with one call, and handed to the sink as bytes: no stream, no zlib stream object, no 256 KiB output buffer
 * per entry, which made an archive of many small files cost ~0.2 ms per entry before a byte was written.
 */
export const SMALL_ENTRY = 1024 * 1024;

/**
 * The methods decoded by lakerun's own decoders, by method number: Deflate64 (9) and BZip2 (12). Their entries
 * are always streamed, and need their compressed size before their data.
 */
export const OWN_DECODERS: Readonly<Record<number, Decoder>> = {
  1: unshrink,
  6: explode,
  9: inflate64,
  12: bunzip2,
};
/** The names of the methods with decoders of lakerun's own, as messages show them. */
export const OWN_DECODER_NAMES: Readonly<Record<number, string>> = {
  1: "Shrink",
  6: "Implode",
  9: "Deflate64",
  12: "BZip2",
};

/** What is known about an entry's data before reading it. */
export interface BodyPlan {
  /** The entry's name as the archive has it (messages show it). */
  name: string;
  /** Where it goes: the validated relative path without `.` segments (and the trailing `/` of a folder). */
  path: string;
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
  /** The local header's general purpose flags (Implode's window and trees are told there). */
  flags?: number;
}

/** What an entry's data turned out to be. */
export interface BodyResult {
  crc: number;
  compressedSize: number;
  size: number;
}

/**
 * The data of one entry as a ReadableStream that reads (and inflates) from the archive only as the sink
 * pulls, counts the bytes against the {@link Budget}, and errors instead of closing when the sizes, CRC-32
 * or data descriptor are wrong. Once the stream has closed, `result` holds what the data gave.
 */
class EntryBody {
  #stream: ReadableStream<Uint8Array> | undefined;
  /** What the data gave, once the stream has closed. */
  result: BodyResult | undefined;
  /** Why the stream errored, once it has. */
  error: unknown;
  readonly #input: ByteReader;
  readonly #plan: BodyPlan;
  readonly #budget: Budget;
  readonly #inflater: Inflater | DecoderReader | undefined;
  #remaining: number;
  #crc = 0;
  #size = 0;

  /**
   * Reads the data `plan` describes from `input`, which is at its first byte; with `reuseOutput`, inflated
   * chunks share one buffer (for {@link EntryBody.writeTo}, whose writer consumes each chunk at once).
   */
  constructor(input: ByteReader, plan: BodyPlan, budget: Budget, options: { reuseOutput?: boolean } = {}) {
    this.#input = input;
    this.#plan = plan;
    this.#budget = budget;
    this.#remaining = plan.compressedSize ?? 0;
    // A deflated entry with no compressed bytes at all (some writers do that for empty files) is empty.
    const inflate = plan.method === 8 && plan.compressedSize !== 0;
    this.#inflater = inflate
      ? new Inflater(input, plan.name, plan.compressedSize, options)
      : plan.method in OWN_DECODERS
      ? new DecoderReader(input, plan.name, plan.compressedSize!, OWN_DECODERS[plan.method], {
        size: plan.declaredSize,
        flags: plan.flags,
      })
      : undefined;
  }

  /**
   * The entry's (inflated) data, as a stream made on first use (it starts reading at once): use either it or
   * {@link EntryBody.writeTo}, never both.
   */
  get stream(): ReadableStream<Uint8Array> {
    return this.#stream ??= new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.abandon(),
    }, new ByteLengthQueuingStrategy({ highWaterMark: ENTRY_HIGH_WATER }));
  }

  /** Releases the inflater (when the data will not be read to its end). */
  abandon(): void {
    this.#inflater?.destroy();
  }

  /**
   * Writes the data through `writer` chunk by chunk (no stream), then verifies it; `result` is set on success.
   * A failure of `writer.write` (or of the promise it returned) is thrown as `wrap` makes it; the writer is not
   * closed or aborted here.
   */
  async writeTo(writer: EntryWriter, wrap: (error: unknown) => unknown): Promise<BodyResult> {
    // the write of one chunk goes on while the next is inflated into the inflater's other buffer
    let writing: Promise<unknown> | void = undefined;
    const written = async () => {
      const pending = writing;
      writing = undefined;
      await pending?.catch((e) => Promise.reject(wrap(e)));
    };
    try {
      for (let chunk = await this.#next(); chunk; chunk = await this.#next()) {
        await written();
        try {
          writing = writer.write(chunk);
        } catch (e) {
          throw wrap(e);
        }
        // stored data is a view of the archive reader's bytes, which its next read may reuse
        if (!this.#inflater) await written();
      }
      await written();
      return this.result = await this.#finish();
    } catch (e) {
      await (writing as Promise<unknown> | undefined)?.catch(() => {});
      this.error = e;
      this.abandon();
      throw e;
    }
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
      // a stream's reader keeps its chunks: not views of a slab the archive reader will read into again
      if (this.#stream && this.#input.reusesBuffers) out = out.slice();
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
          `${
            OWN_DECODER_NAMES[plan.method]?.toLowerCase() ?? "deflate"
          } data ends after ${compressedSize} of its ${plan.compressedSize} compressed bytes`,
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

/**
 * Hands one entry's data to the sink (or drains a directory entry and tells the sink about the folder) and
 * returns what the data gave. A failure of the sink's own (a file name too long for the file system, a full
 * disk) is rethrown as a {@link ZipError} naming the entry.
 */
export async function deliver(
  sink: ZipEntrySink,
  input: ByteReader,
  plan: BodyPlan,
  isDir: boolean,
  budget: Budget,
): Promise<BodyResult> {
  const whole = await readWhole(input, plan, budget);
  if (whole) {
    if (isDir) {
      if (whole.data.length > 0) throw zipError(plan.name, "directory entry with data");
      if (plan.path !== "") await toSink(plan, budget, () => sink.makeFolder?.(plan.path));
    } else if (sink.writeEntryBytes) {
      await toSink(plan, budget, () => sink.writeEntryBytes!(plan.path, whole.data));
    } else {
      await deliverOneChunk(sink, plan, whole.data, budget);
    }
    return whole.result;
  }
  if (!isDir && sink.openEntry) return await writeThrough(sink.openEntry, input, plan, budget);
  const body = new EntryBody(input, plan, budget);
  if (isDir) {
    try {
      for await (const chunk of body.stream) {
        if (chunk.length > 0) throw zipError(plan.name, "directory entry with data");
      }
    } finally {
      body.abandon();
    }
    if (plan.path !== "") await toSink(plan, budget, () => sink.makeFolder?.(plan.path));
    return body.result!;
  }
  try {
    await sink.writeEntry(plan.path, body.stream, { uncompressedSize: plan.declaredSize });
  } catch (e) {
    body.abandon();
    throw body.error ?? sinkError(plan, budget, e);
  }
  if (body.error !== undefined) throw body.error;
  if (!body.result) {
    body.abandon();
    throw zipError(plan.name, "the sink returned before reading all of the entry's data");
  }
  return body.result;
}

/**
 * Writes an entry through the writer the sink opens for it, inflating into one reused buffer; the writer is
 * closed once the data is verified and aborted on any failure.
 */
async function writeThrough(
  open: NonNullable<ZipEntrySink["openEntry"]>,
  input: ByteReader,
  plan: BodyPlan,
  budget: Budget,
): Promise<BodyResult> {
  let writer: EntryWriter | undefined;
  await toSink(plan, budget, async () => {
    writer = await open(plan.path, { uncompressedSize: plan.declaredSize });
  });
  const body = new EntryBody(input, plan, budget, { reuseOutput: true });
  try {
    const result = await body.writeTo(writer!, (e) => sinkError(plan, budget, e));
    await toSink(plan, budget, () => writer!.close());
    return result;
  } catch (e) {
    writer!.abort();
    throw e;
  }
}

/** Runs a sink call, naming the entry in what it throws. */
async function toSink(
  plan: BodyPlan,
  budget: Budget,
  call: () => Promise<unknown> | undefined,
): Promise<void> {
  try {
    await call();
  } catch (e) {
    throw sinkError(plan, budget, e);
  }
}

/** A sink's failure as a {@link ZipError} naming the entry (a ZipError or the abort reason as it is). */
function sinkError(plan: BodyPlan | undefined, budget: Budget, e: unknown): unknown {
  if (e instanceof ZipError || (budget.signal?.aborted && e === budget.signal.reason)) return e;
  // a write that ended after its call names its own entry (see ZipEntrySink.finish)
  const entry = typeof (e as { entry?: unknown })?.entry === "string"
    ? (e as { entry: string }).entry
    : plan?.name;
  const message = e instanceof Error ? e.message : String(e);
  return entry === undefined ? new ZipError(message, { cause: e }) : zipError(entry, message, { cause: e });
}

/** Calls the sink's `finish`, its failure reported as {@link deliver} reports one. */
export async function finishSink(sink: ZipEntrySink, budget: Budget): Promise<void> {
  try {
    await sink.finish?.();
  } catch (e) {
    throw sinkError(undefined, budget, e);
  }
}

/** Hands verified bytes to `writeEntry` as a one-chunk stream, which the sink must read to its end. */
async function deliverOneChunk(sink: ZipEntrySink, plan: BodyPlan, data: Uint8Array, budget: Budget) {
  let sent = false;
  let closed = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent && data.length > 0) {
        sent = true;
        controller.enqueue(data);
      } else {
        closed = true;
        controller.close();
      }
    },
  }, { highWaterMark: 0 });
  await toSink(
    plan,
    budget,
    () => sink.writeEntry(plan.path, stream, { uncompressedSize: plan.declaredSize }),
  );
  if (!closed) throw zipError(plan.name, "the sink returned before reading all of the entry's data");
}

/**
 * Reads, inflates and verifies a small entry whole (see {@link SMALL_ENTRY}), then its data descriptor;
 * `undefined` (nothing consumed) for an entry that must be streamed: a larger one, or one whose compressed
 * size is not known before its data. Memory stays bounded: zlib may not produce more than the declared size.
 */
async function readWhole(
  input: ByteReader,
  plan: BodyPlan,
  budget: Budget,
): Promise<{ data: Uint8Array; result: BodyResult } | undefined> {
  const { name, compressedSize, declaredSize } = plan;
  if (plan.method in OWN_DECODERS) return undefined; // always streamed
  if (compressedSize === undefined && plan.descriptor && plan.method === 8) {
    return await readWholeBeforeDescriptor(input, plan, budget);
  }
  if (compressedSize === undefined || declaredSize === undefined) return undefined;
  if (compressedSize > SMALL_ENTRY || declaredSize > SMALL_ENTRY) return undefined;
  budget.checkAbort();
  if (!input.has(compressedSize) && await input.fill(compressedSize) < compressedSize) {
    throw truncated(name, "compressed data");
  }
  const raw = input.take(compressedSize);
  // stored data goes to the sink, which may keep it past the reader's next read into a reused slab
  let data = plan.method === 0 && input.reusesBuffers ? raw.slice() : raw;
  // A deflated entry with no compressed bytes at all (some writers do that for empty files) is empty.
  if (plan.method === 8 && compressedSize > 0) {
    const inflated = inflateWhole(raw, declaredSize, name);
    if (inflated.data.length > declaredSize) {
      throw zipError(name, `data is larger than its declared size (${declaredSize} bytes)`);
    }
    if (!inflated.ended || inflated.used !== compressedSize) {
      const used = inflated.used;
      throw zipError(name, `deflate data ends after ${used} of its ${compressedSize} compressed bytes`);
    }
    data = inflated.data;
  }
  if (data.length > declaredSize) {
    throw zipError(name, `data is larger than its declared size (${declaredSize} bytes)`);
  }
  budget.count(data.length, name);
  const actual = { crc: crc32(data) >>> 0, compressedSize, size: data.length };
  if (actual.size !== declaredSize) {
    throw zipError(name, `size mismatch (declared ${declaredSize} bytes, data has ${actual.size})`);
  }
  if (plan.declaredCrc !== undefined && actual.crc !== plan.declaredCrc) {
    throw zipError(
      name,
      `CRC-32 mismatch (declared ${hex32(plan.declaredCrc)}, data has ${hex32(actual.crc)})`,
    );
  }
  if (plan.descriptor) await readDescriptor(input, name, actual, plan.zip64);
  return { data, result: actual };
}

/**
 * A deflated entry whose sizes only follow its data (a data descriptor, as streaming writers make): when its
 * whole deflate stream is among the next 1 MiB of the archive and inflates to at most 1 MiB, it is inflated
 * with one call (zlib says where the stream ended), then checked against its descriptor. Otherwise, or when
 * zlib fails, nothing is consumed and the entry is streamed, which reports any real error.
 */
async function readWholeBeforeDescriptor(
  input: ByteReader,
  plan: BodyPlan,
  budget: Budget,
): Promise<{ data: Uint8Array; result: BodyResult } | undefined> {
  budget.checkAbort();
  let inflated: { data: Uint8Array; used: number } | undefined;
  // windows that grow only while the deflate stream goes on past them: a small entry costs a small copy
  for (const size of [4 * 1024, 32 * 1024, 256 * 1024, SMALL_ENTRY]) {
    const available = await input.fill(size);
    if (available === 0) return undefined;
    const window = input.peek(Math.min(available, size));
    let whole;
    try {
      // an output buffer for a usual ratio first, 1 MiB only when the data inflates further
      whole = inflateWhole(window, Math.min(SMALL_ENTRY, 16 * size), plan.name);
      if (whole.data.length > 16 * size) whole = inflateWhole(window, SMALL_ENTRY, plan.name);
    } catch {
      return undefined; // invalid: streamed, which reports the error
    }
    if (whole.data.length > SMALL_ENTRY) return undefined; // larger than 1 MiB: streamed
    if (whole.ended) {
      inflated = whole;
      break;
    }
    if (available < size) return undefined; // the archive ends within the stream: streamed, which says so
  }
  if (!inflated) return undefined;
  const compressedSize = inflated.used;
  input.take(compressedSize);
  const data = inflated.data;
  budget.count(data.length, plan.name);
  const actual = { crc: crc32(data) >>> 0, compressedSize, size: data.length };
  await readDescriptor(input, plan.name, actual, plan.zip64);
  return { data, result: actual };
}

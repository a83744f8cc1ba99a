/**
 * Streaming extraction ({@link extractZipStream}): local headers are parsed as the bytes arrive and each
 * entry is inflated while it downloads; the central directory at the end is then checked against what was
 * extracted.
 *
 * @module
 */

import { abortable } from "../async.ts";
import { byobReader } from "../streams.ts";
import { Budget } from "./budget.ts";
import { ByteReader } from "./byte_reader.ts";
import { deliver, finishSink, OWN_DECODER_NAMES, OWN_DECODERS } from "./entry_body.ts";
import type { BodyPlan, BodyResult } from "./entry_body.ts";
import { hex32, notZip, shown, truncated, ZipError, zipError, ZipNeedsRandomAccess } from "./errors.ts";
import {
  FLAG_DESCRIPTOR,
  indexOfSignature,
  SIG_CENTRAL,
  SIG_EOCD,
  SIG_LOCAL,
  SIG_ZIP64_EOCD,
  SIG_ZIP64_LOCATOR,
  u32,
  u64,
} from "./format.ts";
import {
  checkFileType,
  checkMethodAndFlags,
  compareCentral,
  endValues,
  MAX_TRAILING,
  parseEocd,
  parseZip64Eocd,
  readCentralHeader,
  readLocalHeader,
  takeCentralHeader,
  takeLocalHeader,
  trailingDataProblem,
} from "./headers.ts";
import type { EndRecord, LocalHeader } from "./headers.ts";
import { NameRegistry, withoutDotSegments } from "./names.ts";
import type { ZipEntrySink, ZipLimits, ZipSummary } from "./types.ts";

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
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlobWriter, TextReader, ZipWriter } from "@zip.js/zip.js";
 * import { extractZipStream } from "./stream.ts";
 *
 * const writer = new ZipWriter(new BlobWriter("application/zip"));
 * await writer.add("2024/a.csv", new TextReader("a,b\n1,2\n"));
 * const response = new Response(await writer.close()); // e.g. from fetch()
 *
 * const files: Record<string, string> = {};
 * const sink = { writeEntry: async (path: string, data: ReadableStream<Uint8Array>) => {
 *   files[path] = await new Response(data).text();
 * } };
 * const summary = await extractZipStream(response.body!, sink, {
 *   archiveSize: Number(response.headers.get("content-length")) || undefined,
 *   maxBytes: 50 * 2 ** 30,
 * });
 * assert.deepEqual(files, { "2024/a.csv": "a,b\n1,2\n" });
 * assert.deepEqual([summary.entries, summary.bytes], [1, 8]);
 * ```
 */
export async function extractZipStream(
  source: ReadableStream<Uint8Array>,
  sink: ZipEntrySink,
  limits?: ZipLimits,
): Promise<ZipSummary> {
  const signal = limits?.signal;
  signal?.throwIfAborted();
  const byob = byobReader(source);
  const defaultReader = byob ? undefined : source.getReader();
  const streamReader = byob ?? defaultReader!;
  // a byte stream is read into reused slabs: no garbage per chunk
  const input = byob
    ? new ByteReader(
      async (into) => {
        const { done, value } = await abortable(byob.read(into!), signal);
        return done ? null : value;
      },
      0,
      { slabSize: SLAB },
    )
    : new ByteReader(async () => {
      const { done, value } = await abortable(defaultReader!.read(), signal);
      if (done) return null;
      if (!(value instanceof Uint8Array)) {
        throw new TypeError("zip source stream must yield Uint8Array chunks");
      }
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

/** Size of the buffers a byte stream source is read into (a network read rarely returns more). */
const SLAB = 64 * 1024;

/** An entry extracted from its local header, waiting for its central directory header. */
type ExtractedEntry = Pick<LocalHeader, "name" | "method" | "flags"> & BodyResult & { matched: boolean };

/** Where the central directory was found and how many headers it holds. */
interface DirectorySpan {
  start: number;
  end: number;
  count: number;
}

async function extractFromStream(input: ByteReader, sink: ZipEntrySink, budget: Budget): Promise<ZipSummary> {
  await refuseNonZip(input);
  const extracted = new Map<number, ExtractedEntry>();
  const entries = await extractLocalEntries(input, sink, budget, extracted);
  const directory = await matchCentralDirectory(input, extracted, budget);
  await readEndRecords(input, extracted, directory);
  // the sink's last writes went on while the central directory was read
  await finishSink(sink, budget);
  return { entries, bytes: budget.total, archiveBytes: input.position };
}

/** How far into a stream that does not start with a zip record a self-extracting stub's end is looked for. */
const STUB_SCAN = 4 * 1024 * 1024;

/**
 * Fails unless the stream starts with a local header or (for an empty archive) the end record. A stream that
 * has a local header signature within its first 4 MiB may be a self-extracting archive (a program, then the
 * zip): {@link ZipNeedsRandomAccess}, since only the central directory tells where its entries are.
 */
async function refuseNonZip(input: ByteReader): Promise<void> {
  const first = await input.signature();
  if (first === SIG_LOCAL || first === SIG_EOCD) return;
  const available = await input.fill(STUB_SCAN);
  const head = input.peek(Math.min(available, STUB_SCAN));
  const at = indexOfSignature(head, SIG_LOCAL);
  if (at > 0) {
    throw new ZipNeedsRandomAccess(
      `${at} bytes before the first local header (a self-extracting archive?): its central directory says where the entries are`,
    );
  }
  throw notZip(head.subarray(0, 40), available > 40);
}

/**
 * Extracts the local entries in archive order, recording each in `extracted` by its offset, and checks that
 * what follows them is a central directory or end record. Returns the number of file entries.
 */
async function extractLocalEntries(
  input: ByteReader,
  sink: ZipEntrySink,
  budget: Budget,
  extracted: Map<number, ExtractedEntry>,
): Promise<number> {
  const names = new NameRegistry({ allowVcsMetadata: budget.allowVcsMetadata });
  let entries = 0;
  // a signature and a header already buffered (most are) are read without waiting: no promise per call
  while ((input.bufferedSignature() ?? await input.signature()) === SIG_LOCAL) {
    budget.checkAbort();
    const local = takeLocalHeader(input) ?? await readLocalHeader(input);
    const path = withoutDotSegments(local.name);
    // `./` is the archive's own folder: nothing to make
    const isDir = path === "" && local.name !== "" ? true : names.add(path);
    const plan = streamedPlan(local, path);
    if (plan.declaredSize !== undefined) budget.declare(plan.declaredSize, local.name);
    const result = await deliver(sink, input, plan, isDir, budget);
    extracted.set(local.offset, {
      name: local.name,
      method: local.method,
      flags: local.flags,
      crc: result.crc,
      compressedSize: result.compressedSize,
      size: result.size,
      matched: false,
    });
    if (!isDir) entries++;
  }
  const afterEntries = await input.signature();
  if (afterEntries === undefined) throw truncated(undefined, "the central directory");
  if (afterEntries !== SIG_CENTRAL && afterEntries !== SIG_ZIP64_EOCD && afterEntries !== SIG_EOCD) {
    throw new ZipError(
      `unexpected data at offset ${input.position} (${hex32(afterEntries)}) after the last entry`,
    );
  }
  return entries;
}

/**
 * What a local header tells about its entry's data, refusing unsupported entries and those that cannot be
 * delimited while streaming ({@link ZipNeedsRandomAccess}).
 */
function streamedPlan(local: LocalHeader, path: string): BodyPlan {
  const { name, flags, method } = local;
  checkMethodAndFlags(name, method, flags);
  const descriptor = (flags & FLAG_DESCRIPTOR) !== 0;
  if ((method === 0 || method in OWN_DECODERS) && descriptor) {
    const how = method === 0 ? "stored" : `${OWN_DECODER_NAMES[method]}-compressed`;
    const reason = `${how} with a data descriptor, so its end cannot be found while streaming`;
    throw new ZipNeedsRandomAccess(`zip entry '${shown(name)}': ${reason}`, { entry: name });
  }
  return {
    name,
    path: path.endsWith("/") ? path.slice(0, -1) : path,
    method,
    compressedSize: descriptor ? undefined : local.compressedSize,
    declaredSize: descriptor ? undefined : local.size,
    declaredCrc: descriptor ? undefined : local.crc,
    descriptor,
    zip64: local.zip64,
    flags,
  };
}

/** Reads the central directory: every header must match one extracted entry, which it marks as matched. */
async function matchCentralDirectory(
  input: ByteReader,
  extracted: Map<number, ExtractedEntry>,
  budget: Budget,
): Promise<DirectorySpan> {
  const start = input.position;
  let count = 0;
  while ((input.bufferedSignature() ?? await input.signature()) === SIG_CENTRAL) {
    budget.checkAbort();
    const central = takeCentralHeader(input) ?? await readCentralHeader(input);
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
  return { start, end: input.position, count };
}

/**
 * Reads the ZIP64 end records (optional) and the end of central directory record, checks that every
 * extracted entry was listed and that the records describe the central directory that was read, and that
 * nothing follows the archive comment.
 */
async function readEndRecords(
  input: ByteReader,
  extracted: Map<number, ExtractedEntry>,
  directory: DirectorySpan,
): Promise<void> {
  const zip64 = await readZip64End(input);
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
  const { start, end: cdEnd, count } = directory;
  if (end.entries !== count || end.cdSize !== cdEnd - start || end.cdOffset !== start) {
    const says = `${end.entries} entries, ${end.cdSize} bytes at offset ${end.cdOffset}`;
    const found = `${count} entries, ${cdEnd - start} bytes at offset ${start}`;
    throw new ZipError(
      `end of central directory record disagrees with the archive (says ${says}; found ${found})`,
    );
  }
  await checkTrailingData(input);
}

/**
 * Bytes after the end record: a newline or padding some tools add is accepted (unzip accepts it silently), up
 * to 64 KiB of it; anything holding a zip record signature is refused, since another reader could take it for
 * a second archive.
 */
async function checkTrailingData(input: ByteReader): Promise<void> {
  const trailing = await input.fill(MAX_TRAILING + 1);
  if (trailing === 0) return;
  if (trailing > MAX_TRAILING) {
    throw new ZipError(`unexpected data after the end of the archive (more than ${MAX_TRAILING} bytes)`);
  }
  const problem = trailingDataProblem(input.peek(trailing));
  if (problem) throw new ZipError(`unexpected data after the end of the archive (${problem})`);
  input.take(trailing);
}

/** Reads the ZIP64 end of central directory record and its locator, when the reader is at one. */
async function readZip64End(input: ByteReader): Promise<EndRecord | undefined> {
  if (await input.signature() !== SIG_ZIP64_EOCD) return undefined;
  const where = "the ZIP64 end of central directory record";
  const at = input.position;
  const record = parseZip64Eocd(await input.need(56, undefined, where));
  await input.need(record.length - 56, undefined, where);
  const locator = await input.need(20, undefined, "the ZIP64 end of central directory locator");
  if (u32(locator, 0) !== SIG_ZIP64_LOCATOR || u64(locator, 8, "ZIP64 locator offset") !== at) {
    throw new ZipError("bad ZIP64 end of central directory locator");
  }
  return record;
}

import assert from "node:assert/strict";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import {
  extractZipFile,
  extractZipStream,
  type ZipEntrySink,
  ZipError,
  type ZipLimits,
  ZipNeedsRandomAccess,
  type ZipSummary,
} from "../lib/zip/mod.ts";
import {
  buildZip,
  byteStreamOf,
  concat,
  csvText,
  type FixtureEntry,
  hashingSink,
  type MemorySink,
  memorySink,
  randomBytes,
  seededRandom,
  sha256,
  streamOf,
  unicodePathExtra,
} from "./support/zip_fixtures.ts";
import { implode, shrink } from "./support/legacy_zip.ts";
import { ByteReader } from "../lib/zip/byte_reader.ts";
import { readCentralHeader, readLocalHeader } from "../lib/zip/headers.ts";

const encoder = new TextEncoder();
/** `stream`: a plain stream; `bytes`: a byte stream, read into reused buffers; `file`: random access. */
const MODES = ["stream", "bytes", "file"] as const;
type Mode = typeof MODES[number];

/**
 * Extracts `zip` with the streaming API (64 KiB chunks unless told), from a plain or a byte stream, or through
 * a temporary file.
 */
async function extract(
  mode: Mode,
  zip: Uint8Array,
  sink: ZipEntrySink = memorySink(),
  limits?: ZipLimits,
  chunk: number | (() => number) = 64 * 1024,
): Promise<ZipSummary> {
  if (mode === "stream") return await extractZipStream(streamOf(zip, chunk), sink, limits);
  if (mode === "bytes") return await extractZipStream(byteStreamOf(zip, chunk), sink, limits);
  const path = await Deno.makeTempFile({ suffix: ".zip" });
  try {
    await Deno.writeFile(path, zip);
    return await extractZipFile(path, sink, limits);
  } finally {
    await Deno.remove(path);
  }
}

/** Asserts that `promise` rejects with a ZipError (exactly `type` when given) whose message matches. */
async function rejectsZip(promise: Promise<unknown>, pattern: RegExp, type: typeof ZipError = ZipError) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

function bytesOf(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** Asserts that the sink received exactly `expected` (path → content), in this order. */
function assertFiles(sink: MemorySink, expected: [string, Uint8Array | string][]) {
  assert.deepEqual(sink.calls.map((c) => c.path), expected.map(([p]) => p));
  assert.deepEqual([...sink.files.keys()], expected.map(([p]) => p));
  for (const [path, data] of expected) {
    assert.equal(sha256(sink.files.get(path)!), sha256(bytesOf(data)), `content of ${path}`);
  }
}

const mixed: FixtureEntry[] = [
  { name: "readme.txt", data: "hello, lake\n" },
  { name: "data/", method: 0 },
  { name: "data/2024/", method: 0 },
  { name: "data/2024/sales.csv", data: csvText(300_000) },
  { name: "data/2024/raw.bin", data: randomBytes(70_000), method: 0 },
  { name: "data/empty.csv", data: "" },
  { name: "data/empty-stored.csv", data: "", method: 0 },
  { name: "données/été 2024/café.csv", data: "prix\n1,50\n" },
  { name: "日本語/ファイル.txt", data: "テキスト" },
  { name: "emoji-😀.txt", data: "😀" },
];
const mixedFiles = mixed.filter((e) => !e.name.endsWith("/")).map((e) =>
  [e.name, e.data ?? ""] as [string, string]
);

for (const mode of MODES) {
  Deno.test(`${mode}: stored, deflated, empty, nested and Unicode entries come out byte for byte`, async () => {
    const zip = buildZip(mixed);
    const sink = memorySink();
    const summary = await extract(mode, zip, sink);
    assertFiles(sink, mixedFiles);
    const total = mixedFiles.reduce((n, [, d]) => n + bytesOf(d).length, 0);
    assert.deepEqual(summary, { entries: mixedFiles.length, bytes: total, archiveBytes: zip.length });
    assert.equal(sink.calls[0].uncompressedSize, 12);
  });

  Deno.test(`${mode}: data descriptors with and without signature, 4- and 8-byte sizes, ZIP64 extra fields`, async () => {
    const big = csvText(200_000, 3);
    const entries: FixtureEntry[] = [
      { name: "desc-sig.csv", data: big, descriptor: true },
      { name: "desc-nosig.csv", data: big, descriptor: true, descriptorSignature: false },
      { name: "desc-zip64.csv", data: big, descriptor: true, zip64: true },
      { name: "desc-zip64-nosig.csv", data: big, descriptor: true, zip64: true, descriptorSignature: false },
      { name: "zip64-deflated.csv", data: big, zip64: true },
      { name: "zip64-stored.csv", data: "stored with ZIP64 sizes", method: 0, zip64: true },
      { name: "desc-empty.txt", data: "", descriptor: true },
      { name: "last.txt", data: "end", descriptor: true, descriptorSignature: false },
    ];
    for (const zip64Eocd of [false, true]) {
      const sink = memorySink();
      await extract(mode, buildZip(entries, { zip64Eocd, comment: "an archive comment" }), sink);
      assertFiles(sink, entries.map((e) => [e.name, e.data!]));
      // Streaming knows no size before a descriptor; the file API has the central directory's.
      assert.equal(sink.calls[0].uncompressedSize, mode !== "file" ? undefined : big.length);
      assert.equal(sink.calls[4].uncompressedSize, big.length);
    }
  });

  Deno.test(`${mode}: an empty archive extracts to nothing`, async () => {
    const zip = buildZip([]);
    assert.equal(zip.length, 22);
    const sink = memorySink();
    assert.deepEqual(await extract(mode, zip, sink), { entries: 0, bytes: 0, archiveBytes: 22 });
    assert.equal(sink.calls.length, 0);
  });

  Deno.test(`${mode}: directory entries are validated but not passed to the sink`, async () => {
    const sink = memorySink();
    const summary = await extract(
      mode,
      buildZip([{ name: "a/", method: 0 }, { name: "a/b/" }, { name: "c/d/" }]),
      sink,
    );
    assert.equal(summary.entries, 0);
    assert.equal(sink.calls.length, 0);
    await rejectsZip(
      extract(mode, buildZip([{ name: "../up/", method: 0 }])),
      /^zip entry '\.\.\/up\/': '\.\.' segment$/,
    );
    await rejectsZip(
      extract(mode, buildZip([{ name: "dir/", data: "x", method: 0 }])),
      /'dir\/': directory entry with data/,
    );
  });
}

// ---------------------------------------------------------------------------------------------------------
// Hostile archives

const hostileNames: [string, RegExp][] = [
  ["../evil.txt", /^zip entry '\.\.\/evil\.txt': '\.\.' segment$/],
  ["a/../../evil.txt", /'\.\.' segment/],
  ["/etc/passwd", /^zip entry '\/etc\/passwd': absolute path$/],
  ["C:/Windows/evil.dll", /drive letter/],
  ["c:evil.txt", /drive letter/],
  ["a\\..\\evil.txt", /backslash/],
  ["", /^zip entry '': empty path$/],
  ["a\0b.txt", /^zip entry 'a\\u0000b\.txt': NUL character$/],
  ["a//b.txt", /empty path segment/],
  [".lakerun-tmp-123", /reserved temporary name/],
  ["x/.lakerun-tmp-9/y.csv", /reserved temporary name/],
];

for (const mode of MODES) {
  Deno.test(`${mode}: hostile names fail the extraction before any byte of them reaches the sink`, async () => {
    for (const [name, pattern] of hostileNames) {
      for (const method of [0, 8]) {
        const sink = memorySink();
        const zip = buildZip([{ name: "ok.txt", data: "fine" }, { name, data: "evil", method }]);
        await rejectsZip(extract(mode, zip, sink), pattern);
        assert.ok(!sink.calls.some((c) => c.path === name), `${JSON.stringify(name)} reached the sink`);
        // The file API validates everything before extracting anything.
        assert.deepEqual(sink.calls.map((c) => c.path), mode !== "file" ? ["ok.txt"] : []);
      }
    }
  });

  Deno.test(`${mode}: the ZipError names the entry`, async () => {
    await assert.rejects(extract(mode, buildZip([{ name: "../evil.txt", data: "x" }])), (e: unknown) => {
      assert.ok(e instanceof ZipError);
      assert.equal(e.name, "ZipError");
      assert.equal(e.entry, "../evil.txt");
      assert.equal(e.message, "zip entry '../evil.txt': '..' segment");
      return true;
    });
  });

  Deno.test(`${mode}: symbolic links are refused; other special types (a FIFO's mode) are files`, async () => {
    const sink = memorySink();
    const zip = buildZip([{ name: "a.txt", data: "a", mode: 0o100644 }, {
      name: "link",
      data: "a.txt",
      mode: 0o120777,
    }]);
    await rejectsZip(extract(mode, zip, sink), /^zip entry 'link': symbolic link$/);
    // Streaming only learns the mode from the central directory at the end (the sink contract makes that
    // safe: nothing is visible before success); the file API refuses before extracting anything.
    assert.deepEqual(sink.calls.map((c) => c.path), mode !== "file" ? ["a.txt", "link"] : []);
    // `zip` reading its standard input records the pipe's mode (0o10600): a file with data is a file
    for (const special of [0o010600, 0o020644, 0o060644, 0o140644]) {
      const files = memorySink();
      await extract(mode, buildZip([{ name: "-", data: "from stdin\n", mode: special }]), files);
      assertFiles(files, [["-", "from stdin\n"]]);
    }
    const ok = await extract(
      mode,
      buildZip([{ name: "d/", mode: 0o040755 }, { name: "d/f", data: "f", mode: 0o100600 }]),
    );
    assert.equal(ok.entries, 1);
    await rejectsZip(
      extract(mode, buildZip([{ name: "notadir", data: "", mode: 0o040755 }])),
      /file mode says directory/,
    );
  });

  Deno.test(`${mode}: duplicate names, exact or after NFC normalisation, are refused`, async () => {
    await rejectsZip(
      extract(mode, buildZip([{ name: "a.txt", data: "1" }, { name: "a.txt", data: "2" }])),
      /^zip entry 'a\.txt': duplicate name$/,
    );
    const composed = "caf\u00e9.txt";
    const decomposed = "cafe\u0301.txt";
    await rejectsZip(
      extract(mode, buildZip([{ name: composed, data: "1" }, { name: decomposed, data: "2" }])),
      /duplicate of 'café\.txt' \(same name after Unicode normalisation\)/,
    );
    await rejectsZip(
      extract(mode, buildZip([{ name: "d/" }, { name: "d/" }])),
      /^zip entry 'd\/': duplicate name$/,
    );
  });

  Deno.test(`${mode}: a file that is also a folder of another entry is refused`, async () => {
    const cases: [FixtureEntry[], RegExp][] = [
      [
        [{ name: "a", data: "file" }, { name: "a/b", data: "nested" }],
        /^zip entry 'a\/b': its parent folder is the file entry 'a'$/,
      ],
      [
        [{ name: "a/b/c", data: "nested" }, { name: "a/b", data: "file" }],
        /^zip entry 'a\/b': name is also a folder/,
      ],
      [[{ name: "a/" }, { name: "a", data: "file" }], /^zip entry 'a': name is also a folder/],
      [
        [{ name: "a", data: "file" }, { name: "a/" }],
        /^zip entry 'a\/': folder name is also the file entry 'a'$/,
      ],
      [
        [{ name: "x/caf\u00e9", data: "f" }, { name: "x/cafe\u0301/y", data: "g" }],
        /its parent folder is the file entry/,
      ],
    ];
    for (const [entries, pattern] of cases) await rejectsZip(extract(mode, buildZip(entries)), pattern);
    // Folders declared after their files, and several files in one folder, are fine.
    const ok = memorySink();
    await extract(
      mode,
      buildZip([{ name: "a/b", data: "1" }, { name: "a/" }, { name: "a/c", data: "2" }]),
      ok,
    );
    assertFiles(ok, [["a/b", "1"], ["a/c", "2"]]);
  });

  Deno.test(`${mode}: local headers and central directory must agree`, async () => {
    const good: FixtureEntry = { name: "good.txt", data: "good" };
    const stream = mode !== "file";
    const cases: [FixtureEntry[], Parameters<typeof buildZip>[1], RegExp][] = [
      [
        [good, { name: "hidden.txt", data: "only in the local headers", central: { omit: true } }],
        {},
        /^zip entry 'hidden\.txt': in the local headers but not in the central directory$/,
      ],
      [
        [{ name: "hidden.txt", data: "first, unlisted", central: { omit: true } }, good],
        {},
        /^zip entry 'hidden\.txt': in the local headers but not in the central directory$/,
      ],
      [
        [good],
        { phantomCentral: [{ name: "phantom.txt", offset: 5000 }] },
        stream
          ? /^zip entry 'phantom\.txt': in the central directory but not in the local headers$/
          : /^zip entry 'phantom\.txt': 4956 unlisted bytes before its local header \(offset 5000\)$/,
      ],
      [
        [good, { name: "shown.txt", data: "x", central: { name: "other.txt" } }],
        {},
        /^zip entry 'other\.txt': central directory name differs from the local header name 'shown\.txt'$/,
      ],
      [
        [good, { name: "size.txt", data: "xyz", central: { size: 2 } }],
        {},
        stream
          ? /^zip entry 'size\.txt': central directory disagrees with the local data \(local vs central: size 3 vs 2\)$/
          : /^zip entry 'size\.txt': local header disagrees with the central directory \(.*size 3 vs 2,/,
      ],
      [
        [good, { name: "crc.txt", data: "xyz", central: { crc: 1234 } }],
        {},
        /^zip entry 'crc\.txt': .*disagrees.*CRC-32 0xeb8eba67 vs 0x000004d2/,
      ],
      [
        [good, { name: "method.txt", data: "xyz", method: 0, central: { method: 8 } }],
        {},
        stream
          ? /^zip entry 'method\.txt': .*\(local vs central: method 0 vs 8\)$/
          : /'method\.txt': .*method or flags/,
      ],
      [
        [good, { name: "twice.txt", data: "x", central: { offset: 0 } }],
        {},
        stream
          ? /^zip entry 'twice\.txt': its local header \(offset 0\) is already listed in the central directory$/
          : /^zip entry 'twice\.txt': overlaps the previous entry \(local header at offset 0, previous entry ends at 44\)$/,
      ],
      [
        [good],
        { eocd: { entries: 2 } },
        stream ? /says 2 entries.*found 1 entries/ : /says 2 entries, the central directory has 1/,
      ],
      [
        [good],
        { eocd: { cdOffset: 3 } },
        // the file API takes an offset below the central directory's for a self-extracting stub's shift,
        // which moves the entries: the one at offset 0 is then unlisted
        stream
          ? /^end of central directory record disagrees with the archive .*offset 3/
          : /^zip entry 'good\.txt': in the local headers but not in the central directory$/,
      ],
      [
        [good],
        { eocd: { cdOffset: 1_000_000 } },
        /^end of central directory record disagrees with the archive .*offset 1000000/,
      ],
    ];
    for (const [entries, options, pattern] of cases) {
      await rejectsZip(extract(mode, buildZip(entries, options)), pattern);
    }
  });

  Deno.test(`${mode}: a stream that is not a zip is reported with its first bytes`, async () => {
    const html = encoder.encode(
      "<!DOCTYPE html>\n<html><head><title>Error 404</title></head><body>Not found</body></html>",
    );
    await rejectsZip(
      extract(mode, html),
      /^not a zip archive \(starts with "<!DOCTYPE html> <html><head><title>Error…"\)$/,
    );
    await rejectsZip(extract(mode, encoder.encode("{}")), /^not a zip archive \(starts with "\{\}"\)$/);
    await rejectsZip(extract(mode, new Uint8Array(0)), /^not a zip archive \(empty\)$/);
    await rejectsZip(extract(mode, new Uint8Array([0x1f, 0x8b, 8, 0])), /starts with "\\x1f\\x8b\\x08\\x00"/);
  });

  Deno.test(`${mode}: truncated archives fail`, async () => {
    const zip = buildZip([{ name: "a.csv", data: csvText(50_000) }, {
      name: "b.csv",
      data: csvText(9_000),
      descriptor: true,
    }]);
    const cuts = [10, 29, 40, 5_000, zip.length - 200, zip.length - 60, zip.length - 23, zip.length - 1];
    for (const cut of cuts) {
      const sink = memorySink();
      await rejectsZip(
        extract(mode, zip.subarray(0, cut), sink),
        mode !== "file"
          ? /truncated archive \(unexpected end of data in /
          : /^truncated archive \(no end of central/,
      );
      // The file API needs the end of the archive first; streaming hands over complete entries before the
      // cut (the caller discards them) and never completes the entry that was cut.
      assert.equal(
        sink.files.size,
        mode === "file" ? 0 : cut > zip.length - 200 ? 2 : cut > 5_000 ? 1 : 0,
        `cut ${cut}`,
      );
    }
  });

  Deno.test(`${mode}: CRC-32 and size mismatches fail, and the entry's stream errors instead of closing`, async () => {
    const data = csvText(100_000);
    const cases: [FixtureEntry, RegExp][] = [
      [
        { name: "bad.csv", data, local: { crc: 42 }, central: { crc: 42 } },
        /^zip entry 'bad\.csv': CRC-32 mismatch/,
      ],
      [{ name: "bad.csv", data, method: 0, local: { crc: 42 }, central: { crc: 42 } }, /CRC-32 mismatch/],
      [
        { name: "bad.csv", data, descriptor: true, descriptorLies: { crc: 42 }, central: { crc: 42 } },
        /CRC-32 mismatch/,
      ],
      [
        { name: "bad.csv", data, local: { size: 1000 }, central: { size: 1000 } },
        /^zip entry 'bad\.csv': data is larger than its declared size \(1000 bytes\)$/,
      ],
      [
        { name: "bad.csv", data, local: { size: 200_000 }, central: { size: 200_000 } },
        /size mismatch \(declared 200000/,
      ],
      [
        { name: "bad.csv", data, descriptor: true, descriptorLies: { size: 5 }, central: { size: 5 } },
        mode !== "file"
          ? /data descriptor does not match/
          : /data is larger than its declared size \(5 bytes\)/,
      ],
    ];
    for (const [entry, pattern] of cases) {
      const sink = memorySink();
      await rejectsZip(extract(mode, buildZip([entry]), sink), pattern);
      assert.equal(sink.files.size, 0, "the sink must not see a complete file");
      // a small entry (up to 1 MiB) is verified whole before the sink is called
      if (!entry.descriptor || mode === "file") assert.equal(sink.calls.length, 0, "a small entry");
    }
    // A larger entry streams: the mismatch is detected after the data went through, so the sink saw its
    // bytes, then an error instead of the end.
    const large = csvText(1_500_000);
    const sink = memorySink();
    const bad = { name: "bad.csv", data: large, local: { crc: 42 }, central: { crc: 42 } };
    await rejectsZip(extract(mode, buildZip([bad]), sink), /CRC-32 mismatch/);
    assert.equal(sink.received.get("bad.csv"), large.length);
    assert.equal(sink.files.size, 0);
  });

  Deno.test(`${mode}: compressed sizes that do not match the deflate stream fail`, async () => {
    const data = csvText(20_000);
    const deflated = new Uint8Array(deflateRawSync(data));
    const padded = new Uint8Array(deflated.length + 7);
    padded.set(deflated);
    await rejectsZip(
      extract(mode, buildZip([{ name: "pad.csv", data, compressed: padded }])),
      /^zip entry 'pad\.csv': deflate data ends after \d+ of its \d+ compressed bytes$/,
    );
    await rejectsZip(
      extract(
        mode,
        buildZip([{ name: "cut.csv", data, compressed: deflated.subarray(0, deflated.length - 10) }]),
      ),
      /cut\.csv/,
    );
    await rejectsZip(
      extract(mode, buildZip([{ name: "junk.csv", data, compressed: randomBytes(5000) }])),
      /^zip entry 'junk\.csv': invalid deflate data/,
    );
  });

  Deno.test(`${mode}: encrypted entries and other methods are refused`, async () => {
    await rejectsZip(
      extract(mode, buildZip([{ name: "secret.txt", data: "x", flags: 1 }])),
      /^zip entry 'secret\.txt': encrypted entries are not supported$/,
    );
    await rejectsZip(
      extract(mode, buildZip([{ name: "b.lzma", data: "]\0\0\x80\0", method: 14 }])),
      /^zip entry 'b\.lzma': unsupported compression method 14 \(lzma\)$/,
    );
    await rejectsZip(extract(mode, buildZip([{ name: "aes.txt", data: "x", method: 99 }])), /encrypted/);
  });

  Deno.test(`${mode}: bombs are stopped by maxRatio and maxBytes, counting inflated bytes`, async () => {
    const zeros = new Uint8Array(50 * 1024 * 1024);
    const bomb = buildZip([{ name: "zeros.bin", data: zeros }]);
    assert.ok(bomb.length < 100_000);
    const sink = memorySink();
    await rejectsZip(
      extract(mode, bomb, sink, { ratioFloor: 1_000_000 }),
      /^zip entry 'zeros\.bin': inflated data exceeds maxRatio \(200 × \d+|declares 52428800 inflated bytes, over maxRatio/,
    );
    const stoppedAfter = sink.received.get("zeros.bin") ?? 0;
    assert.ok(stoppedAfter <= 200 * bomb.length + 256 * 1024, `stopped near the limit, not ${stoppedAfter}`);
    await rejectsZip(
      extract(mode, bomb, memorySink(), { maxRatio: 10_000, maxBytes: 10_000_000 }),
      /exceeds maxBytes \(10000000 bytes\)|over maxBytes \(10000000 bytes\)/,
    );
    // A bomb whose headers lie (declared size small, or unknown behind a data descriptor) is still counted.
    const liar = buildZip([{ name: "liar.bin", data: zeros, local: { size: 100 }, central: { size: 100 } }]);
    await rejectsZip(
      extract(mode, liar, memorySink(), { maxRatio: 1e9 }),
      /^zip entry 'liar\.bin': data is larger than its declared size \(100 bytes\)$/,
    );
    const hidden = buildZip([{ name: "hidden.bin", data: zeros, descriptor: true, central: { size: 100 } }]);
    await rejectsZip(extract(mode, hidden, memorySink(), { ratioFloor: 0 }), /maxRatio|declared size/);
    // Generous limits let it through, and so do the defaults below 1 GiB of output.
    const summary = await extract(mode, bomb, hashingSink(), { maxRatio: 1e6, ratioFloor: 0 });
    assert.equal(summary.bytes, zeros.length);
    assert.equal((await extract(mode, bomb, hashingSink())).bytes, zeros.length);
  });

  Deno.test(`${mode}: the ratio applies past ratioFloor, to the larger of archiveSize and bytes read`, async () => {
    const data = new Uint8Array(3_000_000); // ~3 KB deflated, ratio ~1000
    const zip = buildZip([{ name: "z.bin", data }]);
    const limit = { maxRatio: 20, ratioFloor: 0 };
    await assert.rejects(extract(mode, zip, memorySink(), limit), (e: unknown) => {
      assert.ok(e instanceof ZipError && e.limit === "maxRatio", String(e));
      assert.match(e.message, new RegExp(`maxRatio \\(20 × ${zip.length} archive bytes|over maxRatio`));
      return true;
    });
    // real data can compress that well (a CSV of mostly empty columns): under the floor, the ratio is not applied
    assert.equal((await extract(mode, zip, memorySink(), { maxRatio: 20 })).bytes, data.length);
    assert.equal(
      (await extract(mode, zip, memorySink(), { ...limit, ratioFloor: 3_000_000 })).bytes,
      data.length,
    );
    assert.equal(
      (await extract(mode, zip, memorySink(), { maxRatio: 2000, ratioFloor: 0 })).bytes,
      data.length,
    );
    if (mode !== "file") {
      assert.equal(
        (await extract(mode, zip, memorySink(), { ...limit, archiveSize: 200_000 })).bytes,
        data.length,
      );
    }
    await assert.rejects(extract(mode, zip, memorySink(), { maxBytes: 1000 }), (e: unknown) => {
      assert.ok(e instanceof ZipError && e.limit === "maxBytes", String(e));
      return true;
    });
  });

  Deno.test(`${mode}: names without the UTF-8 flag`, async () => {
    const cp437 = new Uint8Array([0x81, 0x62, 0x65, 0x72, 0x2e, 0x74, 0x78, 0x74]); // "über.txt" in CP437
    const utf8Unflagged = encoder.encode("naïve.txt");
    const sink = memorySink();
    await extract(
      mode,
      buildZip([
        { name: "x", nameBytes: cp437, data: "1" },
        { name: "x", nameBytes: utf8Unflagged, data: "2" },
        {
          name: "x",
          nameBytes: new Uint8Array([0x41, 0xff]),
          data: "3",
          extra: unicodePathExtra(new Uint8Array([0x41, 0xff]), "Ω.txt"),
        },
      ]),
      sink,
    );
    assertFiles(sink, [["über.txt", "1"], ["naïve.txt", "2"], ["Ω.txt", "3"]]);
    await rejectsZip(
      extract(mode, buildZip([{ name: "x", nameBytes: new Uint8Array([0x61, 0xff]), utf8: true, data: "" }])),
      /flagged UTF-8 but is not valid UTF-8/,
    );
    // CP437 decoding cannot smuggle separators: bytes below 0x80 are ASCII.
    await rejectsZip(
      extract(mode, buildZip([{ name: "x", nameBytes: encoder.encode("..\\x"), data: "" }])),
      /backslash/,
    );
  });

  Deno.test(`${mode}: a newline or padding after the end is accepted; zip records or 64 KiB of it are not`, async () => {
    for (const trailing of [encoder.encode("\n"), new Uint8Array(4096), encoder.encode("garbage")]) {
      const sink = memorySink();
      const summary = await extract(mode, buildZip([{ name: "a", data: "a" }], { trailing }), sink);
      assertFiles(sink, [["a", "a"]]);
      assert.equal(summary.warnings, undefined, "unzip accepts it silently too");
    }
    // an archive appended to another: another reader would see other entries
    const second = buildZip([{ name: "b", data: "b" }]);
    await rejectsZip(
      extract(mode, buildZip([{ name: "a", data: "a" }], { trailing: second })),
      mode !== "file"
        ? /unexpected data after the end of the archive \(a zip record signature/
        : /^zip entry 'a': in the local headers but not in the central directory$/,
    );
    await rejectsZip(
      extract(mode, buildZip([{ name: "a", data: "a" }], { trailing: new Uint8Array(65 * 1024) })),
      mode !== "file"
        ? /unexpected data after the end of the archive \(more than 65536 bytes\)/
        : /truncated archive \(no end of central directory/,
    );
    assert.equal(
      (await extract(mode, buildZip([{ name: "a", data: "a" }], { comment: "PK\x05\x06 in a comment" })))
        .entries,
      1,
    );
  });

  Deno.test(`${mode}: sink failures propagate and a sink must read every entry`, async () => {
    const zip = buildZip([{ name: "a.csv", data: csvText(10_000) }, { name: "b.csv", data: "b" }]);
    const boom = new Error("disk full");
    const failing: ZipEntrySink = {
      async writeEntry(_path, data) {
        await data.cancel();
        throw boom;
      },
    };
    // named: "File name too long (os error 36)" alone does not say which entry
    await rejectsZip(extract(mode, zip, failing), /^zip entry 'a\.csv': disk full$/);
    await assert.rejects(extract(mode, zip, failing), (e) => (e as Error).cause === boom);
    const lazy = {
      async writeEntry(_path: string, data: ReadableStream<Uint8Array>) {
        const reader = data.getReader();
        await reader.read();
        reader.releaseLock();
      },
    };
    await rejectsZip(
      extract(mode, zip, lazy),
      /^zip entry 'a\.csv': the sink returned before reading all/,
    );
  });

  Deno.test(`${mode}: an abort signal stops the extraction`, async () => {
    const zip = buildZip([{ name: "a.csv", data: csvText(2_000_000) }]);
    const controller = new AbortController();
    const reason = new Error("stop");
    const sink = {
      async writeEntry(_path: string, data: ReadableStream<Uint8Array>) {
        for await (const _ of data) controller.abort(reason);
      },
    };
    await assert.rejects(
      extract(mode, zip, sink, { signal: controller.signal }),
      (e) => e === reason,
    );
    await assert.rejects(
      extract(mode, zip, memorySink(), { signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
  });
}

// ---------------------------------------------------------------------------------------------------------
// Streaming specifics

Deno.test("stream: STORED with a data descriptor needs random access; the file API extracts it", async () => {
  const entries: FixtureEntry[] = [
    { name: "first.csv", data: csvText(5_000), descriptor: true },
    { name: "stored.bin", data: randomBytes(40_000), method: 0, descriptor: true },
    { name: "after.txt", data: "after", method: 0 },
  ];
  const zip = buildZip(entries);
  await rejectsZip(
    extract("stream", zip),
    /^zip entry 'stored\.bin': stored with a data descriptor, so its end cannot be found while streaming$/,
    ZipNeedsRandomAccess,
  );
  const e = await extract("stream", zip).catch((e) => e);
  assert.ok(e instanceof ZipError && e.name === "ZipNeedsRandomAccess");
  const sink = memorySink();
  await extract("file", zip, sink);
  assertFiles(sink, entries.map((e) => [e.name, e.data!]));
});

Deno.test("stream: output is identical for 1-byte chunks and random chunk sizes", async () => {
  const entries: FixtureEntry[] = [
    { name: "a.csv", data: csvText(40_000), descriptor: true },
    { name: "b/", method: 0 },
    { name: "b/c.bin", data: randomBytes(3_000), method: 0 },
    { name: "b/d.csv", data: csvText(30_000, 9), descriptor: true, descriptorSignature: false },
    { name: "e.txt", data: "", descriptor: true },
    { name: "f.csv", data: csvText(20_000, 5), zip64: true, descriptor: true },
    { name: "g.txt", data: "last" },
  ];
  const zip = buildZip(entries, { zip64Eocd: true, comment: "c" });
  const expected = entries.filter((e) => !e.name.endsWith("/")).map((e) =>
    [e.name, e.data!] as [string, Uint8Array | string]
  );
  const reference = memorySink();
  await extract("stream", zip, reference, undefined, zip.length);
  assertFiles(reference, expected);
  const one = memorySink();
  await extract("stream", zip, one, undefined, 1);
  assertFiles(one, expected);
  for (let seed = 1; seed <= 20; seed++) {
    const random = seededRandom(seed);
    const sink = memorySink();
    const max = [3, 50, 700, 20_000][seed % 4];
    await extract("stream", zip, sink, undefined, () => 1 + Math.floor(random() * max));
    assertFiles(sink, expected);
  }
});

/**
 * A reader of `zip` from `at` that reads into the 64-byte buffers it lends, each read a moment later: `fixed`
 * bytes, then one byte, then the rest. The third read goes into the buffer of the first, free again once its
 * bytes were taken, while a header read in two waits may still hold a view of them.
 */
function readerReusingBuffers(zip: Uint8Array, at: number, fixed: number): ByteReader {
  const reads = [
    zip.subarray(at, at + fixed),
    zip.subarray(at + fixed, at + fixed + 1),
    zip.subarray(at + fixed + 1),
  ];
  return new ByteReader(
    async (into) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const next = reads.shift();
      if (!next) return null;
      into!.set(next.subarray(0, into!.length));
      return into!.subarray(0, Math.min(next.length, into!.length));
    },
    at,
    { slabSize: 64 },
  );
}

Deno.test("a local header read in two waits keeps its fixed part when its buffer is read into again", async () => {
  const zip = buildZip([{ name: "data/first.csv", data: "a,b\n" }]);
  const header = await readLocalHeader(readerReusingBuffers(zip, 0, 30));
  assert.equal(header.name, "data/first.csv");
  assert.equal(header.method, 8);
});

Deno.test("a central directory header read in two waits keeps its fixed part when its buffer is read into again", async () => {
  const zip = buildZip([{ name: "data/first.csv", data: "a,b\n" }]);
  const at = zip.length - 22 - (46 + "data/first.csv".length); // the only central header, before the end record
  const header = await readCentralHeader(readerReusingBuffers(zip, at, 46));
  assert.deepEqual([header.name, header.method, header.size, header.offset], ["data/first.csv", 8, 4, 0]);
});

Deno.test("bytes: many small entries read into reused buffers in random chunk sizes come out intact", async () => {
  // headers and data split across reads at every place: a view of a reused buffer kept across a wait fails
  const random = seededRandom(31);
  const entries: FixtureEntry[] = Array.from({ length: 400 }, (_, i) => ({
    name: `d${i % 5}/${"n".repeat(1 + Math.floor(random() * 40))}${i}.csv`,
    data: csvText(1 + Math.floor(random() * 300), i),
    method: i % 3 === 0 ? 0 : 8,
    descriptor: i % 3 === 2,
  }));
  const zip = buildZip(entries);
  const expected = entries.map((e) => [e.name, e.data!] as [string, Uint8Array | string]);
  for (const max of [7, 40, 300, 5_000]) {
    const sink = memorySink();
    await extract("bytes", zip, sink, undefined, () => 1 + Math.floor(random() * max));
    assertFiles(sink, expected);
  }
});

Deno.test("stream: a slow sink throttles the source (bounded read-ahead)", async () => {
  const data = randomBytes(16 * 1024 * 1024, 3);
  const zip = buildZip([{ name: "big.bin", data, method: 0 }, { name: "big.csv", data: csvText(8_000_000) }]);
  let pulled = 0;
  let maxAhead = 0;
  let consumed = 0;
  const source = streamOf(zip, 64 * 1024).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        pulled += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
  const sink = {
    async writeEntry(_path: string, stream: ReadableStream<Uint8Array>) {
      for await (const chunk of stream) {
        consumed += chunk.length;
        await new Promise((r) => setTimeout(r, 1));
        maxAhead = Math.max(maxAhead, pulled - Math.min(consumed, data.length));
      }
    },
  };
  await extractZipStream(source, sink);
  assert.equal(consumed, data.length + 8_000_000);
  assert.ok(maxAhead < 4 * 1024 * 1024, `the source ran ${maxAhead} bytes ahead of the sink`);
});

Deno.test("stream: an abort signal stops an extraction waiting on a stalled source", async () => {
  const zip = buildZip([{ name: "a.csv", data: csvText(500_000) }]);
  let sent = false;
  let cancelled = false;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) controller.enqueue(zip.subarray(0, 10_000));
      sent = true;
      return new Promise(() => {}); // then nothing, ever
    },
    cancel() {
      cancelled = true;
    },
  });
  const reason = new Error("timeout");
  const started = performance.now();
  await assert.rejects(
    extractZipStream(source, memorySink(), { signal: AbortSignal.timeout(100) }).catch((e) => {
      throw e instanceof DOMException && e.name === "TimeoutError" ? reason : e;
    }),
    (e) => e === reason,
  );
  assert.ok(performance.now() - started < 2_000);
  assert.ok(cancelled, "the source is cancelled");
});

Deno.test("stream: a failed source stream rejects the extraction", async () => {
  const zip = buildZip([{ name: "a.csv", data: csvText(500_000) }]);
  const failure = new Error("connection reset");
  let sent = false;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.error(failure);
      controller.enqueue(zip.subarray(0, 10_000));
      sent = true;
    },
  });
  await assert.rejects(extractZipStream(source, memorySink()), (e) => e === failure);
});

Deno.test("overlapping entries (shared local data) are refused", async () => {
  const zip = buildZip([{ name: "a.csv", data: csvText(10_000) }, {
    name: "b.csv",
    data: csvText(10_000),
    central: { offset: 0 },
  }]);
  await rejectsZip(
    extract("file", zip),
    /^zip entry 'b\.csv': overlaps the previous entry \(local header at offset 0/,
  );
  await rejectsZip(
    extract("stream", zip),
    /^zip entry 'b\.csv': its local header \(offset 0\) is already listed/,
  );
});

// ---------------------------------------------------------------------------------------------------------
// Interoperability with Info-ZIP zip and Python's zipfile

async function run(cmd: string, args: string[], cwd: string) {
  const output = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return output;
}

async function has(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args: ["-h"], stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

/** A folder of test files (nested folders, Unicode names, an empty file), returned with their contents. */
async function sourceTree(root: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>([
    ["a.txt", encoder.encode("hello\n")],
    ["empty.txt", new Uint8Array(0)],
    ["sub/rand.bin", randomBytes(100_000, 5)],
    ["sub/deeper/sales.csv", csvText(400_000)],
    ["données/café ☕.txt", encoder.encode("unicode\n")],
  ]);
  for (const [path, data] of files) {
    await Deno.mkdir(join(root, path, ".."), { recursive: true });
    await Deno.writeFile(join(root, path), data);
  }
  return files;
}

function assertSameFiles(sink: MemorySink, files: Map<string, Uint8Array>) {
  assert.deepEqual([...sink.files.keys()].sort(), [...files.keys()].sort());
  for (const [path, data] of files) assert.equal(sha256(sink.files.get(path)!), sha256(data), path);
}

async function extractFileAt(path: string, mode: Mode): Promise<MemorySink> {
  const sink = memorySink();
  if (mode !== "file") {
    await extractZipStream((await Deno.open(path)).readable, sink);
  } else {
    await extractZipFile(path, sink);
  }
  return sink;
}

Deno.test({
  name: "interop: archives written by Info-ZIP zip",
  ignore: !(await has("zip")),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const src = join(dir, "src");
      const files = await sourceTree(src);
      await run("zip", ["-q", "-r", "../plain.zip", "."], src);
      await run("sh", ["-c", "zip -q -r - . | cat > ../piped.zip"], src); // data descriptors (not seekable)
      await run("zip", ["-q", "-r", "-0", "../stored.zip", "."], src);
      await Deno.symlink("a.txt", join(src, "link"));
      await run("zip", ["-q", "-r", "-y", "../symlink.zip", "."], src);

      for (const mode of MODES) {
        assertSameFiles(await extractFileAt(join(dir, "plain.zip"), mode), files);
        assertSameFiles(await extractFileAt(join(dir, "stored.zip"), mode), files);
        await rejectsZip(extractFileAt(join(dir, "symlink.zip"), mode), /^zip entry 'link': symbolic link$/);
      }
      // Piped output stores small or incompressible files with a data descriptor.
      await rejectsZip(
        extractFileAt(join(dir, "piped.zip"), "stream"),
        /stored with a data descriptor/,
        ZipNeedsRandomAccess,
      );
      assertSameFiles(await extractFileAt(join(dir, "piped.zip"), "file"), files);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "interop: archives written by Python's zipfile (seekable, streamed, ZIP64)",
  ignore: !(await has("python3")),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const src = join(dir, "src");
      const files = await sourceTree(src);
      const script = `
import io, os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
names = sorted(os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs)
class Unseekable(io.RawIOBase):
    def __init__(self, f): self.f = f
    def writable(self): return True
    def write(self, b): return self.f.write(b)
for name, seekable, zip64, method in [("seekable", True, False, zipfile.ZIP_DEFLATED),
                                      ("streamed", False, False, zipfile.ZIP_DEFLATED),
                                      ("zip64", True, True, zipfile.ZIP_DEFLATED),
                                      ("streamed64", False, True, zipfile.ZIP_DEFLATED),
                                      ("streamedstored", False, False, zipfile.ZIP_STORED),
                                      ("bzip2", True, False, zipfile.ZIP_BZIP2),
                                      ("streamedbzip2", False, False, zipfile.ZIP_BZIP2)]:
    with open(os.path.join(out, name + ".zip"), "wb") as f:
        target = f if seekable else Unseekable(f)
        with zipfile.ZipFile(target, "w", method) as z:
            for n in names:
                data = open(os.path.join(src, n), "rb").read()
                with z.open(n, "w", force_zip64=zip64) as w:
                    w.write(data)
`;
      await run("python3", ["-c", script, src, dir], dir);
      for (const name of ["seekable", "streamed", "zip64", "streamed64", "bzip2"]) {
        for (const mode of MODES) assertSameFiles(await extractFileAt(join(dir, `${name}.zip`), mode), files);
      }
      await rejectsZip(
        extractFileAt(join(dir, "streamedstored.zip"), "stream"),
        /stored with a data descriptor/,
        ZipNeedsRandomAccess,
      );
      assertSameFiles(await extractFileAt(join(dir, "streamedstored.zip"), "file"), files);
      await rejectsZip(
        extractFileAt(join(dir, "streamedbzip2.zip"), "bytes"),
        /BZip2-compressed with a data descriptor/,
        ZipNeedsRandomAccess,
      );
      assertSameFiles(await extractFileAt(join(dir, "streamedbzip2.zip"), "file"), files);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "bzip2 entries (method 12): decoded across blocks in every mode; a wrong CRC, cut or padded data refused",
  ignore: !(await has("python3")),
  async fn() {
    // 1.2 MB of CSV at level 1 (100 kB blocks): a dozen blocks, with runs for the run-length steps
    const data = concat(csvText(1_000_000), new Uint8Array(200_000).fill(0x41));
    const dir = await Deno.makeTempDir();
    let bz: Uint8Array;
    try {
      await Deno.writeFile(join(dir, "in"), data);
      const script =
        "import bz2, sys; sys.stdout.buffer.write(bz2.compress(open(sys.argv[1], 'rb').read(), 1))";
      bz = (await run("python3", ["-c", script, join(dir, "in")], dir)).stdout;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const entry = (compressed: Uint8Array) => buildZip([{ name: "b.csv", data, method: 12, compressed }]);
    for (const mode of MODES) {
      const sink = hashingSink();
      await extract(mode, entry(bz), sink, {}, 7777);
      assert.equal(sink.hashes.get("b.csv"), sha256(data), mode);
      const flipped = bz.slice();
      flipped[bz.length >> 1] ^= 0x10;
      await rejectsZip(extract(mode, entry(flipped)), /^zip entry 'b\.csv': invalid bzip2 data \(/);
      await rejectsZip(extract(mode, entry(bz.subarray(0, bz.length - 50))), /^zip entry 'b\.csv': /);
      await rejectsZip(
        extract(mode, entry(concat(bz, new Uint8Array(3)))),
        /^zip entry 'b\.csv': bzip2 data ends after \d+ of its \d+ compressed bytes$/,
      );
    }
  },
});

Deno.test({
  name:
    "PKZIP 1.x methods unzip still extracts: Shrink (code growth, partial clears) and Implode (4 and 8 KiB windows, 2 and 3 trees), in every mode, as unzip does",
  ignore: !(await has("unzip")),
  async fn() {
    // text with repeats far apart and near, runs, and enough variety to fill Shrink's code table several times
    const random = seededRandom(19);
    const words = Array.from({ length: 400 }, () => String(Math.floor(random() * 1e9)).padStart(9, "0"));
    const data = concat(
      csvText(60_000),
      encoder.encode(Array.from({ length: 8000 }, () => words[Math.floor(random() * 400)]).join(",")),
      new Uint8Array(3000).fill(0x20),
      randomBytes(20_000, 3),
    );
    const entries: FixtureEntry[] = [
      { name: "shrunk.csv", data, method: 1, compressed: shrink(data) },
      ...[[false, false], [true, false], [false, true], [true, true]].map(([window8k, literalTree]) => {
        const { compressed, flags } = implode(data, { window8k, literalTree });
        return {
          name: `imploded-${window8k ? 8 : 4}k-${literalTree ? 3 : 2}.csv`,
          data,
          method: 6,
          compressed,
          flags,
        };
      }),
    ];
    const zip = buildZip(entries);
    assert.ok(entries.every((e) => e.compressed!.length < data.length * 0.8), "the encoders compress");
    // the fixture is what unzip extracts to the data itself
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(join(dir, "legacy.zip"), zip);
      await run("unzip", ["-q", "legacy.zip", "-d", "unzip"], dir);
      for (const { name } of entries) {
        assert.equal(sha256(await Deno.readFile(join(dir, "unzip", name))), sha256(data), `unzip: ${name}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    for (const mode of MODES) {
      const sink = hashingSink();
      await extract(mode, zip, sink, {}, 5000);
      for (const { name } of entries) assert.equal(sink.hashes.get(name), sha256(data), `${mode}: ${name}`);
    }
    const cut = buildZip([{ ...entries[1], compressed: entries[1].compressed!.subarray(0, 2000) }]);
    await rejectsZip(
      extract("file", cut),
      /^zip entry 'imploded-4k-2\.csv': invalid implode data \(unexpected end of data\)$/,
    );
    const streamed = buildZip([{ ...entries[3], descriptor: true }]);
    await rejectsZip(
      extract("bytes", streamed),
      /Implode-compressed with a data descriptor/,
      ZipNeedsRandomAccess,
    );
    assert.equal((await extract("file", streamed)).entries, 1);
  },
});

/**
 * A sink whose `openEntry` writer keeps a copy of each chunk (the extraction reuses one buffer for them), and
 * records what it was asked: the bytes of every closed entry, and which writers were aborted.
 */
function writerSink(options: { failWriteOf?: string; slowWrites?: boolean } = {}) {
  const files = new Map<string, Uint8Array>();
  const aborted: string[] = [];
  const changedInFlight: string[] = [];
  const chunks = new Map<string, Uint8Array[]>(); // as received, not copied: shows that the buffer is reused
  const sink: ZipEntrySink = {
    writeEntry: () => Promise.reject(new Error("writeEntry called although openEntry is offered")),
    writeEntryBytes: (path, data) => {
      files.set(path, data.slice());
      return Promise.resolve();
    },
    // deno-lint-ignore require-await
    openEntry: async (path) => {
      const parts: Uint8Array[] = [];
      return {
        write: (bytes) => {
          if (path === options.failWriteOf) throw new Error("No space left on device (os error 28)");
          chunks.set(path, [...chunks.get(path) ?? [], bytes]);
          const copy = bytes.slice();
          parts.push(copy);
          if (!options.slowWrites) return;
          // a write that takes a while: the extraction must not touch the chunk until it has finished
          return new Promise<void>((resolve) => setTimeout(resolve, 1)).then(() => {
            if (sha256(bytes) !== sha256(copy)) changedInFlight.push(path);
          });
        },
        // deno-lint-ignore require-await
        close: async () => files.set(path, concat(...parts)),
        abort: () => aborted.push(path),
      };
    },
  };
  return { sink, files, aborted, chunks, changedInFlight };
}

for (const mode of MODES) {
  Deno.test(`${mode}: a sink's openEntry writer gets larger entries chunk by chunk, byte for byte, from two buffers used in turn, each left alone while its write is in flight`, async () => {
    const big = csvText(3_000_000, 7);
    const noise = randomBytes(1_500_000, 8);
    const entries: FixtureEntry[] = [
      { name: "small.csv", data: "a,b\n1,2\n" },
      { name: "big.csv", data: big },
      { name: "stored.bin", data: noise, method: 0 },
      { name: "desc.csv", data: big, descriptor: true },
      { name: "desc-zip64.csv", data: big, descriptor: true, zip64: true, descriptorSignature: false },
      { name: "zeros.bin", data: new Uint8Array(20 * 1024 * 1024) },
      { name: "last.txt", data: "end" },
    ];
    for (const slowWrites of [false, true]) {
      const { sink, files, aborted, chunks, changedInFlight } = writerSink({ slowWrites });
      // small chunks from the source, so that entries and slices end mid-chunk
      const summary = await extract(mode, buildZip(entries), sink, undefined, 9_999);
      assert.deepEqual(
        [...files.keys()].sort(),
        entries.map((e) => e.name).sort(),
      );
      for (const entry of entries) {
        assert.equal(
          sha256(files.get(entry.name)!),
          sha256(bytesOf(entry.data!)),
          `content of ${entry.name}`,
        );
      }
      assert.deepEqual(aborted, []);
      assert.equal(summary.entries, entries.length);
      // an entry's inflated chunks are views of two buffers used in turn, not one buffer each
      const zeros = chunks.get("zeros.bin")!;
      assert.ok(zeros.length >= 20, `${zeros.length} chunks`);
      assert.equal(new Set(zeros.map((c) => c.buffer)).size, 2);
      assert.deepEqual(changedInFlight, [], "chunks changed while their write was in flight");
    }
  });

  Deno.test(`${mode}: an openEntry writer is aborted when the entry is bad or its write fails, and the error names the entry`, async () => {
    const big = csvText(2_000_000, 9);
    const badCrc = buildZip([{ name: "bad.csv", data: big, local: { crc: 1 }, central: { crc: 1 } }]);
    const crc = writerSink();
    await rejectsZip(extract(mode, badCrc, crc.sink), /zip entry 'bad\.csv': CRC-32 mismatch/);
    assert.deepEqual([crc.aborted, [...crc.files.keys()]], [["bad.csv"], []]);

    const deflated = deflateRawSync(big);
    const corrupt = new Uint8Array(deflated); // a copy (a Buffer's slice is a view)
    corrupt.fill(0xff, 1000, 1100);
    const badData = buildZip([{ name: "corrupt.csv", data: big, compressed: corrupt }]);
    const data = writerSink();
    await rejectsZip(extract(mode, badData, data.sink), /zip entry 'corrupt\.csv': invalid deflate data/);
    assert.deepEqual(data.aborted, ["corrupt.csv"]);

    const short = buildZip([{ name: "short.csv", data: big, compressed: deflated.subarray(0, 50_000) }]);
    const cut = writerSink();
    await rejectsZip(
      extract(mode, short, cut.sink),
      /zip entry 'short\.csv': invalid deflate data \(unexpected end of file\)/,
    );
    assert.deepEqual(cut.aborted, ["short.csv"]);

    const full = writerSink({ failWriteOf: "b.csv" });
    const two = buildZip([{ name: "a.csv", data: big }, { name: "b.csv", data: big }]);
    await rejectsZip(extract(mode, two, full.sink), /zip entry 'b\.csv': No space left on device/);
    assert.deepEqual([full.aborted, [...full.files.keys()]], [["b.csv"], ["a.csv"]]);
  });
}

Deno.test("bytes: what the sink keeps stays intact while later bytes are read into reused buffers", async () => {
  // a sink that keeps the chunks it is given, uncopied, until the whole archive is extracted (as a write on
  // another thread holds its buffer): stored data must not be a view of a buffer the reader reads into again
  const kept = new Map<string, Uint8Array[]>();
  const keep = (path: string, chunk: Uint8Array) => kept.set(path, [...kept.get(path) ?? [], chunk]);
  const sink: ZipEntrySink = {
    writeEntry: async (path, data) => {
      for await (const chunk of data) keep(path, chunk);
    },
    writeEntryBytes: (path, data) => {
      keep(path, data);
      return Promise.resolve();
    },
  };
  const entries: FixtureEntry[] = [];
  for (let i = 0; i < 40; i++) {
    entries.push({ name: `stored-${i}.bin`, data: randomBytes(3_000 + i * 997, i), method: 0 });
    entries.push({ name: `deflated-${i}.csv`, data: csvText(5_000 + i * 331, i) });
  }
  entries.push({ name: "big-stored.bin", data: randomBytes(1_500_000, 99), method: 0 });
  entries.push({ name: "big-deflated.csv", data: csvText(1_500_000, 98) });
  entries.push({ name: "last.txt", data: "end" });
  await extract("bytes", buildZip(entries), sink, undefined, 20_000);
  for (const entry of entries) {
    assert.equal(sha256(concat(...kept.get(entry.name)!)), sha256(bytesOf(entry.data!)), entry.name);
  }
});

for (const mode of MODES) {
  Deno.test(`${mode}: Deflate64 entries (method 9) extract; bad data is named; one streamed with a descriptor needs the file`, async () => {
    // deflate data with no 258-byte match is valid Deflate64 (the 7-Zip fixtures in archives_interop_test.ts
    // cover the 64 KiB window and the long lengths)
    const text = Array.from({ length: 40_000 }, (_, i) => `${i},${(i * 7919) % 10007}\n`).join("");
    const deflated = deflateRawSync(text);
    const entry = { name: "d64.csv", data: text, method: 9, compressed: deflated };
    const sink = memorySink();
    await extract(mode, buildZip([entry, { name: "after.txt", data: "end" }]), sink, undefined, 7_777);
    assertFiles(sink, [["d64.csv", text], ["after.txt", "end"]]);

    const corrupt = new Uint8Array(deflated);
    corrupt[0] = 0x07; // final block of type 3
    await rejectsZip(
      extract(mode, buildZip([{ ...entry, compressed: corrupt }])),
      /zip entry 'd64\.csv': invalid deflate64 data \(block type 3\)/,
    );
    await rejectsZip(
      extract(mode, buildZip([{ ...entry, compressed: deflated.subarray(0, 1000) }])),
      /zip entry 'd64\.csv': invalid deflate64 data \(unexpected end of data\)/,
    );
    const described = buildZip([{ ...entry, descriptor: true }]);
    if (mode === "file") {
      await extract(mode, described, memorySink());
    } else {
      await rejectsZip(
        extract(mode, described),
        /Deflate64-compressed with a data descriptor/,
        ZipNeedsRandomAccess,
      );
    }
  });
}

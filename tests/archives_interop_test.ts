/**
 * Archives made by the tools data providers use, downloaded and extracted by lakerun's DownloaderExecutor as a
 * user runs it (a routine whose step Worker fetches from a plain Python `http.server` on loopback), and
 * compared byte for byte with what Info-ZIP `unzip` makes of the same file, folders included. Where unzip and
 * lakerun refuse (or cannot write) an entry, the test asserts lakerun's message instead.
 *
 * Fixtures are made at test time by the same tools: Info-ZIP `zip` (reading files, and reading its standard
 * input), `unzipsfx` for self-extracting archives, Python's `zipfile`, and 7-Zip's `7zz a -tzip` (Deflate,
 * Copy, reading its standard input, to a file and to a pipe, UTF-8 names with and without flag bit 11, and the
 * methods lakerun refuses: LZMA, PPMd, XZ; Deflate64 and BZip2 it extracts). unzip runs in the C.UTF-8 locale, where it keeps
 * UTF-8 names as they are (in the C locale it would write `#U00e9` escapes).
 *
 * Run: deno test -A tests/archives_interop_test.ts (needs zip, unzip, unzipsfx and python3 on PATH, and 7zz,
 * Debian's package 7zip, for the 7-Zip tests)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runRoutineJson } from "./support/lakerun.ts";
import { sha256 } from "./support/zip_fixtures.ts";

/** The tools of `tools` that are not on PATH. */
function missingTools(tools: string[]): string[] {
  return tools.filter((tool) =>
    !new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" }).outputSync().success
  );
}

const TOOLS = ["zip", "unzip", "unzipsfx", "python3"];
const missing = missingTools(TOOLS);
const ignore = missing.length > 0;
if (ignore) console.error(`archives_interop_test: skipped, missing ${missing.join(", ")}`);
/** 7-Zip's command line, from Debian's package `7zip` (which has no `7z` in bookworm). */
const SEVEN_ZIP = "7zz";
const missing7z = missingTools([SEVEN_ZIP]);
const ignore7z = ignore || missing7z.length > 0;
if (!ignore && ignore7z) {
  console.error(`archives_interop_test: 7-Zip tests skipped, missing ${SEVEN_ZIP} (Debian package 7zip)`);
}

/** Runs a shell command in `cwd`, failing with its output. */
async function sh(command: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command("bash", {
    args: ["-c", command],
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** Every file (sha256) and folder (`<folder>`) under `dir`, by relative path; `{}` when it does not exist. */
async function treeWithFolders(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (path: string, prefix: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isDirectory) {
        out[`${prefix}${entry.name}/`] = "<folder>";
        await walk(full, `${prefix}${entry.name}/`);
      } else out[prefix + entry.name] = sha256(await Deno.readFile(full));
    }
  };
  await walk(dir, "").catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A folder of fixtures served by `python3 -m http.server` on loopback, as the user served them. */
async function pythonServer(dir: string): Promise<{ url(name: string): string } & AsyncDisposable> {
  const child = new Deno.Command("python3", {
    args: ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/port (\d+)/.test(text)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`python3 -m http.server did not start: ${text}`);
    text += value;
  }
  const port = Number(/port (\d+)/.exec(text)![1]);
  const drain = (async () => {
    while (!(await reader.read()).done);
  })();
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await drain.catch(() => {});
    },
  };
}

/** What lakerun and unzip made of one archive. */
interface Extracted {
  lakerun: Record<string, string>;
  unzip: Record<string, string>;
  unzipCode: number;
  error?: Error;
  lines: string[];
}

/**
 * Makes the fixtures with `make` (a bash script run in a fresh folder), then, for each archive `name`,
 * extracts it with `unzip` and downloads it with lakerun (unzip: "unzip") from a Python http.server.
 */
async function extractBoth(make: string, names: string[]): Promise<Record<string, Extracted>> {
  const dir = await Deno.makeTempDir({ prefix: "lakerun-interop-" });
  try {
    const made = await sh(`set -e\n${make}`, dir);
    assert.equal(made.code, 0, `making the fixtures failed: ${made.stderr}`);
    await using server = await pythonServer(dir);
    const results: Record<string, Extracted> = {};
    for (const name of names) {
      const unzipped = await sh(`LC_ALL=C.UTF-8 unzip -q -o '${name}' -d 'unzip-${name}'`, dir);
      const landing = `lakerun-${name}`;
      const { error, lines } = await runRoutineJson({
        routine_name: "interop",
        executors: {
          DownloaderExecutor: {
            params: {
              requests_arguments: { url: server.url(name) },
              landing_directory: landing,
              unzip: "unzip",
            },
            tasks: ["download"],
          },
        },
      }, { cwd: dir });
      results[name] = {
        lakerun: await treeWithFolders(join(dir, landing)),
        unzip: await treeWithFolders(join(dir, `unzip-${name}`)),
        unzipCode: unzipped.code,
        error,
        lines,
      };
    }
    return results;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that lakerun succeeded and made exactly unzip's tree (which must not be empty). */
function assertSameAsUnzip(result: Extracted, name: string) {
  assert.equal(result.error, undefined, `${name}: ${result.lines.join("\n")}`);
  assert.ok(Object.keys(result.unzip).length > 0, `${name}: unzip extracted nothing`);
  assert.deepEqual(result.lakerun, result.unzip, name);
}

Deno.test({
  name:
    "`zip` reading its standard input (FIFO mode bits, to a file and to a pipe): a file, as unzip makes it",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      [
        "printf 'a,b\\n1,2\\n' | zip -q stdin.zip -",
        "seq 1 200000 | zip -q stdin-big.zip -",
        "seq 1 200000 | zip -q - - > piped.zip", // not seekable: sizes after the data
      ].join("\n"),
      ["stdin.zip", "stdin-big.zip", "piped.zip"],
    );
    for (const [name, result] of Object.entries(results)) {
      assertSameAsUnzip(result, name);
      assert.deepEqual(Object.keys(result.lakerun), ["-"], name);
    }
  },
});

Deno.test({
  name: "folders: explicit directory entries, empty ones included, are made as unzip makes them",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      [
        "mkdir -p tree/a/empty tree/b/c/deeper tree/d && echo x > tree/b/x.csv && echo y > tree/d/y.csv",
        "zip -qr info-zip.zip tree",
        `python3 -c "
import zipfile
with zipfile.ZipFile('python.zip', 'w') as z:
    z.mkdir('empty')
    z.mkdir('data/2024/q1')
    z.writestr('data/2024/a.csv', 'a,b\\\\n')
"`,
      ].join("\n"),
      ["info-zip.zip", "python.zip"],
    );
    assertSameAsUnzip(results["info-zip.zip"], "info-zip.zip");
    assert.equal(results["info-zip.zip"].lakerun["tree/a/empty/"], "<folder>");
    assert.equal(results["info-zip.zip"].lakerun["tree/b/c/deeper/"], "<folder>");
    assertSameAsUnzip(results["python.zip"], "python.zip");
    assert.equal(results["python.zip"].lakerun["empty/"], "<folder>");
    assert.equal(results["python.zip"].lakerun["data/2024/q1/"], "<folder>");
  },
});

Deno.test({
  name:
    "self-extracting archives (with and without zip -A) and trailing bytes: extracted, warned where unzip warns",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      [
        "mkdir -p t/sub && seq 1 50000 > t/sub/n.csv && echo hi > t/hi.txt",
        "zip -qr plain.zip t",
        'cat "$(command -v unzipsfx)" plain.zip > sfx.zip',
        "cp sfx.zip sfx-adjusted.zip && zip -qA sfx-adjusted.zip",
        "cp plain.zip newline.zip && printf '\\n' >> newline.zip",
        "cp plain.zip padded.zip && head -c 4096 /dev/zero >> padded.zip",
        "cp plain.zip appended.zip && cat plain.zip >> appended.zip",
      ].join("\n"),
      ["sfx.zip", "sfx-adjusted.zip", "newline.zip", "padded.zip", "appended.zip"],
    );
    for (const name of ["sfx.zip", "sfx-adjusted.zip", "newline.zip", "padded.zip"]) {
      assertSameAsUnzip(results[name], name);
      const warned = results[name].lines.some((line) =>
        /warning: \d+ extra bytes at the beginning/.test(line)
      );
      // unzip warns (and exits 1) for the stub whose offsets it has to correct, and only there
      assert.equal(warned, name === "sfx.zip", `${name}: ${results[name].lines.join("\n")}`);
      assert.equal(results[name].unzipCode, name === "sfx.zip" ? 1 : 0, name);
    }
    assert.ok(results["sfx.zip"].lines.some((line) => line.includes("downloading it first")));
    // an archive followed by another: a reader that starts from the end would see other entries
    assert.match(
      results["appended.zip"].error?.message ?? "",
      /unexpected data after the end of the archive|not in the central/,
    );
    assert.deepEqual(results["appended.zip"].lakerun, {});
  },
});

Deno.test({
  name:
    "names: './' prefixes (Python zipfile) are normalised as unzip does; '..' and absolute names stay refused",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      `python3 -c "
import zipfile
with zipfile.ZipFile('dot.zip', 'w') as z:
    z.writestr('./a.csv', 'a\\\\n')
    z.writestr('./d/./b.csv', 'b\\\\n')
    z.mkdir('./e')
with zipfile.ZipFile('parent.zip', 'w') as z:
    z.writestr('ok.csv', 'ok')
    z.writestr('../evil.csv', 'x')
with zipfile.ZipFile('absolute.zip', 'w') as z:
    z.writestr(zipfile.ZipInfo('/etc/evil.csv'), 'y')
"`,
      ["dot.zip", "parent.zip", "absolute.zip"],
    );
    assertSameAsUnzip(results["dot.zip"], "dot.zip");
    assert.deepEqual(Object.keys(results["dot.zip"].lakerun), ["a.csv", "d/", "d/b.csv", "e/"]);
    assert.match(results["parent.zip"].error?.message ?? "", /zip entry '\.\.\/evil\.csv': '\.\.' segment/);
    assert.match(results["absolute.zip"].error?.message ?? "", /zip entry '\/etc\/evil\.csv': absolute path/);
    assert.deepEqual(results["parent.zip"].lakerun, {});
    assert.deepEqual(results["absolute.zip"].lakerun, {});
  },
});

Deno.test({
  name: "a sparse CSV that deflates far better than 200:1 lands by default, as unzip extracts it",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      `python3 -c "
import zipfile
row = ',' * 60 + '\\\\n'
rows = ''.join(row if i % 5000 else '%d,x%s' % (i, row) for i in range(600000))
with zipfile.ZipFile('sparse.zip', 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr('survey/sparse.csv', rows)
"`,
      ["sparse.zip"],
    );
    assertSameAsUnzip(results["sparse.zip"], "sparse.zip");
  },
});

Deno.test({
  name: "an entry name longer than the file system allows fails naming the entry, and lands nothing",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      `python3 -c "
import zipfile
with zipfile.ZipFile('long.zip', 'w') as z:
    z.writestr('ok.csv', 'ok')
    z.writestr('d/' + 'x' * 300 + '.csv', 'a\\\\n')
"`,
      ["long.zip"],
    );
    const { error, lakerun, unzipCode } = results["long.zip"];
    assert.notEqual(unzipCode, 0, "unzip cannot create it either");
    assert.match(error?.message ?? "", /zip entry 'd\/x{100,}…': File name too long \(os error 36\)/);
    assert.deepEqual(lakerun, {});
  },
});

Deno.test({
  name: "a Zip64 archive of 66,000 small entries (Python zipfile) matches unzip's tree",
  ignore,
  fn: async () => {
    const results = await extractBoth(
      `python3 -c "
import zipfile
with zipfile.ZipFile('many.zip', 'w', zipfile.ZIP_DEFLATED) as z:
    for i in range(66000):
        z.writestr('d%02d/f%05d.txt' % (i // 1000, i), 'row,%d\\\\n' % i * 5)
"`,
      ["many.zip"],
    );
    assertSameAsUnzip(results["many.zip"], "many.zip");
    assert.equal(Object.keys(results["many.zip"].lakerun).length, 66000 + 66);
  },
});

/** Makes the test's tree: nested folders, an empty one, a deflatable CSV of 349 KB and 200 KB of noise. */
const SEVEN_ZIP_TREE = [
  "mkdir -p tree/a/empty tree/b/c/deeper tree/d",
  "seq 1 60000 > tree/b/c/big.csv && echo x > tree/b/x.csv && head -c 200000 /dev/urandom > tree/d/noise.bin",
].join("\n");

/** A line of fixture script that fails it, saying `what` was expected, unless `command` succeeds. */
const check = (command: string, what: string) => `${command} || { echo 'expected ${what}' >&2; exit 1; }`;

/** A line of fixture script that fails it unless `archive`'s first bytes, in hex, are `hex`. */
const startsWith = (archive: string, hex: string) =>
  check(
    `[ "$(od -An -tx1 -N${hex.length / 2} ${archive} | tr -d ' \\n')" = ${hex} ]`,
    `${archive} to start with ${hex}`,
  );

Deno.test({
  name:
    "7-Zip (7zz a -tzip): a nested tree deflated and stored, and its standard input to a file and to a pipe (Zip64 local headers): as unzip makes them",
  ignore: ignore7z,
  fn: async () => {
    const results = await extractBoth(
      [
        SEVEN_ZIP_TREE,
        `${SEVEN_ZIP} a -tzip -bso0 -bsp0 deflate.zip tree`,
        `${SEVEN_ZIP} a -tzip -bso0 -bsp0 -mm=Copy stored.zip tree`,
        // 7-Zip deflates the CSV and stores what does not shrink (the noise, x.csv, the folders)
        check("zipinfo deflate.zip | grep -q ' defN .* tree/b/c/big.csv$'", "big.csv deflated"),
        check("zipinfo deflate.zip | grep -q ' stor .* tree/d/noise.bin$'", "noise.bin stored"),
        check("[ $(zipinfo stored.zip | grep -c ' stor ') = 10 ]", "10 stored entries"),
        // the size is unknown when the local header is written: 7-Zip writes a Zip64 extra field (version 45)
        `seq 1 200000 | ${SEVEN_ZIP} a -tzip -bso0 -bsp0 -sidata.csv stdin.zip`,
        startsWith("stdin.zip", "504b03042d000000"),
        // ... and when it cannot seek back, the sizes follow the data in a Zip64 (24-byte) data descriptor
        `seq 1 200000 | ${SEVEN_ZIP} a -tzip -bsp0 -so -sidata.csv unused.zip > piped.zip`,
        startsWith("piped.zip", "504b03042d000800"),
      ].join("\n"),
      ["deflate.zip", "stored.zip", "stdin.zip", "piped.zip"],
    );
    for (const name of ["deflate.zip", "stored.zip"]) {
      assertSameAsUnzip(results[name], name);
      assert.deepEqual(Object.keys(results[name].lakerun), [
        "tree/",
        "tree/a/",
        "tree/a/empty/",
        "tree/b/",
        "tree/b/c/",
        "tree/b/c/big.csv",
        "tree/b/c/deeper/",
        "tree/b/x.csv",
        "tree/d/",
        "tree/d/noise.bin",
      ], name);
    }
    for (const name of ["stdin.zip", "piped.zip"]) {
      assertSameAsUnzip(results[name], name);
      assert.deepEqual(Object.keys(results[name].lakerun), ["data.csv"], name);
    }
  },
});

Deno.test({
  name:
    "7-Zip names: UTF-8 with flag bit 11 (7zz's default, -mcu=on), without it (-mcl), decomposed (NFD): as unzip makes them",
  ignore: ignore7z,
  fn: async () => {
    const results = await extractBoth(
      [
        "mkdir -p données/été données/日本 données/vide données/nfd",
        "echo a > données/été/café.csv && echo b > données/日本/東京.csv && echo c > données/😀.txt",
        "echo d > données/nfd/$'cafe\\xcc\\x81'.csv",
        `${SEVEN_ZIP} a -tzip -bso0 -bsp0 default.zip données`,
        `${SEVEN_ZIP} a -tzip -bso0 -bsp0 -mcu=on utf8.zip données`,
        `${SEVEN_ZIP} a -tzip -bso0 -bsp0 -mcl local.zip données`,
        // flag bit 11 (0x0800) on the non-ASCII names, and not with -mcl (the same bytes, unflagged)
        `python3 -c "
import zipfile
for name, flag in [('default.zip', 0x800), ('utf8.zip', 0x800), ('local.zip', 0)]:
    flags = {i.flag_bits & 0x800 for i in zipfile.ZipFile(name).infolist()}
    assert flags == {flag}, (name, flags)
"`,
      ].join("\n"),
      ["default.zip", "utf8.zip", "local.zip"],
    );
    for (const [name, result] of Object.entries(results)) {
      assertSameAsUnzip(result, name);
      assert.deepEqual(Object.keys(result.lakerun), [
        "données/",
        "données/nfd/",
        "données/nfd/cafe\u0301.csv",
        "données/vide/",
        "données/été/",
        "données/été/café.csv",
        "données/日本/",
        "données/日本/東京.csv",
        "données/😀.txt",
      ], name);
    }
  },
});

/**
 * Adds `file` to 7-Zip's tree (made by the Python `script`), archives the tree with 7-Zip's `method` and
 * asserts that lakerun extracts it as unzip does, `file` compressed with that method (as `unzip -v` shows it,
 * `shown`).
 */
async function assertMethodLikeUnzip(method: string, shown: string, file: string, script: string) {
  const name = `${method}.zip`;
  const results = await extractBoth(
    [
      SEVEN_ZIP_TREE,
      `python3 -c "${script}"`,
      `${SEVEN_ZIP} a -tzip -bso0 -bsp0 -mm=${method} ${name} tree`,
      check(`unzip -v ${name} | grep -q '${shown}.* tree/${file}$'`, `${file} compressed with ${method}`),
    ].join("\n"),
    [name],
  );
  assertSameAsUnzip(results[name], name);
  assert.equal(Object.keys(results[name].lakerun).length, 11);
}

Deno.test({
  name:
    "7-Zip's Deflate64 (Windows' zip folders use it for large files): matches unzip's tree, long matches and 64 KiB distances included",
  ignore: ignore7z,
  fn: async () => {
    // repeats 40,000 to 60,000 bytes apart (distance codes 30 and 31) and runs longer than 258 bytes (length
    // code 285 with 16 extra bits): what only Deflate64 has
    await assertMethodLikeUnzip(
      "Deflate64",
      "Def64",
      "far.csv",
      `
import random
random.seed(64)
out = []
for size in (40000, 52000, 60000):
    block = ''.join(random.choice('0123456789,') for _ in range(size))
    out += [block, block, 'x' * 70000]
open('tree/far.csv', 'w').write(''.join(out))
`,
    );
  },
});

Deno.test({
  name: "7-Zip's BZip2 (which unzip extracts): matches unzip's tree, runs and several blocks included",
  ignore: ignore7z,
  fn: async () => {
    // more than one 900 kB block, and runs of 4 to 300 equal bytes (bzip2's first run-length step)
    await assertMethodLikeUnzip(
      "BZip2",
      "BZip2",
      "runs.csv",
      `
import random
random.seed(12)
open('tree/runs.csv', 'w').write(''.join(random.choice('0123456789,') * random.randint(1, 300) for _ in range(30000)))
`,
    );
  },
});

Deno.test({
  name:
    "7-Zip's other methods (LZMA, PPMd, XZ, which unzip cannot extract either) are refused naming the entry and the method, and land nothing",
  ignore: ignore7z,
  fn: async () => {
    const methods: [string, string][] = [
      ["LZMA", "14 \\(lzma\\)"],
      ["PPMd", "98 \\(ppmd\\)"],
      ["XZ", "95 \\(xz\\)"],
    ];
    const results = await extractBoth(
      [
        SEVEN_ZIP_TREE,
        ...["Copy", ...methods.map(([method]) => method)].map((method) =>
          `${SEVEN_ZIP} a -tzip -bso0 -bsp0 -mm=${method} ${method}.zip tree`
        ),
        ...methods.map(([method]) =>
          check(
            `zipinfo ${method}.zip | grep -q ' stor .* tree/d/noise.bin$'`,
            `noise.bin stored in ${method}.zip`,
          )
        ),
      ].join("\n"),
      ["Copy.zip", ...methods.map(([method]) => `${method}.zip`)],
    );
    // the tree itself, as unzip and lakerun extract it from the archive that stores every entry
    assertSameAsUnzip(results["Copy.zip"], "Copy.zip");
    assert.equal(Object.keys(results["Copy.zip"].lakerun).length, 10);
    for (const [method, shown] of methods) {
      const { error, lakerun, unzipCode } = results[`${method}.zip`];
      assert.match(
        error?.message ?? "",
        new RegExp(`zip entry 'tree/b/c/big\\.csv': unsupported compression method ${shown}`),
        method,
      );
      assert.deepEqual(lakerun, {}, method);
      assert.notEqual(unzipCode, 0, `${method}: unzip cannot extract it either`);
    }
  },
});

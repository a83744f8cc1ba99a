/**
 * Entry names: decoding them from their raw bytes (UTF-8, the Info-ZIP Unicode Path extra field or code page
 * 437) and {@link NameRegistry}, which refuses unsafe names, duplicates, file/folder conflicts and (unless
 * allowed) version-control metadata.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { isTemporaryName, relativePathProblem } from "../storage/mod.ts";
import { shown, zipError } from "./errors.ts";
import { EXTRA_UNICODE_PATH, extraField, FLAG_UTF8, u32 } from "./format.ts";

const CP437_HIGH =
  "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A character outside ASCII (an ASCII name needs no Unicode normalisation). */
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * Decodes an entry name: UTF-8 when flag bit 11 is set; else the Unicode Path extra field when its CRC
 * matches the raw name; else the raw bytes as UTF-8 when they are valid UTF-8, and as code page 437 otherwise.
 */
export function decodeName(raw: Uint8Array, flags: number, extra: Uint8Array): string {
  if (flags & FLAG_UTF8) {
    try {
      return utf8.decode(raw);
    } catch {
      throw zipError(cp437(raw), "name is flagged UTF-8 but is not valid UTF-8");
    }
  }
  const unicode = extraField(extra, EXTRA_UNICODE_PATH);
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

/** The metadata folders of version-control systems, refused in archives unless allowed. */
export const VCS_FOLDERS: readonly string[] = [".git", ".hg", ".svn"];

/** How the refusal of a version-control entry ends, for callers that add how to allow it. */
export const VCS_REFUSAL = "version-control metadata, which can make its tool run commands (hooks, config)";

/**
 * The version-control folder an entry path goes through or is (compared case-insensitively, as case-insensitive
 * file systems would), if any.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { vcsFolderOf } from "./names.ts";
 *
 * assert.equal(vcsFolderOf("repo/.git/config"), ".git");
 * assert.equal(vcsFolderOf(".HG/hgrc"), ".HG");
 * assert.equal(vcsFolderOf("data/.gitignore"), undefined);
 * ```
 */
export function vcsFolderOf(path: string): string | undefined {
  return path.split("/").find((segment) => VCS_FOLDERS.includes(segment.normalize("NFC").toLowerCase()));
}

/**
 * The names of one archive's entries: each is validated as a safe relative path (and not one of lakerun's
 * temporary names, nor, unless `allowVcsMetadata`, inside a `.git`, `.hg` or `.svn` folder) and compared,
 * after Unicode NFC normalisation, with the names before it, refusing duplicates and any name that is both a
 * file and a folder.
 */
export class NameRegistry {
  /** NFC name → name, for file entries. */
  #files = new Map<string, string>();
  /** NFC path → entry that made it a folder (explicit directory entries and parents of every entry). */
  #dirs = new Map<string, string>();
  /** NFC path → name, for explicit directory entries. */
  #explicitDirs = new Map<string, string>();
  readonly #allowVcsMetadata: boolean;

  /** `allowVcsMetadata` extracts entries inside `.git`, `.hg` and `.svn` folders too (default: refused). */
  constructor(options: { allowVcsMetadata?: boolean } = {}) {
    this.#allowVcsMetadata = options.allowVcsMetadata ?? false;
  }

  /** Validates `name` and records it; returns whether it is a directory entry. */
  add(name: string): boolean {
    const isDir = name.endsWith("/");
    const path = isDir ? name.slice(0, -1) : name;
    const problem = relativePathProblem(path) ?? this.#reservedNameProblem(path);
    if (problem) throw zipError(name, problem);

    // an ASCII name is its own NFC form
    const key = NON_ASCII.test(path) ? path.normalize("NFC") : path;
    // its folders, deepest first, up to the first one known: those above a known folder are known too
    const parents: string[] = [];
    for (let slash = key.lastIndexOf("/"); slash > 0; slash = key.lastIndexOf("/", slash - 1)) {
      const parent = key.slice(0, slash);
      if (this.#dirs.has(parent)) break;
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
    for (const parent of parents) this.#dirs.set(parent, name);
    return isDir;
  }

  /**
   * Why `path` is reserved: a segment is lakerun's temporary name or (unless allowed) a version-control
   * folder. Both start with a dot, which Unicode normalisation and lower-casing leave as it is, so a path
   * with no segment starting with one is not looked at further.
   */
  #reservedNameProblem(path: string): string | undefined {
    if (!path.startsWith(".") && !path.includes("/.")) return undefined;
    if (path.split("/").some(isTemporaryName)) return "reserved temporary name";
    const vcs = this.#allowVcsMetadata ? undefined : vcsFolderOf(path);
    return vcs ? `'${vcs}' is ${VCS_REFUSAL}` : undefined;
  }
}

/**
 * An entry name without its `.` segments, as several zip libraries write names (`./data/a.csv`): they are
 * safe once dropped, and unzip drops them too. `./` alone (the archive's own folder) becomes `""`. Nothing
 * else changes: `..`, a leading `/` and empty segments are left for {@link NameRegistry} to refuse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withoutDotSegments } from "./names.ts";
 *
 * assert.equal(withoutDotSegments("./data/a.csv"), "data/a.csv");
 * assert.equal(withoutDotSegments("./data/./2024/"), "data/2024/");
 * assert.equal(withoutDotSegments("./"), "");
 * assert.equal(withoutDotSegments("./../x"), "../x"); // still refused
 * assert.equal(withoutDotSegments("/./etc/x"), "/etc/x"); // still absolute
 * ```
 */
export function withoutDotSegments(name: string): string {
  if (!name.startsWith("./") && !name.includes("/./") && name !== "." && !name.endsWith("/.")) return name;
  const isDir = name.endsWith("/") || name.endsWith("/.") || name === ".";
  const segments = name.split("/").filter((segment) => segment !== ".");
  if (isDir && segments.at(-1) === "") segments.pop();
  const path = segments.join("/");
  return isDir && path !== "" ? `${path}/` : path;
}

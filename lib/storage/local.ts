/**
 * Local folders as {@link Storage}: every write goes to a short temporary name in the destination folder and
 * is renamed into place when complete; symbolic links are listed but never followed or written through.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { sha256OfStream } from "../hashing.ts";
import { SmallFileWriter } from "./small_files.ts";
import { byobReader } from "../streams.ts";
import {
  checkRelativePath,
  type CopyOptions,
  type CopyResult,
  isRangedSource,
  isTemporaryName,
  type RemovedLeftovers,
  type Storage,
  type StoredFile,
  TEMP_PREFIX,
  type WriteBatch,
  type WriteOptions,
  type WriteResult,
} from "./mod.ts";

/** A location that does not exist. */
export class LocationNotFoundError extends Error {
  constructor(readonly location: string) {
    super(`${location} does not exist`);
    this.name = "LocationNotFoundError";
  }
}

/** A write whose byte count differs from the expected size. */
export class SizeMismatchError extends Error {
  constructor(path: string, expected: number, actual: number) {
    super(`${path}: expected ${expected} bytes, got ${actual}`);
    this.name = "SizeMismatchError";
  }
}

/**
 * The mark of this process in the temporary names its steps make (its id, in base 36): a step's clean-up of
 * what killed runs left never takes the temporaries of a step running beside it (steps are Workers of one
 * process) for left-overs.
 */
const OWN_PREFIX = `${TEMP_PREFIX}${Deno.pid.toString(36)}-`;

/**
 * A short random temporary name, for a file or folder that will be renamed into place once complete, marked
 * with this process's id. It does not include the final name, so it fits wherever the final name fits (a name
 * near the file system's 255-byte limit cannot be made longer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isOwnTemporary, temporaryName } from "./local.ts";
 * import { isTemporaryName } from "./mod.ts";
 *
 * const name = temporaryName(); // e.g. ".lakerun-tmp-4fk-1s8h1bkzwo75m"
 * assert.match(name, /^\.lakerun-tmp-[0-9a-z]+-[0-9a-z]+$/);
 * assert.ok(name.length <= 40);
 * assert.equal(isTemporaryName(name), true); // listings skip it
 * assert.equal(isOwnTemporary(name), true); // clean-ups leave it to the step writing it
 * assert.equal(isOwnTemporary(".lakerun-tmp-1s8h1bkzwo75m"), false); // a killed run's
 * assert.notEqual(temporaryName(), name);
 * ```
 */
export function temporaryName(): string {
  const random = crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "");
  return `${OWN_PREFIX}${random}`;
}

/** True for a temporary name this process made: a step running now may still be writing it. */
export function isOwnTemporary(name: string): boolean {
  return name.startsWith(OWN_PREFIX);
}

/** A temporary path in the folder of `full`, for a file to be renamed to `full` once complete. */
function temporaryBeside(full: string): string {
  return join(dirname(full), temporaryName());
}

/** Files up to this size are read, hashed and copied with one synchronous call each. */
const SMALL_FILE = 4 * 1024 * 1024;

/**
 * Folders of a batch staged in temporary folders of their own in the batch's folder, at most; the others are
 * staged inside their parent's. A file system's folder does not shrink when its entries go (ext4), so this
 * bounds what a batch of very many folders leaves the landing folder weighing.
 */
export const FOLDERS_STAGED_APART = 1024;

/** The file's metadata without following a link; `undefined` when there is nothing at `path`. */
function lstatOrNothing(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return undefined;
    throw error;
  }
}

/**
 * Copies the file `from` to the new file `to` with the operating system's file copy (synchronously up to
 * {@link SMALL_FILE}) and returns its size, failing with a {@link SizeMismatchError} naming `label` when it is
 * not `expected`. The caller removes `to` on failure.
 */
async function copyFileChecked(from: string, to: string, expected: number | undefined, label: string) {
  if ((expected ?? Infinity) <= SMALL_FILE) Deno.copyFileSync(from, to);
  else await Deno.copyFile(from, to);
  const size = Deno.lstatSync(to).size;
  if (expected !== undefined && size !== expected) throw new SizeMismatchError(label, expected, size);
  return size;
}

/** Whether `error` is a rename's refusal to cross file systems (EXDEV). */
function isCrossDevice(error: unknown): boolean {
  return error instanceof Error &&
    /cross-device|EXDEV/i.test(`${error.message} ${(error as { code?: string }).code}`);
}

/**
 * Renames a finished temporary file to `full`, the file `path` of this location; a folder already there (the
 * source held `path` and files under `path/`) is named as the conflict it is, not as the system's error.
 */
function renameIntoPlace(temporary: string, full: string, path: string): void {
  try {
    Deno.renameSync(temporary, full);
  } catch (error) {
    if (!(error instanceof Deno.errors.IsADirectory) && !lstatOrNothing(full)?.isDirectory) throw error;
    throw new Error(
      `${path} cannot be written: a folder of that name is there (a file and a folder cannot share a name; ` +
        `files under ${path}/ were written first)`,
      { cause: error },
    );
  }
}

/** Removes `path`, ignoring any failure (for clean-ups after another error). */
function removeQuietly(path: string, options?: Deno.RemoveOptions): void {
  try {
    Deno.removeSync(path, options);
  } catch {
    // gone already, or the original error matters more
  }
}

/**
 * Adds to `moves` the renames that move every entry of the folder `from` into the folder `to`: an entry `to`
 * lacks is renamed as a whole (a folder with everything in it in one call), a folder both have is merged, a
 * file replaces the file of the same name. Throws for a symbolic link, a file where a folder goes, or a folder
 * where a file goes, before the caller has moved anything.
 */
function planMerge(from: string, to: string, moves: Array<[string, string]>): void {
  for (const entry of [...Deno.readDirSync(from)]) {
    planMove(join(from, entry.name), join(to, entry.name), entry, moves);
  }
}

/** Adds to `moves` what moves `source` (a file, or a folder: merged) to `target`; see {@link planMerge}. */
function planMove(
  source: string,
  target: string,
  entry: { isDirectory: boolean },
  moves: Array<[string, string]>,
): void {
  const there = lstatOrNothing(target);
  if (there === undefined) {
    moves.push([source, target]);
  } else if (there.isSymlink) {
    throw new Error(`refusing to write through symbolic link ${target}`);
  } else if (entry.isDirectory) {
    if (!there.isDirectory) throw new Error(`${target} is a file, not a folder`);
    planMerge(source, target, moves);
  } else {
    if (there.isDirectory) throw new Error(`${target} is a folder, not a file`);
    moves.push([source, target]);
  }
}

/**
 * A local folder.
 *
 * File-system calls are synchronous (a stat, a rename, a small file read or copied whole): a step runs on its
 * own thread, and a synchronous call costs a few microseconds where an awaited one hands the work to another
 * thread and waits to be woken, which made a folder of many small files spend most of its time waiting.
 * Bytes of large files still flow in chunks between awaits.
 */
export class LocalStorage implements Storage {
  readonly kind = "local" as const;

  /**
   * Folders (relative paths, `""` the folder itself) this instance has seen to be real folders, not links:
   * each is checked once rather than before every file in it (a folder of many small files made every file
   * cost a check of each folder above it). Forgotten when this instance removes the folder.
   */
  readonly #checkedFolders = new Set<string>();

  /** The root with one trailing slash: a checked relative path appended to it is its full path. */
  readonly #prefix: string;

  /** @param root absolute path of the folder */
  constructor(readonly root: string) {
    this.#prefix = join(root, "/");
  }

  get url(): string {
    return this.root;
  }

  /** The folder itself. */
  get localFolder(): string {
    return this.root;
  }

  /** Takes the file from another local folder by {@link LocalStorage.moveTo}; `false` for other sources. */
  async moveFrom(source: Storage, sourcePath: string, path: string): Promise<boolean> {
    if (!(source instanceof LocalStorage)) return false;
    await source.moveTo(sourcePath, this, path);
    return true;
  }

  /**
   * Renames the files `paths` of another local folder to the same paths here: a folder this one lacks and
   * whose every entry is one of `paths` (or such a folder) in one rename, the other files one by one, except
   * where this folder already has something at the path. Files of a moved-through folder that are not in
   * `paths` (they appeared after the caller listed them, say) stay in the source. Symbolic links are never
   * followed or moved. Across file systems nothing is moved (rename fails): the caller copies instead.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LocalStorage } from "./local.ts";
   *
   * const root = await Deno.makeTempDir();
   * const landing = new LocalStorage(`${root}/landing`);
   * const archive = new LocalStorage(`${root}/archive`);
   * for (const path of ["2024/01/a.csv", "2024/01/b.csv", "2024/02/c.csv", "new.csv"]) {
   *   await landing.write(path, new Blob([path]).stream());
   * }
   * await archive.write("2024/02/c.csv", new Blob(["archived before"]).stream());
   * const moved = await archive.moveAllFrom(landing, ["2024/01/a.csv", "2024/01/b.csv", "2024/02/c.csv"]);
   * assert.deepEqual([...moved].sort(), ["2024/01/a.csv", "2024/01/b.csv"]); // 2024/01 in one rename
   * assert.deepEqual(await Array.fromAsync(landing.list(), (f) => f.path), ["2024/02/c.csv", "new.csv"]);
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  // deno-lint-ignore require-await
  async moveAllFrom(source: Storage, paths: Iterable<string>): Promise<Set<string>> {
    const moved = new Set<string>();
    if (!(source instanceof LocalStorage)) return moved;
    const wanted = new Set<string>();
    const folders = new Set<string>(); // folders holding a wanted file
    for (const path of paths) {
      wanted.add(checkRelativePath(path));
      for (let at = path.indexOf("/"); at > 0; at = path.indexOf("/", at + 1)) folders.add(path.slice(0, at));
    }
    if (wanted.size === 0) return moved;
    source.#refuseLink(source.root, "the folder itself");
    this.#makeParents("x");
    const prefix = (folder: string, name: string) => (folder ? `${folder}/${name}` : name);
    // the wanted files of a folder all of whose entries are wanted (recursively), or undefined
    const whole = new Map<string, string[] | undefined>();
    const wholeFolder = (folder: string): string[] | undefined => {
      if (whole.has(folder)) return whole.get(folder);
      let files: string[] | undefined = [];
      for (const entry of Deno.readDirSync(folder ? source.pathOf(folder) : source.root)) {
        const path = prefix(folder, entry.name);
        const inner = entry.isDirectory && !entry.isSymlink ? wholeFolder(path) : undefined;
        if (entry.isFile && wanted.has(path)) files?.push(path);
        else if (inner) files?.push(...inner);
        else files = undefined;
        if (!files) break;
      }
      whole.set(folder, files);
      return files;
    };
    const rename = (path: string): boolean => {
      try {
        Deno.renameSync(source.pathOf(path), this.pathOf(path));
        return true;
      } catch (error) {
        if (isCrossDevice(error)) return false;
        throw error;
      }
    };
    const walk = (folder: string): boolean => {
      for (const entry of [...Deno.readDirSync(folder ? source.pathOf(folder) : source.root)]) {
        const path = prefix(folder, entry.name);
        if (entry.isSymlink || isTemporaryName(entry.name)) continue;
        if (entry.isDirectory && folders.has(path)) {
          const there = lstatOrNothing(this.pathOf(path));
          const files = there === undefined ? wholeFolder(path) : undefined;
          if (files && files.length > 0) {
            if (!rename(path)) return false;
            for (const file of files) moved.add(file);
            this.#checkedFolders.add(path);
            source.#checkedFolders.delete(path);
            continue;
          }
          if (there !== undefined && (there.isSymlink || !there.isDirectory)) continue; // left to the caller
          this.#makeParents(`${path}/x`);
          if (!walk(path)) return false;
        } else if (entry.isFile && wanted.has(path) && lstatOrNothing(this.pathOf(path)) === undefined) {
          if (!rename(path)) return false;
          moved.add(path);
        }
      }
      return true;
    };
    walk("");
    return moved;
  }

  /** Absolute path of `path` inside this folder. */
  pathOf(path: string): string {
    // a checked path has no empty, '.' or '..' segment: appending it is what join would give, at less cost
    return this.#prefix + checkRelativePath(path);
  }

  /** Fails unless the folder exists (as a folder). */
  #checkRoot(): void {
    try {
      if (!Deno.statSync(this.root).isDirectory) throw new Error(`${this.root} is not a folder`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new LocationNotFoundError(this.root);
      throw error;
    }
  }

  async *list(options: { signal?: AbortSignal } = {}): AsyncIterable<StoredFile> {
    this.#checkRoot();
    const files: StoredFile[] = [];
    const walk = (dir: string, prefix: string) => {
      options.signal?.throwIfAborted();
      for (const entry of [...Deno.readDirSync(dir)]) {
        if (isTemporaryName(entry.name)) continue;
        const path = prefix + entry.name;
        if (entry.isSymlink) {
          files.push({ path, size: 0, kind: "symlink" });
        } else if (entry.isDirectory) {
          walk(join(dir, entry.name), `${path}/`);
        } else if (entry.isFile) {
          const info = lstatOrNothing(join(dir, entry.name));
          if (info?.isFile) {
            files.push({ path, size: info.size, kind: "file", mtime: info.mtime ?? undefined });
          }
        }
      }
    };
    walk(this.root, "");
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    yield* files;
  }

  /**
   * The empty folders in this folder's tree (holding nothing but lakerun's temporary names), sorted; folders
   * reached through a symbolic link are not looked into.
   */
  // deno-lint-ignore require-await
  async emptyFolders(options: { signal?: AbortSignal } = {}): Promise<string[]> {
    this.#checkRoot();
    const empty: string[] = [];
    const walk = (dir: string, prefix: string) => {
      options.signal?.throwIfAborted();
      let entries = 0;
      for (const entry of [...Deno.readDirSync(dir)]) {
        if (isTemporaryName(entry.name)) continue;
        entries++;
        if (entry.isDirectory) walk(join(dir, entry.name), `${prefix}${entry.name}/`);
      }
      if (entries === 0 && prefix !== "") empty.push(prefix.slice(0, -1));
    };
    walk(this.root, "");
    return empty.sort();
  }

  /** Creates the folder `path` and those above it, refusing to go through a symbolic link. */
  // deno-lint-ignore require-await
  async makeFolder(path: string): Promise<void> {
    this.#makeParents(`${checkRelativePath(path)}/x`);
  }

  /** Whether `path` is a folder (not a symbolic link to one). */
  // deno-lint-ignore require-await
  async hasFolder(path: string): Promise<boolean> {
    return lstatOrNothing(this.pathOf(path))?.isDirectory === true;
  }

  /** Removes the folder `path` if it is empty, then any folders above it that it left empty. */
  // deno-lint-ignore require-await
  async removeFolder(path: string): Promise<void> {
    this.#refuseLinks(path, false);
    try {
      Deno.removeSync(this.pathOf(path)); // fails unless empty
      this.#checkedFolders.delete(checkRelativePath(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#pruneEmptyParents(path);
  }

  // deno-lint-ignore require-await
  async stat(path: string): Promise<StoredFile | undefined> {
    const info = lstatOrNothing(this.pathOf(path));
    if (info?.isSymlink) return { path, size: 0, kind: "symlink" };
    if (!info?.isFile) return undefined;
    return { path, size: info.size, kind: "file", mtime: info.mtime ?? undefined };
  }

  // deno-lint-ignore require-await
  async read(path: string): Promise<ReadableStream<Uint8Array>> {
    const full = this.pathOf(path);
    this.#refuseLinks(path, true);
    return Deno.openSync(full, { read: true }).readable;
  }

  async write(
    path: string,
    data: ReadableStream<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<WriteResult> {
    const full = this.pathOf(path);
    this.#makeParents(path);
    const temporary = temporaryBeside(full);
    const result = await writeFileFromStream(temporary, data, options, path);
    try {
      this.#refuseFinalLink(full);
      renameIntoPlace(temporary, full, path);
    } catch (error) {
      removeQuietly(temporary);
      throw error;
    }
    return result;
  }

  /**
   * Copies `sourcePath` of another local folder into `path` with the operating system's file copy (no byte
   * passes through lakerun), or downloads it from a {@link RangedSource} (an S3 location) by ranges on several
   * threads; either way into a temporary name renamed into place once checked. Resolves to `undefined`
   * (nothing written) for any other source, or when the source prefers to stream this file.
   */
  async copyFrom(
    source: Storage,
    sourcePath: string,
    path: string,
    options: CopyOptions = {},
  ): Promise<CopyResult | undefined> {
    if (source instanceof LocalStorage) return await this.#copyLocal(source, sourcePath, path, options);
    if (!isRangedSource(source)) return undefined;
    const full = this.pathOf(path);
    this.#makeParents(path);
    const temporary = temporaryBeside(full);
    try {
      const result = await source.downloadInto(sourcePath, temporary, options);
      if (!result) return undefined;
      this.#refuseLinks(path, false);
      renameIntoPlace(temporary, full, path);
      return { ...result, serverSide: false };
    } catch (error) {
      removeQuietly(temporary);
      throw error;
    }
  }

  /** A file of another local folder copied by the operating system, its size checked, renamed into place. */
  async #copyLocal(
    source: LocalStorage,
    sourcePath: string,
    path: string,
    options: CopyOptions,
  ): Promise<CopyResult> {
    options.signal?.throwIfAborted();
    source.#refuseLinks(sourcePath, true);
    const from = source.pathOf(sourcePath);
    const full = this.pathOf(path);
    this.#makeParents(path);
    const temporary = temporaryBeside(full);
    try {
      const size = await copyFileChecked(from, temporary, options.size, path);
      options.signal?.throwIfAborted();
      this.#refuseFinalLink(full);
      renameIntoPlace(temporary, full, path);
      return { size, serverSide: false };
    } catch (error) {
      removeQuietly(temporary);
      throw error;
    }
  }

  /**
   * A {@link WriteBatch} staged in temporary folders inside this one, whose commit moves each staged folder
   * this one lacks into place in one rename (and merges the others), so that many small files cost one call
   * each; what it would refuse (a file where a folder goes, a symbolic link) is found before anything moves.
   *
   * The files of each folder are staged in a temporary folder of their own in this one (top-level files in
   * one more), so that a staged file's path is this folder's and two components whatever its depth: in a
   * step's sandbox Deno resolves every component of a file's path, twice, before it creates the file, which
   * made file creation cost twice what it costs unsandboxed here (beyond {@link FOLDERS_STAGED_APART}
   * folders, the others are staged inside their parent's). A file and a folder of the same name are refused
   * when the second is written (staged apart, they would only meet at commit).
   *
   * Also offers `writeBytes` (a file whose bytes are all in memory) and `makeFolder` (an empty folder that
   * lands too). `writeBytes` hands its file to a {@link SmallFileWriter}: written in batches, on this thread
   * and, once there are many, on a helper thread too while it keeps up (measured in `small_files.ts`);
   * `flush` waits for them, as `commit` and `abort` do, and a failure names the file's path
   * (`FileWriteError` of small_files.ts).
   */
  // deno-lint-ignore require-await
  async batch(): Promise<
    WriteBatch & Required<Pick<WriteBatch, "writeBytes" | "makeFolder" | "open" | "copyFrom" | "flush">>
  > {
    this.#makeParents("x");
    // top-level files are staged here, the files of each folder in a temporary folder of its own beside it
    const staging = join(this.root, temporaryName());
    Deno.mkdirSync(staging);
    const smallFiles = new SmallFileWriter();
    const folders = new Map<string, string>(); // folder → where its files are staged
    // folder → the temporary folder of its own it is staged in, a folder's parent before it
    const apart = new Map<string, string>();
    const written = new Set<string>(); // a path written twice lands once, with its last bytes
    /** Makes the staged folder and those above it; returns where the folder's files go. */
    const makeFolders = (folder: string): string => {
      const made = folders.get(folder);
      if (made !== undefined) return made;
      if (written.has(folder)) throw new Error(`${folder} is a file of this batch, not a folder`);
      const slash = folder.lastIndexOf("/");
      const parent = slash > 0 ? makeFolders(folder.slice(0, slash)) : staging;
      // apart while there are few (its parent then is too); beyond, inside its parent's, moving with it
      const isApart = apart.size < FOLDERS_STAGED_APART;
      const full = isApart ? join(this.root, temporaryName()) : `${parent}/${folder.slice(slash + 1)}`;
      Deno.mkdirSync(full);
      folders.set(folder, full);
      if (isApart) apart.set(folder, full);
      return full;
    };
    /** Where `path` is staged; a second write goes to a temporary name, renamed over the first when done. */
    const prepare = (path: string): { full: string; temporary?: string } => {
      checkRelativePath(path);
      if (folders.has(path)) throw new Error(`${path} is a folder of this batch, not a file`);
      const slash = path.lastIndexOf("/");
      // a checked relative path: no segment to resolve
      const full = slash > 0
        ? `${makeFolders(path.slice(0, slash))}${path.slice(slash)}`
        : `${staging}/${path}`;
      return written.has(path) ? { full, temporary: temporaryBeside(full) } : { full };
    };
    /** Removes what is staged. */
    const removeStaged = () => {
      for (const folder of [staging, ...apart.values()]) {
        try {
          Deno.removeSync(folder, { recursive: true });
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
    };
    const land = async ({ full, temporary }: { full: string; temporary?: string }, path: string) => {
      if (temporary) {
        await smallFiles.drain(); // the first write of this path may still be going on
        Deno.renameSync(temporary, full);
      }
      written.add(path);
    };
    return {
      write: async (path, data, options) => {
        const target = prepare(path);
        const result = await writeFileFromStream(target.temporary ?? target.full, data, options ?? {}, path);
        await land(target, path);
        return result;
      },
      copyFrom: async (source, sourcePath, path, options = {}) => {
        if (!(source instanceof LocalStorage)) return undefined;
        options.signal?.throwIfAborted();
        source.#refuseLinks(sourcePath, true);
        const target = prepare(path);
        const file = target.temporary ?? target.full;
        try {
          const size = await copyFileChecked(source.pathOf(sourcePath), file, options.size, path);
          await land(target, path);
          return { size, serverSide: false };
        } catch (error) {
          removeQuietly(file);
          throw error;
        }
      },
      // deno-lint-ignore require-await
      open: async (path, options) => {
        const target = prepare(path);
        const writer = new LocalFileWriter(
          target.temporary ?? target.full,
          { ...options, overlap: true },
          path,
        );
        return {
          write: (bytes) => writer.write(bytes),
          close: async () => {
            const result = await writer.close();
            await land(target, path);
            return result;
          },
          abort: () => writer.abort(),
        };
      },
      writeBytes: async (path, bytes) => {
        const target = prepare(path);
        if (!target.temporary) {
          // a path written once (the usual case): nothing to wait for
          smallFiles.add(target.full, path, bytes);
          written.add(path);
          return { size: bytes.byteLength };
        }
        try {
          Deno.writeFileSync(target.temporary, bytes, { createNew: true });
        } catch (error) {
          removeQuietly(target.temporary);
          throw error;
        }
        await land(target, path);
        return { size: bytes.byteLength };
      },
      flush: () => smallFiles.drain(),
      // deno-lint-ignore require-await
      makeFolder: async (path) => {
        makeFolders(checkRelativePath(path));
      },
      commit: async () => {
        await smallFiles.drain();
        smallFiles.close();
        this.#refuseLink(this.root, "the folder itself");
        // every move is known to be possible before the first: a conflict lands nothing
        const moves: Array<[string, string]> = [];
        // a folder whose place is free moves with its files in one rename, after its parent's
        for (const [folder, full] of apart) {
          planMove(full, join(this.root, folder), { isDirectory: true }, moves);
        }
        planMerge(staging, this.root, moves);
        for (const [from, to] of moves) Deno.renameSync(from, to);
        removeStaged();
      },
      abort: async () => {
        // nothing may still be writing into what is removed
        await smallFiles.drain().catch(() => {});
        smallFiles.close();
        removeStaged();
      },
    };
  }

  /** Removes the file, then any folders above it inside this location that it left empty. */
  // deno-lint-ignore require-await
  async remove(path: string): Promise<void> {
    try {
      Deno.removeSync(this.pathOf(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#pruneEmptyParents(path);
  }

  #pruneEmptyParents(path: string): void {
    const segments = checkRelativePath(path).split("/").slice(0, -1);
    while (segments.length > 0) {
      try {
        Deno.removeSync(join(this.root, ...segments)); // fails unless empty
      } catch {
        return;
      }
      this.#checkedFolders.delete(segments.join("/"));
      segments.pop();
    }
  }

  /** Lower-case hex sha256 of the file: read with one call up to 4 MiB, streamed beyond. */
  async sha256(path: string): Promise<string> {
    return (await this.#hash(path, this.#refuseLinks(path, true)!)).sha256;
  }

  /**
   * The size and sha256 of the file at `path`, read once; `undefined` when no file is there, no `sha256` (and
   * nothing read) when its size is not the `size` expected. Refuses a symbolic link, as every read here does.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LocalStorage } from "./local.ts";
   *
   * const root = await Deno.makeTempDir();
   * const folder = new LocalStorage(root);
   * await Deno.writeTextFile(`${root}/a.csv`, "a,b\n");
   * assert.deepEqual(await folder.sha256AndSize("a.csv"), {
   *   size: 4,
   *   sha256: "5be08c9684a1d25efcee09318204824278b08bbfb4aef973ffefd0b9d7478313",
   * });
   * assert.deepEqual(await folder.sha256AndSize("a.csv", { size: 10 }), { size: 4 }); // not read
   * assert.equal(await folder.sha256AndSize("missing.csv"), undefined);
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async sha256AndSize(
    path: string,
    options: { size?: number } = {},
  ): Promise<{ size: number; sha256?: string } | undefined> {
    const info = this.#refuseLinks(path, false);
    if (!info?.isFile) return undefined;
    if (options.size !== undefined && info.size !== options.size) return { size: info.size };
    return await this.#hash(path, info);
  }

  /** Hashes the file at `path`, whose metadata `info` was just read: in one call when it is small. */
  async #hash(path: string, info: Deno.FileInfo): Promise<{ sha256: string; size: number }> {
    if (info.size > SMALL_FILE) return await sha256OfStream(await this.read(path));
    const bytes = Deno.readFileSync(this.pathOf(path));
    return { sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength };
  }

  /**
   * Moves a file to another local folder: a rename when both are on one file system (atomic), otherwise a
   * verified copy followed by removing the source.
   */
  async moveTo(path: string, target: LocalStorage, targetPath: string): Promise<void> {
    this.#refuseLinks(path, true);
    target.#makeParents(targetPath);
    try {
      Deno.renameSync(this.pathOf(path), target.pathOf(targetPath));
      this.#pruneEmptyParents(path);
    } catch (error) {
      if (!isCrossDevice(error)) throw error;
      const source = await this.stat(path);
      const written = await target.write(targetPath, await this.read(path), {
        size: source?.size,
        sha256: true,
      });
      if (written.sha256 !== (await this.sha256(path))) {
        throw new Error(`${target.pathOf(targetPath)}: copy differs from source`);
      }
      await this.remove(path);
    }
  }

  /**
   * Removes the lakerun temporary entries in this folder tree that other processes made: left-overs of a
   * killed run (a temporary name is never the only copy of anything). Those of this process are left: a step
   * running beside this one (`depends_on`) may be writing them, and each step removes its own when it fails.
   */
  // deno-lint-ignore require-await
  async removeTemporaries(options: { recursive?: boolean } = {}): Promise<RemovedLeftovers> {
    let removed = 0;
    const walk = (dir: string) => {
      for (const entry of [...Deno.readDirSync(dir)]) {
        const full = join(dir, entry.name);
        if (isTemporaryName(entry.name)) {
          if (isOwnTemporary(entry.name)) continue;
          removeQuietly(full, { recursive: true });
          removed++;
        } else if (entry.isDirectory && options.recursive) {
          walk(full);
        }
      }
    };
    try {
      walk(this.root);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return { temporaries: removed, uploads: 0 };
  }

  /** Creates the folders above `path`, refusing to go through a symbolic link. */
  #makeParents(path: string): void {
    const segments = checkRelativePath(path).split("/").slice(0, -1);
    if (!this.#checkedFolders.has("")) {
      const root = lstatOrNothing(this.root);
      if (root === undefined) Deno.mkdirSync(this.root, { recursive: true });
      else if (root.isSymlink) {
        throw new Error(`refusing to use symbolic link ${this.root} (the folder itself)`);
      }
      this.#checkedFolders.add("");
    }
    let relative = "";
    for (const segment of segments) {
      relative = relative ? `${relative}/${segment}` : segment;
      if (this.#checkedFolders.has(relative)) continue;
      const current = this.#prefix + relative;
      const info = lstatOrNothing(current);
      if (info === undefined) {
        try {
          Deno.mkdirSync(current);
        } catch (error) {
          if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
          const there = Deno.lstatSync(current);
          if (!there.isDirectory) throw new Error(`${current} is a file, not a folder`);
        }
      } else if (info.isSymlink) {
        throw new Error(`refusing to write through symbolic link ${current}`);
      } else if (!info.isDirectory) {
        throw new Error(`${current} is a file, not a folder`);
      }
      this.#checkedFolders.add(relative);
    }
  }

  #refuseLink(full: string, what: string): void {
    if (Deno.lstatSync(full).isSymlink) throw new Error(`refusing to use symbolic link ${full} (${what})`);
  }

  /**
   * Refuses when `path` or a folder above it inside this location is a symbolic link; returns what is at
   * `path` (`undefined` when nothing is and `mustExist` is false).
   */
  #refuseLinks(path: string, mustExist: boolean): Deno.FileInfo | undefined {
    const segments = checkRelativePath(path).split("/");
    let relative = "";
    let info: Deno.FileInfo | undefined;
    for (const [i, segment] of segments.entries()) {
      relative = relative ? `${relative}/${segment}` : segment;
      const last = i === segments.length - 1;
      if (!last && this.#checkedFolders.has(relative)) continue;
      const current = this.#prefix + relative;
      try {
        info = Deno.lstatSync(current);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound && !mustExist) return undefined;
        throw error;
      }
      if (info.isSymlink) throw new Error(`refusing to follow symbolic link ${current}`);
      if (!last && info.isDirectory) this.#checkedFolders.add(relative);
    }
    return info;
  }

  /**
   * Refuses when `full`, where a file is about to be renamed, is a symbolic link (the folders above it were
   * checked by {@link LocalStorage.#makeParents} just before).
   */
  #refuseFinalLink(full: string): void {
    if (lstatOrNothing(full)?.isSymlink) throw new Error(`refusing to follow symbolic link ${full}`);
  }
}

/** Bytes gathered before writing: small stream chunks become a few system calls rather than many. */
export const WRITE_BUFFER_SIZE = 256 * 1024;

/**
 * Bytes per write system call. Measured on this project's machines (Firecracker VMs with a memory balloon),
 * 1 GiB written as 32 KiB writes took 0.4–0.6 s of system time in 4 runs of 5, as 64–256 KiB writes 1.3–2.3 s
 * in every run, nearly all of it copying into new page-cache pages. The likely reason: the kernel sizes those
 * pages by the write, takes up to 32 KiB from the per-CPU lists of pages just freed, and larger ones from free
 * memory that the VM has handed back to its host, which must supply it again. Small writes cost ~0.1 s more
 * per GiB where memory is not ballooned.
 */
export const WRITE_SYSCALL_SIZE = 32 * 1024;

/**
 * Streams `data` into a new file at `path` (created, never overwritten), counting and optionally hashing the
 * bytes; on any failure the file is removed.
 *
 * Chunks are gathered into {@link WRITE_BUFFER_SIZE} bytes, written {@link WRITE_SYSCALL_SIZE} per system call.
 * The writes are synchronous: measured side by side on a 1 GiB S3 download, they took a quarter less time, and
 * less CPU, than awaited writes (each of which hands the buffer to another thread and waits to be woken), and a
 * step runs on its own thread, so a slow disk holds up only that step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SizeMismatchError, writeFileFromStream } from "./local.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const bytes = () => ReadableStream.from([new TextEncoder().encode("test")]);
 * const result = await writeFileFromStream(`${dir}/x`, bytes(), { sha256: true }, "x");
 * assert.deepEqual(result, {
 *   size: 4,
 *   sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
 * });
 * await assert.rejects(writeFileFromStream(`${dir}/y`, bytes(), { size: 5 }, "y"), SizeMismatchError);
 * assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name), ["x"]); // no y
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileFromStream(
  path: string,
  data: ReadableStream<Uint8Array>,
  options: WriteOptions,
  label: string,
): Promise<WriteResult> {
  const { signal } = options;
  let writer: LocalFileWriter | undefined;
  // a byte stream (a fetch body) is read into one buffer, reused once each chunk is written: no garbage per chunk
  const byob = byobReader(data);
  const reader = byob ?? data.getReader();
  let buffer = new Uint8Array(byob ? WRITE_BUFFER_SIZE : 0);
  const next = async (): Promise<Uint8Array | undefined> => {
    if (!byob) return (await (reader as ReadableStreamDefaultReader<Uint8Array>).read()).value;
    const { done, value } = await byob.read(buffer);
    if (done) return undefined;
    buffer = new Uint8Array(value.buffer); // the same memory, for the next read
    return value;
  };
  const onAbort = () => reader.cancel(signal!.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    writer = new LocalFileWriter(path, options, label);
    for (let chunk = await next(); chunk; chunk = await next()) {
      signal?.throwIfAborted();
      writer.write(chunk); // synchronous (no overlap asked): the buffer is free again when it returns
    }
    signal?.throwIfAborted();
    return await writer.close();
  } catch (error) {
    reader.cancel(error).catch(() => {});
    writer?.abort();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

/**
 * A new file (created, never overwritten): chunks are counted, optionally hashed, gathered into
 * {@link WRITE_BUFFER_SIZE} bytes and written {@link WRITE_SYSCALL_SIZE} per synchronous system call; a chunk of
 * at least the buffer's size is written directly. With `overlap`, such a chunk is written by one call on
 * another thread instead: `write` then returns a promise, and the caller leaves the chunk alone and awaits it
 * before its next call (inflating its next chunk meanwhile, say). Otherwise `write` keeps no reference to its
 * argument. `abort` (or a failed `close`) removes the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalFileWriter, SizeMismatchError } from "./local.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const chunk = new Uint8Array(4);
 * const writer = new LocalFileWriter(`${dir}/x`, { size: 8 }, "x");
 * chunk.set(new TextEncoder().encode("abcd"));
 * await writer.write(chunk);
 * chunk.set(new TextEncoder().encode("efgh")); // the buffer is free again once write returned
 * await writer.write(chunk);
 * assert.deepEqual(await writer.close(), { size: 8, sha256: undefined });
 * assert.equal(await Deno.readTextFile(`${dir}/x`), "abcdefgh");
 *
 * const short = new LocalFileWriter(`${dir}/y`, { size: 5 }, "y");
 * await short.write(chunk);
 * await assert.rejects(short.close(), SizeMismatchError); // and y is removed
 * assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name), ["x"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class LocalFileWriter {
  readonly #path: string;
  readonly #label: string;
  readonly #expected: number | undefined;
  readonly #hash: ReturnType<typeof createHash> | undefined;
  readonly #overlap: boolean;
  #file: Deno.FsFile | undefined;
  #buffer: Uint8Array | undefined;
  #filled = 0;
  #size = 0;
  #writing: Promise<void> | undefined;
  #done = false;
  #closed = false;

  /**
   * Creates the file at `path` (failing if anything is there); `label` names it in size errors; with
   * `overlap`, chunks of at least {@link WRITE_BUFFER_SIZE} are written on another thread.
   */
  constructor(
    path: string,
    options: Pick<WriteOptions, "size" | "sha256"> & { overlap?: boolean },
    label: string,
  ) {
    this.#path = path;
    this.#label = label;
    this.#expected = options.size;
    this.#hash = options.sha256 ? createHash("sha256") : undefined;
    this.#overlap = options.overlap ?? false;
    this.#file = Deno.openSync(path, { write: true, createNew: true });
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Writes (or buffers a copy of) `bytes`; with `overlap`, a large chunk is written on another thread and the
   * promise returned settles when it is. On failure the file is removed.
   */
  write(bytes: Uint8Array): void | Promise<void> {
    try {
      if (this.#writing) throw new Error(`${this.#label}: written while its previous write is in flight`);
      this.#count(bytes);
      if (bytes.byteLength >= WRITE_BUFFER_SIZE) {
        this.#flush();
        if (!this.#overlap) return this.#writeAll(bytes);
        const writing = this.#writing = this.#writeElsewhere(bytes);
        return writing.then(() => {
          this.#writing = undefined;
        }, (error) => {
          this.#writing = undefined;
          this.abort();
          throw error;
        });
      }
      this.#gather(bytes);
    } catch (error) {
      this.abort();
      throw error;
    }
  }

  #count(bytes: Uint8Array): void {
    if (this.#done) throw new Error(`${this.#label}: written after it was closed`);
    this.#size += bytes.byteLength;
    if (this.#expected !== undefined && this.#size > this.#expected) {
      throw new SizeMismatchError(this.#label, this.#expected, this.#size);
    }
    this.#hash?.update(bytes);
  }

  #gather(bytes: Uint8Array): void {
    const buffer = this.#buffer ??= new Uint8Array(WRITE_BUFFER_SIZE);
    let offset = 0;
    while (offset < bytes.byteLength) {
      const n = Math.min(WRITE_BUFFER_SIZE - this.#filled, bytes.byteLength - offset);
      buffer.set(bytes.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === WRITE_BUFFER_SIZE) this.#flush();
    }
  }

  #writeAll(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.byteLength;) {
      at += this.#file!.writeSync(bytes.subarray(at, Math.min(bytes.byteLength, at + WRITE_SYSCALL_SIZE)));
    }
  }

  async #writeElsewhere(bytes: Uint8Array): Promise<void> {
    const file = this.#file!;
    for (let at = 0; at < bytes.byteLength;) at += await file.write(bytes.subarray(at));
  }

  #flush(): void {
    if (this.#filled > 0) this.#writeAll(this.#buffer!.subarray(0, this.#filled));
    this.#filled = 0;
  }

  /** Writes what is buffered and closes the file; fails (removing it) when its size is not the expected one. */
  async close(): Promise<WriteResult> {
    try {
      await this.#writing;
      this.#flush();
      this.#file!.close();
      this.#file = undefined;
      this.#done = true;
      if (this.#expected !== undefined && this.#size !== this.#expected) {
        throw new SizeMismatchError(this.#label, this.#expected, this.#size);
      }
    } catch (error) {
      this.abort();
      throw error;
    }
    this.#closed = true;
    return { size: this.#size, sha256: this.#hash?.digest("hex") };
  }

  /**
   * Closes and removes the file, unless it was closed successfully; safe to call more than once. A write in
   * flight then ends on a file that no longer has a name.
   */
  abort(): void {
    if (this.#closed) return;
    this.#done = true;
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = undefined;
    this.#buffer = undefined;
    removeQuietly(this.#path);
  }
}

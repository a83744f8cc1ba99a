/**
 * StagingExecutor: moves landed files to staging. `transfer` copies (or transforms, with the notebook's
 * `py_exec` contract, confined as py_exec.ts describes, or a TypeScript module) from `parent_directory` to
 * `dump_directory`; `post_staging` archives or deletes the landing files, but only once their staged copies
 * are verified or the transform that read them succeeded — on the very bytes there now (see inputs.ts).
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { TaskContext, Zod } from "../../sdk/executor.ts";
import { defineExecutor, ParamError, requireFile } from "../../sdk/executor.ts";
import { checkpoint } from "../../lib/async.ts";
import { Journal } from "../../lib/journal.ts";
import {
  locationSchema,
  locationScope,
  locationsOverlap,
  mergeScopes,
  openLocation,
} from "../../lib/storage/locations.ts";
import { isS3Url, type Storage, type StoredFile, TEMP_PREFIX } from "../../lib/storage/mod.ts";
import { LocalStorage, LocationNotFoundError } from "../../lib/storage/local.ts";
import { copyProblem } from "../../lib/storage/verify.ts";
import { copyFile, copyFiles, moveFile, removeLeftovers } from "../../lib/transfer/copy.ts";
import { plural } from "../../lib/format.ts";
import { type IamStatement, type S3Access, s3Statements } from "../../lib/aws/iam.ts";
import { s3RegionOf } from "../../lib/aws/s3/scope.ts";
import { ENV_NAME, planPyExec, pyExecScope, runPyExec } from "./py_exec.ts";
import { downloadedInput, localInput, type TransformInput, unchangedSince } from "./inputs.ts";

const paramsSchema = (z: Zod) =>
  z.strictObject({
    parent_directory: locationSchema(z).describe(
      "Landing folder to read (local or s3://).",
    ),
    dump_directory: locationSchema(z).describe(
      "Staging folder to write (local or s3://).",
    ),
    archive_or_delete: z.enum(["archive", "delete"]).default("archive").describe(
      "What post_staging does with landing files once their staging is verified.",
    ),
    archive_directory: locationSchema(z).optional().describe(
      "Where archived files go, keeping relative paths. Default: a folder named 'archive' beside parent_directory.",
    ),
    py_exec_path: z.string().min(1).nullable().default(null).describe(
      "Folder holding py_exec.py; transfer then runs py_exec.main(parent, dump, **py_exec_args) with python3.",
    ),
    py_exec_args: z.record(z.string(), z.unknown()).nullable().default(null).describe(
      "Keyword arguments for py_exec.main.",
    ),
    python: z.string().regex(/^[A-Za-z0-9_.+-]+$/).default("python3").describe(
      "Python program (looked up on PATH).",
    ),
    py_exec_env: z.array(
      z.string().regex(ENV_NAME, "must be an environment variable name").refine((name) => name !== "TMPDIR", {
        message: "TMPDIR is always the transform's private temporary folder",
      }),
    ).default([]).describe(
      "Environment variables passed to the transform besides PATH, LANG, LC_*, TZ and PYTHON* (it gets no other: a secret reaches it only when named here).",
    ),
    py_exec_sandbox: z.enum(["best_effort", "required", "off"]).default("best_effort").describe(
      "Landlock confinement of the transform (Linux 5.13+; no network from 6.7): best_effort confines where the kernel can and says so; required fails before the transform runs where it cannot; off never confines (unsafe).",
    ),
    transform_module: z.string().min(1).optional().describe(
      "TypeScript transform instead of py_exec: default export async (parent, dump, args), sandboxed.",
    ),
    transform_args: z.record(z.string(), z.unknown()).default({}).describe("Arguments for transform_module."),
  }).superRefine((p, ctx) => {
    const problem = folderProblem(p);
    if (problem) ctx.addIssue({ code: "custom", path: problem.path, message: problem.message });
  }).refine((p) => !(p.py_exec_path && p.transform_module), {
    message: "py_exec_path and transform_module cannot both be set",
    path: ["transform_module"],
  }).refine((p) => p.py_exec_env.length === 0 || p.py_exec_path, {
    message: "py_exec_env is only for a py_exec_path transform",
    path: ["py_exec_env"],
  });

type Params = ReturnType<ReturnType<typeof paramsSchema>["parse"]>;

const TRANSFORM_RECORD = "transform";

/**
 * Why the landing, staging and archive folders cannot be used together, if they cannot: each must be apart
 * from the others (none the same as another or inside it), or staged, landed and archived files would mix.
 * Local paths are compared as `resolve` makes them; without it, as written (see `isWithinLocation`).
 */
function folderProblem(
  params: Pick<Params, "parent_directory" | "dump_directory" | "archive_directory" | "archive_or_delete">,
  resolve?: (path: string) => string,
): { path: string[]; message: string } | undefined {
  const overlap = (a: string, b: string) => locationsOverlap(a, b, resolve);
  const { parent_directory: parent, dump_directory: dump } = params;
  const quote = JSON.stringify;
  if (overlap(parent, dump)) {
    return {
      path: ["dump_directory"],
      message: `dump_directory must not be parent_directory, a folder inside it, or a folder holding it: ${
        quote(dump)
      } and ${quote(parent)}`,
    };
  }
  if (params.archive_or_delete === "delete") return undefined;
  const archive = archiveLocation(params);
  if (overlap(parent, archive)) {
    return {
      path: ["archive_directory"],
      message: `the archive folder ${quote(archive)} would be inside parent_directory ${
        quote(parent)
      } (or hold it); set archive_directory to a folder outside it`,
    };
  }
  if (overlap(dump, archive)) {
    return {
      path: ["archive_directory"],
      message: `the archive folder ${quote(archive)} and dump_directory ${
        quote(dump)
      } overlap (archived and staged files would mix); set archive_directory to a folder of its own`,
    };
  }
  return undefined;
}

/** The archive folder: `archive_directory`, or a folder named `archive` beside `parent_directory`. */
export function archiveLocation(params: { parent_directory: string; archive_directory?: string }): string {
  if (params.archive_directory) return params.archive_directory;
  const parent = params.parent_directory.replace(/\/+$/, "");
  if (isS3Url(parent)) {
    const slash = parent.lastIndexOf("/");
    return slash > "s3://".length ? `${parent.slice(0, slash)}/archive` : `${parent}/archive`;
  }
  return join(dirname(parent), "archive");
}

export default defineExecutor({
  name: "StagingExecutor",
  description:
    "Copies or transforms landed files into staging, then archives or deletes the landing files once staging is verified.",
  params: paramsSchema,
  permissions(params, context) {
    // again with real paths: "data" and "/work/data" are one folder
    const problem = folderProblem(params, context.resolve);
    if (problem) throw new ParamError(problem.path, problem.message);
    // each task's folders only: a step that only transfers cannot touch the landing files or the archive
    const tasks = context.tasks ?? ["transfer", "post_staging"];
    const transfers = tasks.includes("transfer");
    const scopes = [locationScope(params.parent_directory, "read", context)];
    if (transfers) scopes.push(locationScope(params.dump_directory, "write", context));
    if (tasks.includes("post_staging")) {
      // post_staging verifies each staged copy, then moves the landing file away (or deletes it)
      scopes.push(locationScope(params.dump_directory, "read", context));
      scopes.push(locationScope(params.parent_directory, "write", context));
      if (params.archive_or_delete === "archive") {
        scopes.push(locationScope(archiveLocation(params), "write", context));
      }
    }
    if (params.py_exec_path && transfers) {
      const folder = context.resolve(params.py_exec_path);
      requireFile(
        join(folder, "py_exec.py"),
        "py_exec_path",
        `${JSON.stringify(params.py_exec_path)} holds no py_exec.py`,
      );
      scopes.push(pyExecScope(params, folder));
    }
    if (params.transform_module && transfers) {
      const module = context.resolve(params.transform_module);
      requireFile(module, "transform_module", `${JSON.stringify(params.transform_module)} is not a file`);
      scopes.push({ read: [module] });
    }
    return mergeScopes(...scopes);
  },
  iam(params, context) {
    const tasks = context.tasks ?? ["transfer", "post_staging"];
    const transformed = !!(params.py_exec_path || params.transform_module);
    const statements: IamStatement[] = [];
    const on = (location: string, access: S3Access[]) => {
      if (isS3Url(location)) {
        statements.push(...s3Statements(location, access, { region: s3RegionOf(context.s3) }));
      }
    };
    if (tasks.includes("transfer")) {
      on(params.parent_directory, ["read"]);
      // a copy first asks whether its staged copy is there already (a transform's output is uploaded as is)
      on(params.dump_directory, transformed ? ["write"] : ["write", "probe"]);
    }
    if (tasks.includes("post_staging")) {
      // S3 has no rename: a landing file is copied to the archive (or not), then deleted, never written
      on(params.parent_directory, ["read", "delete"]);
      if (!transformed) on(params.dump_directory, ["read"]); // each staged copy is verified first
      // an archived file is moved in unless the same bytes are there already
      if (params.archive_or_delete === "archive") on(archiveLocation(params), ["write", "probe"]);
    }
    return statements;
  },
  async planNotes(params, context) {
    if (!params.py_exec_path || !(context.tasks ?? ["transfer"]).includes("transfer")) return [];
    return await planPyExec({
      python: params.python,
      sandbox: params.py_exec_sandbox,
      folder: context.resolve(params.py_exec_path),
      parent: isS3Url(params.parent_directory)
        ? params.parent_directory
        : context.resolve(params.parent_directory),
      dump: isS3Url(params.dump_directory) ? params.dump_directory : context.resolve(params.dump_directory),
      env: params.py_exec_env,
      cwd: context.cwd,
    });
  },
  tasks: {
    transfer: {
      description: "Copies every file of parent_directory into dump_directory (or runs the transform).",
      outputs: {
        files:
          "Files in dump_directory from this landing folder, staged now or by an earlier attempt (a transform: the files it wrote).",
        bytes: "Their bytes.",
        path: "dump_directory: an absolute local path or s3://bucket/prefix.",
      },
      run: transfer,
    },
    post_staging: {
      description: "Archives or deletes the landing files whose staging is verified.",
      outputs: {
        archived_files: "archive_or_delete archive: landing files moved to the archive by this attempt.",
        archived_bytes: "Their bytes.",
        deleted_files: "archive_or_delete delete: landing files deleted by this attempt.",
        deleted_bytes: "Their bytes.",
      },
      run: postStaging,
    },
  },
});

/** Every file of `storage` by path; none when the location does not exist yet. */
async function listingOf(storage: Storage, context: TaskContext<Params>): Promise<Map<string, StoredFile>> {
  const files = new Map<string, StoredFile>();
  try {
    for await (const file of storage.list({ signal: context.signal })) files.set(file.path, file);
  } catch (error) {
    if (!(error instanceof LocationNotFoundError)) throw error;
  }
  return files;
}

/**
 * The journal's record of a transform that succeeded: the landing files it read, by content (a record of an
 * earlier lakerun has no sha256, and proves nothing unchanged).
 */
interface TransformRecord {
  inputs: Array<Partial<TransformInput> & { path: string; size: number }>;
  finished: string;
  /** What the transform wrote to staging (the outputs `files` and `bytes`); absent in older records. */
  staged?: { files: number; bytes: number };
}

/** The outputs of `transfer`: the files in staging from this landing folder, their bytes, the folder. */
function reportStaged(context: TaskContext<Params>, dump: Storage, staged: { files: number; bytes: number }) {
  context.report({ type: "output", name: "files", value: staged.files });
  context.report({ type: "output", name: "bytes", value: staged.bytes });
  context.report({ type: "output", name: "path", value: dump.url });
}

async function landingFiles(landing: Storage, context: TaskContext<Params>): Promise<StoredFile[]> {
  const files: StoredFile[] = [];
  for await (const file of landing.list({ signal: context.signal })) {
    if (file.kind === "symlink") context.log(`skipping symbolic link ${file.path} (never followed)`);
    else files.push(file);
  }
  return files;
}

/** `transfer`: copy every landing file to staging, or run the transform. */
async function transfer(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const landing = await openLocation(params.parent_directory, context);
  const dump = await openLocation(params.dump_directory, context);
  const files = await landingFiles(landing, context);
  await removeLeftovers(dump, context.log);
  if (params.py_exec_path || params.transform_module) {
    return await transformInto(context, landing, dump, files);
  }
  // one listing of staging instead of a look-up per file
  const staged = await listingOf(dump, context);

  const missing: StoredFile[] = [];
  for (const file of files) {
    await checkpoint(context.signal);
    const problem = await copyProblem(landing, file.path, dump, file.path, {
      sourceInfo: file,
      targetInfo: staged.get(file.path) ?? null,
      signal: context.signal,
    });
    if (problem) missing.push(file); // otherwise already staged by an earlier run
  }
  // two local folders: staged as one batch (a new folder lands in one rename); otherwise file by file
  const bytes = await copyFiles(landing, dump, missing, { signal: context.signal });
  const copied = missing.length;
  const skipped = files.length - copied;
  if (skipped) context.log(`${skipped} file${skipped === 1 ? " was" : "s were"} already staged`);
  const folders = await stageEmptyFolders(context, landing, dump);
  if (files.length === 0 && folders === 0) context.log(`nothing to stage in ${landing.url}`);
  context.report({ type: "moved", files: copied, bytes });
  // every landing file is staged now, by this attempt or an earlier one: a re-run reports the same
  reportStaged(context, dump, {
    files: files.length,
    bytes: files.reduce((sum, file) => sum + file.size, 0),
  });
}

/**
 * Makes the landing folder's empty folders in staging too, as `cp -r` does (S3 has no folders: they are only
 * counted in a log line there). Returns how many there are.
 */
async function stageEmptyFolders(context: TaskContext<Params>, landing: Storage, dump: Storage) {
  const folders = await landing.emptyFolders?.({ signal: context.signal }) ?? [];
  if (folders.length === 0) return 0;
  if (!dump.makeFolder) {
    context.log(`${plural(folders.length, "empty folder")} not staged: ${dump.url} has no folders`);
    return folders.length;
  }
  for (const folder of folders) await dump.makeFolder(folder);
  context.log(`${plural(folders.length, "empty folder")} staged`);
  return folders.length;
}

/** Runs the transform on a local view of the landing files, then lands its output in staging atomically. */
async function transformInto(
  context: TaskContext<Params>,
  landing: Storage,
  dump: Storage,
  files: StoredFile[],
) {
  const { params } = context;
  const journal = await Journal.open(context.stateDir);
  const done = await journal.get<TransformRecord>(TRANSFORM_RECORD);
  const recorded = new Map(done?.inputs.map((input) => [input.path, input]));
  // a local landing file is hashed before the transform reads it; an S3 one as downloaded (below)
  let inputs: TransformInput[] | undefined;
  if (landing.localFolder !== undefined) {
    inputs = [];
    for (const file of files) inputs.push(await localInput(landing, file, { signal: context.signal }));
  }
  // skipped only when every landing file holds the bytes transformed (by sha256, or an S3 ETag proven then;
  // an ETag that cannot tell means transforming again, which is safe)
  let unchanged = !!done && files.length > 0;
  for (const [index, file] of files.entries()) {
    if (!unchanged) break;
    const input = recorded.get(file.path);
    unchanged = inputs
      ? !!input?.sha256 && input.size === file.size && input.sha256 === inputs[index].sha256
      : await unchangedSince(landing, file, input, { etagOnly: true, signal: context.signal });
  }
  if (unchanged) {
    context.log("these landing files were already transformed; post_staging has not finished with them yet");
    if (done!.staged) reportStaged(context, dump, done!.staged);
    return;
  }
  // S3 folders get local working folders under the step's state folder: the landing files are downloaded
  // into one, the transform writes into another, and its output is uploaded to staging as one batch
  await new LocalStorage(context.stateDir).removeTemporaries();
  const work = join(context.stateDir, `${TEMP_PREFIX}transform-${crypto.randomUUID()}`);
  // a local staging folder receives the output in a temporary folder inside it, moved into place on success
  const output = dump.localFolder !== undefined
    ? join(dump.localFolder, `${TEMP_PREFIX}transform-${crypto.randomUUID()}`)
    : join(work, "output");
  await Deno.mkdir(output, { recursive: true });
  try {
    let input = landing.localFolder;
    if (input === undefined) {
      input = join(work, "input");
      inputs = await downloadInputs(context, landing, files, input);
    }
    if (params.py_exec_path) {
      await runPyExec({
        python: params.python,
        folder: context.resolve(params.py_exec_path),
        parent: input,
        output,
        args: params.py_exec_args ?? {},
        env: params.py_exec_env,
        sandbox: params.py_exec_sandbox,
        stateDir: context.stateDir,
        cwd: context.cwd,
        signal: context.signal,
        log: context.log,
      });
    } else await runTransformModule(context, input, output);
    const produced = new LocalStorage(output);
    const { count, bytes } = dump.localFolder !== undefined
      ? await moveOutput(produced, dump)
      : await uploadOutput(context, produced, dump);
    await journal.put(
      TRANSFORM_RECORD,
      {
        inputs: inputs!,
        finished: new Date().toISOString(),
        staged: { files: count, bytes },
      } satisfies TransformRecord,
    );
    context.report({ type: "moved", files: count, bytes });
    reportStaged(context, dump, { files: count, bytes });
  } finally {
    await Deno.remove(output, { recursive: true }).catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/**
 * Downloads the landing files of an S3 folder into a local folder for the transform to read; returns what
 * the transform will read, by content.
 */
async function downloadInputs(
  context: TaskContext<Params>,
  landing: Storage,
  files: StoredFile[],
  folder: string,
): Promise<TransformInput[]> {
  await Deno.mkdir(folder, { recursive: true });
  const local = new LocalStorage(folder);
  const inputs: TransformInput[] = [];
  for (const file of files) {
    await checkpoint(context.signal);
    const copied = await copyFile(landing, local, file, { signal: context.signal });
    inputs.push(await downloadedInput(file, local.pathOf(file.path), copied.etag));
  }
  return inputs;
}

/** Moves the transform's output into a local staging folder. */
async function moveOutput(produced: LocalStorage, dump: Storage) {
  let count = 0;
  let bytes = 0;
  for await (const file of produced.list()) {
    if (file.kind !== "file") throw new Error(`transform produced a symbolic link ${file.path}`);
    await moveFile(produced, dump, file);
    count++;
    bytes += file.size;
  }
  return { count, bytes };
}

/** Uploads the transform's output to S3 staging as one batch: all of it appears, or none. */
async function uploadOutput(context: TaskContext<Params>, produced: LocalStorage, dump: Storage) {
  const outputs: StoredFile[] = [];
  for await (const file of produced.list()) {
    if (file.kind !== "file") throw new Error(`transform produced a symbolic link ${file.path}`);
    outputs.push(file);
  }
  const batch = await dump.batch();
  try {
    for (const file of outputs) {
      await batch.write(file.path, await produced.read(file.path), {
        size: file.size,
        signal: context.signal,
      });
    }
    await batch.commit();
  } catch (error) {
    await batch.abort();
    throw error;
  }
  return { count: outputs.length, bytes: outputs.reduce((sum, f) => sum + f.size, 0) };
}

/** A TypeScript transform: its default export runs inside this step's sandbox. */
async function runTransformModule(context: TaskContext<Params>, parent: string, dump: string) {
  const { params } = context;
  const url = pathToFileURL(resolve(context.cwd, params.transform_module!)).href;
  const module = await import(url);
  if (typeof module.default !== "function") {
    throw new Error(`${params.transform_module} has no default-exported function (parent, dump, args)`);
  }
  await module.default(parent, dump, params.transform_args);
}

/** `post_staging`: archive or delete each landing file whose staging is verified. */
async function postStaging(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const landing = await openLocation(params.parent_directory, context);
  const dump = await openLocation(params.dump_directory, context);
  const archive = params.archive_or_delete === "archive"
    ? await openLocation(archiveLocation(params), context)
    : undefined;
  const files = await landingFiles(landing, context);
  if (archive) await removeLeftovers(archive, context.log);
  // one listing of the archive instead of a look-up per file
  const archived = archive ? await listingOf(archive, context) : new Map<string, StoredFile>();
  const transformed = params.py_exec_path || params.transform_module;
  const journal = await Journal.open(context.stateDir);
  const record = transformed ? await journal.get<TransformRecord>(TRANSFORM_RECORD) : undefined;

  let count = 0;
  let bytes = 0;
  const read = transformed ? new Map(record?.inputs.map((input) => [input.path, input])) : undefined;
  // one listing of staging instead of a request per file (S3); a local look-up is as cheap as a listing's
  const staged = read || dump.localFolder !== undefined ? undefined : await listingOf(dump, context);
  // every file is checked first; those checked before a failure are still archived (or deleted)
  const checked: StoredFile[] = [];
  let failure: { error: unknown } | undefined;
  for (const file of files) {
    try {
      await checkpoint(context.signal);
      if (read) {
        // the bytes there now must be those the transform read: a file rewritten since (same name, same
        // size) was never transformed
        const input = read.get(file.path);
        if (!input) {
          throw new Error(
            `${landing.url}/${file.path} was not read by a successful transform; run 'transfer' first`,
          );
        }
        if (!(await unchangedSince(landing, file, input, { signal: context.signal }))) {
          const why = input.sha256
            ? "changed since the transform read it"
            : "is recorded as transformed by an earlier lakerun, which did not record its content";
          throw new Error(`${landing.url}/${file.path} ${why}; run 'transfer' again`);
        }
      } else {
        await verifyStaged(landing, dump, file, staged);
      }
    } catch (error) {
      failure = { error };
      break;
    }
    checked.push(file);
  }
  // one local file system: whole folders the archive lacks move in one rename each
  const moved = archive ? await archive.moveAllFrom?.(landing, checked.map((file) => file.path)) : undefined;
  for (const file of checked) {
    if (!moved?.has(file.path)) {
      await checkpoint(context.signal);
      if (archive) await archiveFile(landing, archive, file, archived);
      else await landing.remove(file.path);
    }
    count++;
    bytes += file.size;
  }
  if (failure) throw failure.error;
  await settleEmptyFolders(context, landing, transformed ? undefined : dump, archive);
  if (transformed) await journal.delete(TRANSFORM_RECORD);
  context.log(
    `${count} landing file${count === 1 ? "" : "s"} ${archive ? `archived to ${archive.url}` : "deleted"}`,
  );
  context.report({ type: "moved", files: count, bytes });
  const done = archive ? "archived" : "deleted";
  context.report({ type: "output", name: `${done}_files`, value: count });
  context.report({ type: "output", name: `${done}_bytes`, value: bytes });
}

/**
 * Fails unless `dump` holds a byte-identical copy of the landing file (size, then sha256); `staged` is the
 * listing of `dump`, when it was listed.
 */
async function verifyStaged(
  landing: Storage,
  dump: Storage,
  file: StoredFile,
  staged: Map<string, StoredFile> | undefined,
) {
  const problem = await copyProblem(landing, file.path, dump, file.path, {
    sourceInfo: file,
    targetInfo: staged ? staged.get(file.path) ?? null : undefined,
  });
  if (!problem) return;
  if (problem.kind === "missing") {
    throw new Error(`${landing.url}/${file.path} has no staged copy in ${dump.url}; run 'transfer' first`);
  }
  throw new Error(`staged copy of ${file.path}: ${problem.message}; run 'transfer' again`);
}

/**
 * The landing folder's empty folders, once staged (made in staging by `transfer`, checked here unless a
 * transform wrote staging): made in the archive and removed from landing, or only removed with `delete`.
 */
async function settleEmptyFolders(
  context: TaskContext<Params>,
  landing: Storage,
  dump: Storage | undefined,
  archive: Storage | undefined,
) {
  const folders = await landing.emptyFolders?.({ signal: context.signal }) ?? [];
  for (const folder of folders) {
    if (dump?.hasFolder && !(await dump.hasFolder(folder))) {
      throw new Error(
        `${landing.url}/${folder}/ (an empty folder) is not in ${dump.url}; run 'transfer' first`,
      );
    }
    await archive?.makeFolder?.(folder);
    await landing.removeFolder?.(folder);
  }
}

/**
 * Moves a landing file into the archive, keeping its relative path. An archived file of the same name with
 * other content is never overwritten: the new one gets a timestamp suffix, and a number after it when that
 * name is taken too (several archives of one name within a second: a backfill).
 */
async function archiveFile(
  landing: Storage,
  archive: Storage,
  file: StoredFile,
  archived: Map<string, StoredFile>,
) {
  const { path } = file;
  let target = path;
  const existing = archived.has(path) ? await archive.stat(path) : undefined;
  if (existing) {
    if (existing.kind === "file" && !(await copyProblem(landing, path, archive, path))) {
      await landing.remove(path); // the same bytes are archived already
      return;
    }
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const dot = path.lastIndexOf(".");
    const named = (suffix: string) =>
      dot > path.lastIndexOf("/") + 1
        ? `${path.slice(0, dot)}.${suffix}${path.slice(dot)}`
        : `${path}.${suffix}`;
    for (let n = 1;; n++) {
      target = named(n === 1 ? stamp : `${stamp}-${n}`);
      if (!archived.has(target) && !(await archive.stat(target))) break;
    }
  }
  await moveFile(landing, archive, { path, size: file.size }, { to: target });
}

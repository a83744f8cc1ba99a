/**
 * S3TransferExecutor: copies, moves or syncs files between two locations, each a local folder or an
 * `s3://bucket/prefix`, keeping relative paths. Files already identical at the destination are skipped;
 * `move` deletes a source file only once its copy is verified; `sync` deletes extraneous destination files
 * only after every copy succeeded. Copies between two S3 locations are server-side when the backend can.
 *
 * @module
 */
import type { TaskContext, Zod } from "../../sdk/executor.ts";
import { defineExecutor, ParamError } from "../../sdk/executor.ts";
import { globProblem } from "../../lib/glob.ts";
import {
  locationProblem,
  locationSchema,
  locationScope,
  locationsOverlap,
  mergeScopes,
  openLocation,
} from "../../lib/storage/locations.ts";
import { transferFiles, type TransferMode } from "../../lib/transfer/transfer.ts";
import { type IamStatement, type S3Access, s3Statements } from "../../lib/aws/iam.ts";
import { s3RegionOf } from "../../lib/aws/s3/scope.ts";
import { isS3Url } from "../../lib/storage/mod.ts";

const OVERLAP = "source and destination overlap: one is inside the other";

const paramsSchema = (z: Zod) => {
  const glob = z.string().superRefine((pattern, context) => {
    const problem = globProblem(pattern);
    if (problem) context.addIssue({ code: "custom", message: `invalid glob: ${problem}` });
  });
  return z.strictObject({
    source: locationSchema(z).describe(
      "Where the files are: a local folder or s3://bucket/prefix.",
    ),
    destination: locationSchema(z).describe(
      "Where the files go, keeping their relative paths: a local folder or s3://bucket/prefix.",
    ),
    include: z.array(glob).default([]).describe(
      "Globs selecting files by relative path (`*`, `**`, `?`, `[abc]`, `{a,b}`), matched against the whole path: `*.csv` is top-level only, `**/*.csv` any depth. Default: every file.",
    ),
    exclude: z.array(glob).default([]).describe(
      "Globs of files to leave alone (never copied, moved or deleted), matched like include.",
    ),
    concurrency: z.number().int().min(1).max(64).default(4).describe("Files transferred at the same time."),
    dry_run: z.boolean().default(false).describe(
      "Only log what would be copied, moved or deleted, one line per file; change nothing.",
    ),
    delete_extraneous: z.boolean().default(false).describe(
      "sync only: once every copy succeeded, delete selected destination files that the source lacks. Refused when the source has no selected file.",
    ),
  }).refine(
    // an invalid location (empty, padded) is reported as such, not as overlapping the other
    (p) =>
      locationProblem(p.source) || locationProblem(p.destination) ||
      !locationsOverlap(p.source, p.destination),
    {
      message: OVERLAP,
      path: ["destination"],
    },
  );
};

type Params = ReturnType<ReturnType<typeof paramsSchema>["parse"]>;

export default defineExecutor({
  name: "S3TransferExecutor",
  description:
    "Copies, moves or syncs files between local folders and s3://bucket/prefix locations (server-side between S3 locations), verifying before it deletes anything.",
  params: paramsSchema,
  permissions(params, context) {
    // compared as real paths: "data" and "/work/data" are one folder
    if (locationsOverlap(params.source, params.destination, context.resolve)) {
      throw new ParamError(
        ["destination"],
        `${OVERLAP}: ${JSON.stringify(params.source)} and ${JSON.stringify(params.destination)}`,
      );
    }
    // only `move` writes the source (it deletes verified files there); without the step's task list, assume it
    const sourceAccess = !context.tasks || context.tasks.includes("move") ? "write" : "read";
    return mergeScopes(
      locationScope(params.source, sourceAccess, context),
      locationScope(params.destination, "write", context),
    );
  },
  iam(params, context) {
    const tasks = context.tasks ?? ["copy", "move", "sync"];
    // a dry run lists both sides and compares files that are at both: it only reads
    const source: S3Access[] = [
      "read",
      ...(tasks.includes("move") && !params.dry_run ? ["delete" as const] : []),
    ];
    const destination: S3Access[] = params.dry_run
      ? ["read"]
      : ["write", ...(tasks.includes("sync") && params.delete_extraneous ? ["delete" as const] : [])];
    const statements: IamStatement[] = [];
    for (const [location, access] of [[params.source, source], [params.destination, destination]] as const) {
      if (isS3Url(location)) {
        statements.push(...s3Statements(location, access, { region: s3RegionOf(context.s3) }));
      }
    }
    return statements;
  },
  tasks: {
    copy: {
      description: "Copies every selected file to destination, skipping files already identical there.",
      outputs: {
        files: "Selected files at destination: copied now or already identical there (not with dry_run).",
        bytes: "Their bytes.",
      },
      run: (context) => runTransfer(context, "copy"),
    },
    move: {
      description:
        "Copies every selected file, verifies each copy (size, then ETag or sha256) and only then deletes it from source.",
      outputs: {
        files:
          "Files moved by this attempt: a re-run finds those moved before gone from source (not with dry_run).",
        bytes: "Their bytes.",
      },
      run: (context) => runTransfer(context, "move"),
    },
    sync: {
      description:
        "Copies new and changed files only (size, then ETag or sha256); with delete_extraneous, then deletes destination files absent from source.",
      outputs: {
        files: "Selected files at destination: copied now or already identical there (not with dry_run).",
        bytes: "Their bytes.",
        deleted_files: "With delete_extraneous: destination files deleted, when any.",
      },
      run: (context) => runTransfer(context, "sync"),
    },
  },
});

async function runTransfer(context: TaskContext<Params>, mode: TransferMode): Promise<void> {
  const { params } = context;
  // source and destination apart: permissions() checked it with real paths before the step started
  const source = await openLocation(params.source, context);
  const destination = await openLocation(params.destination, context);
  const label = `${source.url} → ${destination.url}`;
  let lastProgress = 0;
  const summary = await transferFiles(source, destination, {
    mode,
    include: params.include,
    exclude: params.exclude,
    concurrency: params.concurrency,
    dryRun: params.dry_run,
    deleteExtraneous: params.delete_extraneous,
    signal: context.signal,
    log: context.log,
    progress: (bytes, total) => {
      const now = performance.now();
      if (now - lastProgress < 250 && bytes < total) return;
      lastProgress = now;
      context.report({ type: "progress", bytes, total, label });
    },
  });
  if (params.dry_run) return;
  context.report({ type: "moved", files: summary.files, bytes: summary.bytes });
  // copy and sync: every selected file is at the destination now, copied by this attempt or there already
  // (an earlier attempt's), so a re-run reports the same; move: the files this attempt moved
  const there = mode === "move"
    ? { files: summary.files, bytes: summary.bytes }
    : { files: summary.files + summary.identical, bytes: summary.bytes + summary.identicalBytes };
  context.report({ type: "output", name: "files", value: there.files });
  context.report({ type: "output", name: "bytes", value: there.bytes });
  if (summary.deleted) context.report({ type: "output", name: "deleted_files", value: summary.deleted });
}

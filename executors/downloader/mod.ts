/**
 * DownloaderExecutor: fetches a URL as the notebook's `requests.get(**requests_arguments)` did, and lands it
 * in `landing_directory`, either as a file or, with `"unzip": "unzip"`, as the archive's extracted files.
 * Nothing appears in the landing folder until the download is complete and verified.
 *
 * @module
 */
import { basename } from "node:path";
import type { TaskContext, Zod } from "../../sdk/executor.ts";
import { defineExecutor } from "../../sdk/executor.ts";
import { ByteMeter, HashingStream, metered } from "../../lib/hashing.ts";
import {
  fetchWithRetries,
  HttpError,
  netPermissionFor,
  redactUrl,
  type RequestSpec,
} from "../../lib/http/mod.ts";
import { locationScope, mergeScopes, openLocation } from "../../lib/storage/locations.ts";
import { parseS3Url } from "../../lib/aws/s3/scope.ts";
import { allow, s3Arns, s3ListStatement, s3ObjectArn, s3Statements } from "../../lib/aws/iam.ts";
import { isS3Url, type Storage, type WriteBatch } from "../../lib/storage/mod.ts";
import { freeBytes, roomOf } from "../../lib/disk.ts";
import { formatBytes } from "../../lib/format.ts";
import {
  extractZipFile,
  extractZipStream,
  VCS_REFUSAL,
  type ZipEntrySink,
  ZipError,
  type ZipLimits,
  ZipNeedsRandomAccess,
  type ZipSummary,
} from "../../lib/zip/mod.ts";

const paramsSchema = (z: Zod) => {
  const scalar = z.union([z.string(), z.number(), z.boolean()]);
  const noProto = (record: Record<string, unknown>) => !Object.hasOwn(record, "__proto__");
  return z.strictObject({
    requests_arguments: z.strictObject({
      url: z.string().describe("URL to download: http(s):// or file://."),
      params: z.record(z.string(), z.union([scalar, z.null(), z.array(scalar)])).refine(noProto)
        .optional().describe("Query parameters added to the URL; a list repeats the key."),
      headers: z.record(z.string(), z.string()).refine(noProto).optional().describe("Request headers."),
      timeout: z.union([z.number().positive(), z.tuple([z.number().positive(), z.number().positive()])])
        .optional()
        .describe(
          "Seconds: connect and read timeout, or [connect, read]. A server silent this long is a failed attempt.",
        ),
      auth: z.tuple([z.string(), z.string()]).optional().describe("[user, password] for HTTP Basic auth."),
      cookies: z.record(z.string(), z.string()).refine(noProto).optional().describe(
        "Cookies sent with the request.",
      ),
      allow_redirects: z.boolean().default(true).describe("Follow redirects (to hosts in extra_hosts)."),
      stream: z.boolean().optional().describe("Accepted for compatibility; lakerun always streams."),
      verify: z.literal(true).optional().describe("Accepted for compatibility; TLS is always verified."),
    }).describe("What the notebook passed to requests.get."),
    landing_directory: z.string().min(1).describe(
      "Local folder or s3://bucket/prefix. With unzip: the folder receiving the archive's files. Without: the file to write, or, for an existing folder or a path ending in '/', the folder receiving the URL's file name.",
    ),
    unzip: z.union([z.literal("unzip"), z.boolean(), z.null()]).default(null).describe(
      '"unzip" (or true) extracts the zip archive into landing_directory.',
    ),
    retries: z.number().int().min(0).max(20).default(3).describe("Extra attempts after a failed one."),
    retry_delay: z.number().min(0).max(300).default(1).describe(
      "Base backoff delay in seconds (exponential, jittered).",
    ),
    sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional().describe(
      "Expected sha256 of the downloaded bytes.",
    ),
    checksum: z.string().regex(/^sha256:[0-9a-fA-F]{64}$/).optional().describe(
      'Same as sha256, as "sha256:<hex>".',
    ),
    max_unzip_ratio: z.number().positive().default(200).describe(
      "Fail when extracted bytes exceed this × the archive's size, once more than 1 GiB is extracted (real data such as a CSV of mostly empty columns can compress far better than 200× below that).",
    ),
    max_unzip_bytes: z.number().int().positive().optional().describe(
      "Fail when extracted bytes exceed this. Into a local folder, extraction also stops before it would take more than the folder's file system has free, less a reserve (a tenth of it, at most 1 GiB): the error says so, and nothing lands.",
    ),
    allow_vcs_metadata: z.boolean().default(false).describe(
      "Extract archive entries inside .git, .hg or .svn folders. Refused by default: version-control metadata can make git run commands (hooks, config) in the landing folder.",
    ),
    extra_hosts: z.array(z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/)).default([]).describe(
      "Other host[:port]s the download may be redirected to.",
    ),
  });
};

type Params = ReturnType<ReturnType<typeof paramsSchema>["parse"]>;

export default defineExecutor({
  name: "DownloaderExecutor",
  description:
    "Downloads a URL (retrying, resuming, verifying) into a landing folder, extracting zip archives on the way.",
  params: paramsSchema,
  permissions(params, context) {
    const url = params.requests_arguments.url;
    const source = url.startsWith("file:")
      ? { read: [fileUrlPath(url)] }
      : { net: [netPermissionFor(url)!, ...params.extra_hosts.map(withDefaultPort(url))] };
    const landing = landingFolder(params, context.resolve);
    // extracting into a local folder: its file system's free space bounds what an archive may write
    const room = extracts(params) && !isS3Url(landing) ? { sys: ["statfs"] } : {};
    return mergeScopes(source, locationScope(landing, "write", context), room);
  },
  iam(params, context) {
    const landing = params.landing_directory;
    if (!isS3Url(landing)) return [];
    const options = { region: context.s3?.region };
    const folder = s3Statements(landing, "write", options);
    if (
      extracts(params) || landing.endsWith("/") || parseS3Url(landing).prefix === ""
    ) {
      return folder;
    }
    // a prefix that holds objects receives the URL's file name (`folder`); otherwise landing_directory is the
    // key written, through its parent folder, whose unfinished uploads are aborted first
    const parent = landing.slice(0, landing.lastIndexOf("/"));
    const arns = s3Arns(parent, options);
    return [
      ...folder,
      s3ListStatement(parent, options),
      allow(["s3:ListBucketMultipartUploads"], [arns.bucket]),
      allow(["s3:AbortMultipartUpload"], [arns.objects]),
      allow(["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [
        s3ObjectArn(landing, options),
      ]),
    ];
  },
  tasks: {
    download: {
      description: "Downloads requests_arguments.url into landing_directory (extracting it with unzip).",
      run: downloadToLanding,
    },
  },
});

/** Downloads the step's URL into its landing location. */
export async function downloadToLanding(context: TaskContext<Params>): Promise<void> {
  try {
    await download(context);
  } catch (error) {
    if (error instanceof HttpError && error.redirectedTo) {
      throw new HttpError(
        `${error.message}; add "${error.redirectedTo.host}" to extra_hosts to follow it`,
        { url: error.url, redirectedTo: error.redirectedTo },
      );
    }
    throw error;
  }
}

async function download(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const expectedSha256 = (params.sha256 ?? params.checksum?.slice("sha256:".length))?.toLowerCase();
  const spec = requestSpec(params, context.signal);
  const shown = redactUrl(params.requests_arguments.url);
  const events = {
    onRetry: (info: { attempt: number; delayMs: number; reason: string }) =>
      context.log(
        `attempt ${info.attempt - 1} failed (${info.reason}); retrying in ${
          (info.delayMs / 1000).toFixed(1)
        } s`,
      ),
  };
  const progress = (bytes: number, total?: number) =>
    context.report({ type: "progress", bytes, total, label: shown });

  if (extracts(params)) {
    const landing = await openLocation(params.landing_directory, context);
    context.log(`${shown} → ${landing.url} (extracting)`);
    const limits = {
      maxRatio: params.max_unzip_ratio,
      maxBytes: params.max_unzip_bytes,
      allowVcsMetadata: params.allow_vcs_metadata,
      signal: context.signal,
    };
    let summary: { files: number; bytes: number; warnings?: string[] };
    try {
      summary = await fetchWithRetries(spec, async (body, info) => {
        return await extractIntoBatch(landing, limits, async (sink, limits) => {
          const hashing = new ByteMeter((n) => progress(n, info.contentLength), { hash: !!expectedSha256 });
          // a byte stream still: the archive reader has the body read into its reused buffers
          const result = await extractZipStream(metered(body, hashing), sink, {
            ...limits,
            archiveSize: info.contentLength,
          });
          if (expectedSha256) checkSha256(expectedSha256, hashing.digest(), shown);
          return result;
        });
      }, events);
    } catch (error) {
      if (!(error instanceof ZipNeedsRandomAccess)) throw withHint(error, params);
      context.log(
        `archive cannot be read while streaming (${
          error.message.replace(/^zip entry '[^']*': /, "")
        }); downloading it first`,
      );
      summary = await downloadThenExtract(context, spec, landing, limits, expectedSha256, progress)
        .catch((error) => Promise.reject(withHint(error, params)));
    }
    for (const warning of summary.warnings ?? []) context.log(`warning: ${warning}`);
    context.report({ type: "moved", files: summary.files, bytes: summary.bytes });
    return;
  }

  const { storage, path } = await fileTarget(
    params.landing_directory,
    params.requests_arguments.url,
    context,
  );
  context.log(`${shown} → ${storage.kind === "local" ? `${storage.url}/${path}` : `${storage.url}/${path}`}`);
  const written = await fetchWithRetries(spec, async (body, info) => {
    await storage.removeTemporaries();
    const batch = await storage.batch();
    try {
      const hashing = new ByteMeter((n) => progress(n, info.contentLength), { hash: !!expectedSha256 });
      // a byte stream still: a local file is written from one reused buffer
      const result = await batch.write(path, metered(body, hashing), {
        size: info.contentLength,
        signal: context.signal,
      });
      if (expectedSha256) checkSha256(expectedSha256, hashing.digest(), shown);
      await batch.commit();
      return result;
    } catch (error) {
      await batch.abort();
      throw error;
    }
  }, events);
  context.report({ type: "moved", files: 1, bytes: written.size });
}

/**
 * Extracts through `extract` into a write batch that is committed only when everything succeeded: small
 * entries are staged with one call each, folder entries (empty ones too) are made, as unzip makes them. In a
 * local landing folder the extraction may also not take more than the file system's free space, less a
 * reserve ({@link roomOf}): an archive too large for the disk fails before filling it, naming what is free.
 */
async function extractIntoBatch(
  landing: Storage,
  limits: ZipLimits,
  extract: (sink: ZipEntrySink, limits: ZipLimits) => Promise<ZipSummary>,
): Promise<{ files: number; bytes: number; warnings?: string[] }> {
  await landing.removeTemporaries();
  const batch: WriteBatch = await landing.batch();
  // the folder exists now (the batch stages inside it): its file system can say how much it can take
  const free = landing.localFolder === undefined ? undefined : freeBytes(landing.localFolder);
  const room = free === undefined ? undefined : roomOf(free);
  const byRoom = room !== undefined && room < (limits.maxBytes ?? Infinity);
  try {
    const summary = await extract({
      writeEntry: async (path, data) => {
        await batch.write(path, data);
      },
      // a local landing folder: larger entries are inflated into two buffers in turn, one written as the other fills
      openEntry: batch.open ? (path) => batch.open!(path) : undefined,
      writeEntryBytes: async (path, data) => {
        if (batch.writeBytes) await batch.writeBytes(path, data);
        else await batch.write(path, ReadableStream.from([data]), { size: data.byteLength });
      },
      makeFolder: async (path) => {
        await batch.makeFolder?.(path);
      },
      finish: async () => {
        await batch.flush?.();
      },
    }, byRoom ? { ...limits, maxBytes: room } : limits);
    await batch.commit();
    return { files: summary.entries, bytes: summary.bytes, warnings: summary.warnings };
  } catch (error) {
    await batch.abort();
    if (byRoom && error instanceof ZipError && error.limit === "maxBytes") {
      const over = `more than the landing file system can take (${formatBytes(free!)} free, of which ${
        formatBytes(free! - room!)
      } is kept free)`;
      throw new ZipError(
        `${
          error.message.replace(
            /(over|exceeds) maxBytes \(\d+ bytes\)/,
            (_, verb: string) => verb === "over" ? over : `is ${over}`,
          )
        }; nothing was landed: free some space, or land it elsewhere`,
        { entry: error.entry, cause: error.cause, limit: "freeSpace" },
      );
    }
    throw error;
  }
}

/** An extraction error, saying which param changes the outcome where one does. */
function withHint(error: unknown, params: Params): unknown {
  if (!(error instanceof ZipError)) return error;
  const hint = (message: string) => new ZipError(message, { entry: error.entry, cause: error.cause });
  if (error.message.endsWith(VCS_REFUSAL)) {
    return hint(`${error.message}; allow_vcs_metadata: true extracts it`);
  }
  if (error.limit === "maxRatio") {
    return hint(
      `${error.message.replace("maxRatio", "max_unzip_ratio")}, past the first 1 GiB: a zip bomb, or data ` +
        `that compresses unusually well; if the archive is genuine, raise max_unzip_ratio (now ${params.max_unzip_ratio})`,
    );
  }
  if (error.limit === "maxBytes") {
    return hint(
      `${error.message.replace("maxBytes", "max_unzip_bytes")}; raise max_unzip_bytes if it is genuine`,
    );
  }
  if (/No space left on device|os error 28/.test(error.message)) {
    return hint(
      `${error.message}: the landing file system is full; what was extracted has been removed (max_unzip_bytes stops such an archive early)`,
    );
  }
  return error;
}

/** The fallback for archives that cannot be streamed: the whole body goes to a temporary file first. */
async function downloadThenExtract(
  context: TaskContext<Params>,
  spec: RequestSpec,
  landing: Storage,
  limits: { maxRatio: number; maxBytes?: number; allowVcsMetadata: boolean; signal: AbortSignal },
  expectedSha256: string | undefined,
  progress: (bytes: number, total?: number) => void,
): Promise<{ files: number; bytes: number; warnings?: string[] }> {
  const temporary = `${context.stateDir}/download-${crypto.randomUUID()}.zip`;
  try {
    await fetchWithRetries(spec, async (body, info) => {
      const hashing = new HashingStream((n) => progress(n, info.contentLength), { hash: !!expectedSha256 });
      const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
      await body.pipeThrough(hashing).pipeTo(file.writable, { signal: context.signal });
      if (expectedSha256) checkSha256(expectedSha256, hashing.digest(), redactUrl(spec.url));
    });
    const size = (await Deno.stat(temporary)).size;
    return await extractIntoBatch(
      landing,
      limits,
      (sink, limits) => extractZipFile(temporary, sink, { ...limits, archiveSize: size }),
    );
  } finally {
    await Deno.remove(temporary).catch(() => {});
  }
}

function checkSha256(expected: string | undefined, actual: string, what: string) {
  if (expected !== undefined && expected !== actual) {
    throw new Error(`sha256 mismatch for ${what}: expected ${expected}, got ${actual}; nothing was landed`);
  }
}

/** Whether the download is extracted (`unzip: "unzip"`, or `true`) rather than landed as a file. */
function extracts(params: Params): boolean {
  return params.unzip === "unzip" || params.unzip === true;
}

/**
 * The folder a download writes into: `landing_directory` itself when it receives extracted files or the URL's
 * file name; otherwise the folder holding the file named by `landing_directory` (its temporary name is there).
 */
function landingFolder(params: Params, resolve: (path: string) => string): string {
  const landing = params.landing_directory;
  if (extracts(params) || landing.endsWith("/") || isS3Url(landing)) {
    return landing;
  }
  try {
    if (Deno.statSync(resolve(landing)).isDirectory) return landing;
  } catch {
    // not there yet: a file to write
  }
  const slash = landing.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : landing.slice(0, slash);
}

/** Where a download without unzip goes: the landing path itself, or a folder plus the URL's file name. */
async function fileTarget(
  landing: string,
  url: string,
  context: TaskContext<Params>,
): Promise<{ storage: Storage; path: string }> {
  const urlName = decodeURIComponent(basename(new URL(url).pathname)) || "download";
  const safeName = urlName.replace(/[\\/\0]/g, "_").replace(/^\.+$/, "download");
  let isFolder = landing.endsWith("/");
  if (!isFolder && isS3Url(landing)) {
    // a bucket, or a prefix that already holds objects, is a folder; otherwise the key to write
    isFolder = parseS3Url(landing).prefix === "" || await s3PrefixHasObjects(landing, context);
  } else if (!isFolder) {
    isFolder = await Deno.stat(context.resolve(landing)).then((s) => s.isDirectory, () => false);
  }
  if (isFolder) return { storage: await openLocation(landing, context), path: safeName };
  const slash = landing.lastIndexOf("/");
  const folder = slash <= 0 ? (slash === 0 ? "/" : ".") : landing.slice(0, slash);
  return { storage: await openLocation(folder, context), path: landing.slice(slash + 1) };
}

async function s3PrefixHasObjects(landing: string, context: TaskContext<Params>): Promise<boolean> {
  for await (const _ of (await openLocation(landing, context)).list({ signal: context.signal })) return true;
  return false;
}

function requestSpec(params: Params, signal: AbortSignal): RequestSpec {
  const args = params.requests_arguments;
  const headers: Record<string, string> = { ...args.headers };
  if (args.cookies) {
    headers.Cookie = Object.entries(args.cookies).map(([k, v]) => `${k}=${v}`).join("; ");
  }
  return {
    url: args.url,
    params: args.params,
    headers,
    auth: args.auth,
    timeout: args.timeout,
    retries: params.retries,
    retryDelay: params.retry_delay,
    redirect: args.allow_redirects ? "follow" : "manual",
    signal,
  };
}

function fileUrlPath(url: string): string {
  return decodeURIComponent(new URL(url).pathname);
}

function withDefaultPort(url: string) {
  const port = new URL(url).protocol === "http:" ? "80" : "443";
  return (host: string) => (host.includes(":") ? host : `${host}:${port}`);
}

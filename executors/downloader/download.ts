/**
 * DownloaderExecutor's task: downloads `requests_arguments.url` into `landing_directory` (see mod.ts),
 * extracting zip archives on the way.
 *
 * @module
 */
import { basename } from "node:path";
import type { TaskContext } from "../../sdk/executor.ts";
import { ByteMeter, HashingStream, metered } from "../../lib/hashing.ts";
import {
  fetchWithRetries,
  HttpError,
  percentDecoded,
  redactUrl,
  type RequestSpec,
} from "../../lib/http/mod.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import { parseS3Url } from "../../lib/aws/s3/scope.ts";
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
import { extracts, type Params } from "./params.ts";

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
    reportLanded(context, { files: summary.files, bytes: summary.bytes, path: landing.url });
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
  reportLanded(context, {
    files: 1,
    bytes: written.size,
    path: storage.url,
    file: `${storage.url.replace(/\/$/, "")}/${path}`,
  });
}

/**
 * The outputs: `files` and `bytes` landed, the landing folder (`path`: absolute, or s3://…) and, without
 * unzip, the file written (`file`). A re-run downloads again, and reports the same for the same download.
 */
function reportLanded(
  context: TaskContext<Params>,
  landed: { files: number; bytes: number; path: string; file?: string },
): void {
  for (const [name, value] of Object.entries(landed)) {
    if (value !== undefined) context.report({ type: "output", name, value });
  }
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

/** Where a download without unzip goes: the landing path itself, or a folder plus the URL's file name. */
async function fileTarget(
  landing: string,
  url: string,
  context: TaskContext<Params>,
): Promise<{ storage: Storage; path: string }> {
  // (a `%` that is no percent-encoding, `%zz.zip`, is kept as written: a server may serve such a name)
  const urlName = percentDecoded(basename(new URL(url).pathname)) || "download";
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

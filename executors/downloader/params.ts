/**
 * DownloaderExecutor's params, and what both its definition (the permissions a step gets) and its task need
 * to know of them.
 *
 * @module
 */
import type { Zod } from "../../sdk/executor.ts";
import { isS3Url } from "../../lib/storage/mod.ts";
import { locationSchema } from "../../lib/storage/locations.ts";
import { downloadUrl } from "../../lib/http/request.ts";

/** The params' schema, from which validation, `lakerun list` and the JSON Schema come. */
export const paramsSchema = (z: Zod) => {
  const scalar = z.union([z.string(), z.number(), z.boolean()]);
  const noProto = (record: Record<string, unknown>) => !Object.hasOwn(record, "__proto__");
  return z.strictObject({
    requests_arguments: z.strictObject({
      url: z.string().superRefine(refineUrl).describe("URL to download: http(s):// or file://."),
      // secret: query values, header and cookie values and the password may be credentials (api_key=…,
      // Authorization: Bearer …): messages never quote them, `plan` shows `***` (keys kept)
      params: z.record(z.string(), z.union([scalar, z.null(), z.array(scalar)]).meta({ secret: true }))
        .refine(noProto).optional().describe("Query parameters added to the URL; a list repeats the key."),
      headers: z.record(z.string(), z.string().meta({ secret: true })).refine(noProto).optional().describe(
        "Request headers.",
      ),
      timeout: z.union([z.number().positive(), z.tuple([z.number().positive(), z.number().positive()])])
        .optional()
        .describe(
          "Seconds: connect and read timeout, or [connect, read]. A server silent this long is a failed attempt.",
        ),
      auth: z.tuple([z.string(), z.string().meta({ secret: true })]).optional().describe(
        "[user, password] for HTTP Basic auth.",
      ),
      cookies: z.record(z.string(), z.string().meta({ secret: true })).refine(noProto).optional().describe(
        "Cookies sent with the request.",
      ),
      allow_redirects: z.boolean().default(true).describe("Follow redirects (to hosts in extra_hosts)."),
      stream: z.boolean().optional().describe("Accepted for compatibility; lakerun always streams."),
      verify: z.literal(true).optional().describe("Accepted for compatibility; TLS is always verified."),
    }).describe("What the notebook passed to requests.get."),
    landing_directory: locationSchema(z).describe(
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
  }).refine(
    (p) =>
      p.sha256 === undefined || p.checksum === undefined ||
      p.checksum.slice("sha256:".length).toLowerCase() === p.sha256.toLowerCase(),
    { message: "sha256 and checksum name different digests: give one", path: ["checksum"] },
  );
};

/** A URL the download can fetch (http://, https:// or file://); the message shows it redacted. */
function refineUrl(url: string, context: { addIssue(issue: { code: "custom"; message: string }): void }) {
  try {
    downloadUrl(url);
  } catch (error) {
    context.addIssue({ code: "custom", message: (error as Error).message });
  }
}

/** Params as validated. */
export type Params = ReturnType<ReturnType<typeof paramsSchema>["parse"]>;

/** Whether the download is extracted (`unzip: "unzip"`, or `true`) rather than landed as a file. */
export function extracts(params: Params): boolean {
  return params.unzip === "unzip" || params.unzip === true;
}

/**
 * The folder a download writes into: `landing_directory` itself when it receives extracted files or the URL's
 * file name; otherwise the folder holding the file named by `landing_directory` (its temporary name is there).
 */
export function landingFolder(params: Params, resolve: (path: string) => string): string {
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

/** The local path of a `file:` URL. */
export function fileUrlPath(url: string): string {
  return decodeURIComponent(new URL(url).pathname);
}

/** Adds the URL's default port to an `extra_hosts` entry that has none. */
export function withDefaultPort(url: string) {
  const port = new URL(url).protocol === "http:" ? "80" : "443";
  return (host: string) => (host.includes(":") ? host : `${host}:${port}`);
}

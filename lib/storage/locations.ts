/**
 * Opens a location from a routine param: a local folder (relative to the current folder) or
 * `s3://bucket/prefix`. Each backend is loaded when a step opens a location of its kind (the S3 one with its
 * SDK), so that an executor's definition, which only computes permissions with {@link locationScope}, loads
 * neither.
 *
 * @module
 */
import type { z } from "zod";
import { quoteJson, UNSAFE_CHARACTERS } from "../printable.ts";
import { basename, dirname, isAbsolute, join, normalize, resolve } from "node:path";
import type { S3Settings } from "../aws/settings.ts";
import { s3Scope } from "../aws/s3/scope.ts";
import { parseS3Url, s3LocationProblem } from "../aws/s3/url.ts";
import type { PermissionScope } from "../scope.ts";
import { isS3Url, type Storage } from "./mod.ts";

export { mergeScopes } from "../scope.ts";

/** What {@link locationScope} needs of an executor's permission context. */
export interface LocationContext {
  /** Resolves a local path from the routine. */
  resolve(path: string): string;
  /** S3 connection settings. */
  s3?: S3Settings;
}

/** Options for {@link openLocation}. */
export interface OpenOptions {
  /** Folder that relative local paths resolve against. */
  cwd: string;
  /** The routine-level `s3` block. */
  s3?: S3Settings;
  /**
   * The step's state folder (a task's `context.stateDir`): an S3 location records its open multipart uploads
   * there, so that the next run aborts exactly those a killed run left (lib/aws/s3/upload_records.ts).
   */
  stateDir?: string;
}

/**
 * The {@link Storage} for `location`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openLocation } from "./locations.ts";
 *
 * const cwd = await Deno.makeTempDir();
 * await Deno.mkdir(`${cwd}/data/landing/2024`, { recursive: true });
 * await Deno.writeTextFile(`${cwd}/data/landing/2024/a.csv`, "a,b\n");
 * const landing = await openLocation("data/landing", { cwd });
 * assert.equal(landing.url, `${cwd}/data/landing`);
 * const files = await Array.fromAsync(landing.list(), (file) => [file.path, file.size]);
 * assert.deepEqual(files, [["2024/a.csv", 4]]);
 * const s3 = { endpoint: "http://127.0.0.1:7480" };
 * const staging = await openLocation("s3://lake/staging", { cwd, s3 });
 * assert.equal(staging.kind, "s3"); // opening sends no request
 * await Deno.remove(cwd, { recursive: true });
 * ```
 */
export async function openLocation(location: string, options: OpenOptions): Promise<Storage> {
  checkLocation(location);
  if (isS3Url(location)) {
    const { openS3Location } = await import("../aws/s3/storage.ts");
    return openS3Location(location, options.s3, { stateDir: options.stateDir });
  }
  const { LocalStorage } = await import("./local.ts");
  return new LocalStorage(resolve(options.cwd, location));
}

/**
 * Refuses a location written as a URL of another kind than `s3://` (`gs://…`, `file:///…`), or as `s3:`
 * with a slash or two missing (`s3:/lake/x`, `s3:lake/x`), which would otherwise be taken for a local folder
 * of that odd name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLocation } from "./locations.ts";
 *
 * checkLocation("data/landing");
 * checkLocation("s3://lake/landing");
 * assert.throws(() => checkLocation("gs://lake/landing"), {
 *   message: '"gs://lake/landing" is neither a local folder nor an s3:// location',
 * });
 * checkLocation("S3://lake/landing"); // the scheme in any case
 * // a slash short is a typo, not a local folder named "s3:"
 * assert.throws(() => checkLocation("s3:/lake/x"), {
 *   message: '"s3:/lake/x" is not an s3:// location: did you mean s3://lake/x?',
 * });
 * assert.throws(() => checkLocation("s3:lake/x"), /did you mean s3:\/\/lake\/x\?/);
 * ```
 */
export function checkLocation(location: string): void {
  const problem = schemeProblem(location);
  if (problem) throw new TypeError(problem);
}

function schemeProblem(location: string): string | undefined {
  const typo = /^s3:\/?(?!\/)(.*)$/i.exec(location);
  if (typo) {
    return `${JSON.stringify(location)} is not an s3:// location: did you mean s3://${
      typo[1].replace(/^\/+/, "")
    }?`;
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  if (scheme === undefined || isS3Url(location)) return undefined;
  return `${JSON.stringify(location)} is neither a local folder nor an s3:// location`;
}

/**
 * Why `location` cannot be used as a local folder or `s3://bucket/prefix` location, in one line quoting it
 * (see {@link checkLocation} and `s3LocationProblem`), or `undefined` when it can: what {@link locationScope}
 * and {@link openLocation} would throw for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { locationProblem } from "./locations.ts";
 *
 * assert.equal(locationProblem("data/landing"), undefined);
 * assert.equal(locationProblem("s3://lake/landing"), undefined);
 * assert.equal(locationProblem("gs://lake/x"), '"gs://lake/x" is neither a local folder nor an s3:// location');
 * assert.equal(locationProblem("s3://"), 'invalid S3 location "s3://" (expected s3://bucket/prefix)');
 * assert.match(locationProblem("s3://Lake/x")!, /the bucket name "Lake" must be 3–63 lowercase letters/);
 * assert.match(locationProblem(" s3://lake/x")!, /^" s3:\/\/lake\/x" has leading or trailing whitespace/);
 * assert.equal(locationProblem(""), "is empty: give a local folder or s3://bucket/prefix");
 * // a line break, an escape sequence, NUL, a bidirectional override: refused (they would forge printed lines)
 * assert.match(locationProblem("out\n  ✓ done")!, /^"out\\n  ✓ done" holds a control or invisible character \(U\+000A\)/);
 * assert.match(locationProblem("a\x1b[8m")!, /^"a\\u001b\[8m" holds .* \(U\+001B\)/);
 * assert.notEqual(locationProblem("l\0/x"), undefined);
 * assert.equal(locationProblem("données/2024 été"), undefined);
 * ```
 */
export function locationProblem(location: string): string | undefined {
  if (location === "") return "is empty: give a local folder or s3://bucket/prefix";
  if (location.trim() !== location) {
    return `${
      JSON.stringify(location)
    } has leading or trailing whitespace (refused rather than taken as part ` +
      "of a folder's name)";
  }
  const unsafe = UNSAFE_CHARACTERS.exec(location);
  if (unsafe) {
    const code = `U+${unsafe[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    return `${
      quoteJson(location)
    } holds a control or invisible character (${code}): refused, as no folder or ` +
      "key a routine names needs one and it would print as something else";
  }
  return schemeProblem(location) ?? (isS3Url(location) ? s3LocationProblem(location) : undefined);
}

/**
 * The schema of a location param: a string that {@link locationProblem} accepts, each problem one issue (an
 * empty value is said once, as what to give).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { locationSchema } from "./locations.ts";
 *
 * const issues = z.object({ to: locationSchema(z) }).safeParse({ to: "" }).error!.issues;
 * assert.deepEqual(issues.map((issue) => issue.message), ["is empty: give a local folder or s3://bucket/prefix"]);
 * assert.equal(locationSchema(z).safeParse("s3://lake/x").success, true);
 * ```
 */
export function locationSchema(zod: typeof z) {
  return zod.string().min(1, { error: "is empty: give a local folder or s3://bucket/prefix", abort: true })
    .superRefine(refineLocation);
}

/**
 * The check of a location param in an executor's params schema ({@link locationSchema})
 * makes {@link locationProblem} an issue of that param. Each location is then reported on its own, with every
 * other problem of its step's params, before the step's permissions are computed from them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { refineLocation } from "./locations.ts";
 *
 * const schema = z.object({ from: z.string().superRefine(refineLocation), to: z.string().superRefine(refineLocation) });
 * const issues = schema.safeParse({ from: "gs://lake/x", to: "s3:/lake/y" }).error!.issues;
 * assert.deepEqual(issues.map((issue) => [issue.path, issue.message]), [
 *   [["from"], '"gs://lake/x" is neither a local folder nor an s3:// location'],
 *   [["to"], '"s3:/lake/y" is not an s3:// location: did you mean s3://lake/y?'],
 * ]);
 * ```
 */
export function refineLocation(
  location: string,
  context: { addIssue(issue: { code: "custom"; message: string }): void },
): void {
  const problem = locationProblem(location);
  if (problem !== undefined) context.addIssue({ code: "custom", message: problem });
}

/**
 * The permission scope needed to use `location`: the folder itself for a local path; for S3, the endpoint's
 * host and what the AWS credential chain reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolve } from "node:path";
 * import { locationScope } from "./locations.ts";
 *
 * const context = { resolve: (path: string) => resolve("/work", path) };
 * assert.deepEqual(locationScope("data/landing", "read", context), { read: ["/work/data/landing"] });
 * assert.deepEqual(locationScope("data/landing", "write", context), {
 *   read: ["/work/data/landing"],
 *   write: ["/work/data/landing"],
 * });
 * ```
 */
export function locationScope(
  location: string,
  access: "read" | "write",
  context: LocationContext,
): PermissionScope {
  checkLocation(location);
  if (isS3Url(location)) return s3Scope(location, context.s3);
  const path = context.resolve(location);
  return access === "read" ? { read: [path] } : { read: [path], write: [path] };
}

/**
 * True when `inner` is `outer` itself or a folder inside it. S3 locations compare by bucket and key prefix; local
 * paths by `resolve` when given, otherwise lexically when both are relative (or both absolute). When the two
 * cannot be compared without the current folder (one relative, one absolute, or `..` segments), the answer is
 * false: the check is then repeated when the step runs, with `resolve`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolve } from "node:path";
 * import { isWithinLocation } from "./locations.ts";
 *
 * assert.equal(isWithinLocation("data", "data/archive"), true);
 * assert.equal(isWithinLocation(".", "staging"), true);
 * assert.equal(isWithinLocation("s3://lake/raw", "s3://lake/raw2"), false);
 * assert.equal(isWithinLocation("data", "/work/data/x"), false); // cannot tell without the current folder
 * assert.equal(isWithinLocation("data", "/work/data/x", (path) => resolve("/work", path)), true);
 * ```
 */
export function isWithinLocation(outer: string, inner: string, resolve?: (path: string) => string): boolean {
  const a = locationKey(outer, resolve);
  const b = locationKey(inner, resolve);
  if (a === undefined || b === undefined) return false;
  if (b.startsWith(a)) return true;
  if (!resolve || !a.startsWith("abs:") || !b.startsWith("abs:")) return false;
  // with the current folder known, also as the file system has them: through the symbolic links on the way
  const real = (key: string) => `abs:${realLocation(key.slice(4, -1) || "/").replace(/\/+$/, "")}/`;
  return real(b).startsWith(real(a));
}

/**
 * Where the absolute `path` is once the symbolic links on the way are followed, as Deno's permission grants
 * and the file system follow them: the real path of its deepest folder that exists, with the rest appended
 * (`/work/link/new` with link → `/work/.lakerun` is `/work/.lakerun/new`); a link to a path that does not
 * exist yet is followed to where it points.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { realLocation } from "./locations.ts";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * await Deno.mkdir(`${dir}/data/sub`, { recursive: true });
 * await Deno.symlink(`${dir}/data/sub`, `${dir}/link`);
 * assert.equal(realLocation(`${dir}/link/new/file.csv`), `${dir}/data/sub/new/file.csv`);
 * assert.equal(realLocation(`${dir}/data`), `${dir}/data`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function realLocation(path: string, links = 0): string {
  const rest: string[] = [];
  for (let at = path;; at = dirname(at)) {
    try {
      return join(Deno.realPathSync(at), ...rest.reverse());
    } catch {
      // a link to a path that does not exist yet: where it points, as a later mkdir would follow it
      const target = links < 40 ? linkTarget(at) : undefined;
      if (target !== undefined) {
        return realLocation(join(resolve(dirname(at), target), ...rest.reverse()), links + 1);
      }
      if (dirname(at) === at) return path;
      rest.push(basename(at));
    }
  }
}

function linkTarget(path: string): string | undefined {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Whether two locations overlap: one is the other or inside it (see {@link isWithinLocation}, which says when
 * local paths can be compared without `resolve`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolve } from "node:path";
 * import { locationsOverlap } from "./locations.ts";
 *
 * assert.equal(locationsOverlap("data/staging", "data"), true);
 * assert.equal(locationsOverlap("data/staging", "data/archive"), false);
 * assert.equal(locationsOverlap("/work/data", "data/x", (path) => resolve("/work", path)), true);
 * ```
 */
export function locationsOverlap(a: string, b: string, resolve?: (path: string) => string): boolean {
  return isWithinLocation(a, b, resolve) || isWithinLocation(b, a, resolve);
}

/** A location as a comparable key ending in `/`: a location inside another starts with the other's key. */
function locationKey(location: string, resolve?: (path: string) => string): string | undefined {
  if (isS3Url(location)) {
    try {
      const { bucket, prefix } = parseS3Url(location);
      return `s3://${bucket}/${prefix ? `${prefix}/` : ""}`;
    } catch {
      return undefined; // an invalid S3 location is reported by its step
    }
  }
  if (resolve) return `abs:${resolve(location).replace(/\/+$/, "")}/`;
  const path = normalize(location).replace(/\/+$/, "");
  if (isAbsolute(path)) return `abs:${path}/`;
  if (path === "..") return undefined;
  if (path.startsWith("../")) return undefined;
  return path === "." ? "rel:" : `rel:${path}/`;
}

/**
 * Opens a location from a routine param: a local folder (relative to the current folder) or
 * `s3://bucket/prefix`. The S3 backend and its SDK are loaded only when a step uses S3.
 *
 * @module
 */
import { resolve, sep } from "node:path";
import type { PermissionContext, PermissionScope, S3Settings } from "../orchestrator/contract.ts";
import { s3Scope } from "./s3_scope.ts";
import { isS3Url, type Storage } from "./storage.ts";
import { LocalStorage } from "./storage_local.ts";

/** Options for {@link openLocation}. */
export interface OpenOptions {
  /** Folder that relative local paths resolve against. */
  cwd: string;
  /** The routine-level `s3` block. */
  s3?: S3Settings;
}

/**
 * The {@link Storage} for `location`.
 *
 * @example
 * ```ts
 * const landing = await openLocation("data/landing", { cwd: Deno.cwd() });
 * for await (const file of landing.list()) console.log(file.path);
 * ```
 */
export async function openLocation(location: string, options: OpenOptions): Promise<Storage> {
  if (isS3Url(location)) {
    const { openS3Location } = await import("./storage_s3.ts");
    return openS3Location(location, options.s3);
  }
  return new LocalStorage(resolve(options.cwd, location));
}

/**
 * The permission scope needed to use `location`: the folder itself for a local path; for S3, the endpoint's
 * host and what the AWS credential chain reads.
 *
 * @example
 * ```ts
 * locationScope("data/landing", "write", context); // { read: ["/abs/data/landing"], write: ["/abs/data/landing"] }
 * ```
 */
export function locationScope(
  location: string,
  access: "read" | "write",
  context: PermissionContext,
): PermissionScope {
  if (isS3Url(location)) return s3Scope(location, context.s3);
  const path = context.resolve(location);
  return access === "read" ? { read: [path] } : { read: [path], write: [path] };
}

/**
 * Merges permission scopes.
 *
 * @example
 * ```ts
 * mergeScopes({ read: ["/a"] }, { read: ["/b"], net: ["h:443"] }); // { read: ["/a", "/b"], net: ["h:443"], … }
 * ```
 */
export function mergeScopes(...scopes: PermissionScope[]): Required<PermissionScope> {
  const merged: Required<PermissionScope> = { read: [], write: [], net: [], env: [], run: [] };
  for (const scope of scopes) {
    for (const kind of ["read", "write", "net", "env", "run"] as const) {
      for (const item of scope[kind] ?? []) if (!merged[kind].includes(item)) merged[kind].push(item);
    }
  }
  return merged;
}

/**
 * True when `inner` is `outer` itself or a folder inside it (same backend; local paths resolved against the
 * current folder, S3 locations compared by bucket and key prefix).
 *
 * @example
 * ```ts
 * isWithinLocation("data", "data/archive"); // true
 * isWithinLocation("s3://lake/raw", "s3://lake/raw2"); // false
 * ```
 */
export function isWithinLocation(outer: string, inner: string): boolean {
  if (isS3Url(outer) !== isS3Url(inner)) return false;
  const normalise = (location: string) =>
    isS3Url(location)
      ? `${location.replace(/^s3:\/\//i, "").replace(/\/+$/, "")}/`
      : `${resolve(location).replace(/\/+$/, "")}${sep}`;
  return normalise(inner).startsWith(normalise(outer));
}

/**
 * Permission scopes: what a step may read, write, connect to, read from the environment and start. Executors
 * compute one from their params; lakerun resolves it, shows it (`lakerun plan`) and hands it to the step's
 * Worker, where the runtime enforces it.
 *
 * @module
 */

/** Deno permission scopes for one step. Every path is absolute once resolved by lakerun. */
export interface PermissionScope {
  /** Files and folders the step may read. */
  read?: string[];
  /** Files and folders the step may write. */
  write?: string[];
  /** `host:port` pairs (or hosts) the step may connect to. */
  net?: string[];
  /** Environment variables the step may read (`AWS_*` wildcards allowed). */
  env?: string[];
  /** Programs the step may start. Note: a started program is not confined by Deno's sandbox. */
  run?: string[];
  /** Facts about the system the step may ask for, by Deno's names (`statfs`: a file system's free space). */
  sys?: string[];
}

/** The permission kinds in the order they are shown. */
export const SCOPE_KINDS = ["read", "write", "net", "env", "run", "sys"] as const;

/**
 * Merges permission scopes, keeping the first occurrence of each item.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergeScopes } from "./scope.ts";
 *
 * assert.deepEqual(mergeScopes({ read: ["/a"] }, { read: ["/b", "/a"], net: ["h:443"] }), {
 *   read: ["/a", "/b"],
 *   write: [],
 *   net: ["h:443"],
 *   env: [],
 *   run: [],
 *   sys: [],
 * });
 * ```
 */
export function mergeScopes(...scopes: PermissionScope[]): Required<PermissionScope> {
  const merged: Required<PermissionScope> = { read: [], write: [], net: [], env: [], run: [], sys: [] };
  for (const scope of scopes) {
    for (const kind of SCOPE_KINDS) {
      for (const item of scope[kind] ?? []) if (!merged[kind].includes(item)) merged[kind].push(item);
    }
  }
  return merged;
}

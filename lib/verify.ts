/**
 * Verifying a copy before its source is archived or deleted: same size, then same content.
 *
 * @module
 */
import type { Storage, StoredFile } from "./storage.ts";

/** A copy that does not match its source. */
export class CopyMismatchError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
    this.name = "CopyMismatchError";
  }
}

/** How a copy differs from its source. */
export interface CopyProblem {
  kind: "source-missing" | "missing" | "size" | "content";
  message: string;
}

/**
 * Why the copy at `target`/`targetPath` differs from `source`/`sourcePath`, or `undefined` when it is
 * byte-identical: missing, another size, or other bytes (sha256 of both sides).
 *
 * @example
 * ```ts
 * const problem = await copyProblem(landing, "a.csv", staging, "a.csv");
 * if (problem) throw new Error(problem);
 * ```
 */
export async function copyProblem(
  source: Storage,
  sourcePath: string,
  target: Storage,
  targetPath: string,
  options: { sourceInfo?: StoredFile; signal?: AbortSignal } = {},
): Promise<CopyProblem | undefined> {
  const [from, to] = await Promise.all([
    options.sourceInfo ?? source.stat(sourcePath),
    target.stat(targetPath),
  ]);
  if (!from || from.kind !== "file") {
    return { kind: "source-missing", message: `source ${source.url}/${sourcePath} is missing` };
  }
  if (!to || to.kind !== "file") {
    return { kind: "missing", message: `no copy at ${target.url}/${targetPath}` };
  }
  if (to.size !== from.size) {
    return { kind: "size", message: `copy is ${to.size} bytes, source is ${from.size}` };
  }
  const [a, b] = await Promise.all([
    source.sha256(sourcePath, { signal: options.signal }),
    target.sha256(targetPath, { signal: options.signal }),
  ]);
  if (a !== b) return { kind: "content", message: "copy differs from the source (sha256)" };
  return undefined;
}

/**
 * Throws {@link CopyMismatchError} unless the copy is byte-identical to its source.
 *
 * @example
 * ```ts
 * await verifyCopy(landing, "a.csv", staging, "a.csv");
 * await landing.remove("a.csv"); // only now
 * ```
 */
export async function verifyCopy(
  source: Storage,
  sourcePath: string,
  target: Storage,
  targetPath: string,
  options: { sourceInfo?: StoredFile; signal?: AbortSignal } = {},
): Promise<void> {
  const problem = await copyProblem(source, sourcePath, target, targetPath, options);
  if (problem) throw new CopyMismatchError(sourcePath, problem.message);
}

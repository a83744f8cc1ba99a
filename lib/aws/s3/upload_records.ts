/**
 * Which multipart uploads lakerun started and has not finished: a record per upload (its key and UploadId) in
 * the step's state folder, written as soon as CreateMultipartUpload answers and removed once the upload is
 * completed or aborted. A run that was killed leaves its records behind, and the next run of the step aborts
 * exactly those uploads — never an upload another tool started, nor one of a step running beside it (each
 * step has a state folder of its own), nor one of this very process (its records carry this process's
 * session).
 *
 * A kill in the few milliseconds between CreateMultipartUpload's answer and the record's write leaves an
 * upload that no record names: only a bucket lifecycle rule (`AbortIncompleteMultipartUpload`) removes it.
 *
 * @module
 */
import { join } from "node:path";

/** The folder of the records, inside a step's state folder. */
export const UPLOAD_RECORDS_FOLDER = "s3-uploads";

/** One multipart upload lakerun started. */
export interface UploadRecord {
  /** The custom endpoint, `null` for AWS itself. */
  endpoint: string | null;
  bucket: string;
  key: string;
  uploadId: string;
}

/** A record left by another process (a killed run), with the file that holds it. */
export interface LeftUpload extends UploadRecord {
  /** The record's file name, for {@link UploadRecords.remove}. */
  name: string;
}

/**
 * Whether two endpoint URLs (`null`: AWS itself) name one server: compared as URLs, so that a routine
 * edited from `http://Store:80/` to `http://store` between a killed run and the next still finds the uploads
 * the killed run left there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameEndpoint } from "./upload_records.ts";
 *
 * assert.ok(sameEndpoint("http://Store.example:80/", "http://store.example"));
 * assert.ok(sameEndpoint(null, null));
 * assert.ok(!sameEndpoint("http://store.example:7480", "http://store.example"));
 * assert.ok(!sameEndpoint(null, "https://s3.amazonaws.com"));
 * ```
 */
export function sameEndpoint(a: string | null, b: string | null): boolean {
  return a === b || (a !== null && b !== null && endpointKey(a) === endpointKey(b));
}

/** An endpoint URL's scheme, host, port (unless the scheme's own) and path without trailing slashes. */
function endpointKey(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
  } catch {
    return endpoint;
  }
}

/** This process: records it writes are of uploads still in use, never aborted by its own clean-up. */
const SESSION = crypto.randomUUID().slice(0, 8);
let counter = 0;

/**
 * The upload records of one step's state folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UploadRecords } from "./upload_records.ts";
 *
 * const stateDir = await Deno.makeTempDir(); // in a task: `context.stateDir`
 * const records = new UploadRecords(stateDir);
 * const name = await records.started({ endpoint: null, bucket: "lake", key: "staging/a.csv", uploadId: "u1" });
 * // this process's own uploads are in use: its clean-up never sees them
 * assert.deepEqual(await records.leftBehind(null, "lake", "staging"), []);
 * // a later process (the next run) finds what a killed one left
 * const later = new UploadRecords(stateDir, { session: "next-run" });
 * assert.deepEqual((await later.leftBehind(null, "lake", "staging")).map((u) => u.key), ["staging/a.csv"]);
 * assert.deepEqual(await later.leftBehind(null, "lake", "archive"), []); // another location's
 * await records.remove(name); // completed or aborted
 * assert.deepEqual(await later.leftBehind(null, "lake", "staging"), []);
 * await Deno.remove(stateDir, { recursive: true });
 * ```
 */
export class UploadRecords {
  /** The folder holding the records. */
  readonly folder: string;
  readonly #session: string;
  #made: Promise<void> | undefined;

  /** The records of the step whose state folder is `stateDir`; `options.session` is for tests. */
  constructor(stateDir: string, options: { session?: string } = {}) {
    this.folder = join(stateDir, UPLOAD_RECORDS_FOLDER);
    this.#session = options.session ?? SESSION;
  }

  /** Records an upload just started; resolves to the record's name, for {@link UploadRecords.remove}. */
  async started(upload: UploadRecord): Promise<string> {
    this.#made ??= Deno.mkdir(this.folder, { recursive: true });
    await this.#made;
    const name = `${this.#session}-${++counter}.json`;
    await Deno.writeTextFile(join(this.folder, name), JSON.stringify(upload));
    return name;
  }

  /** Removes a record: its upload was completed or aborted. */
  async remove(name: string): Promise<void> {
    await Deno.remove(join(this.folder, name)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }

  /**
   * The uploads that other processes (killed runs of the step) recorded on `endpoint`'s `bucket` under
   * `prefix` (the whole bucket when empty). A record cut short by a kill is removed.
   */
  async leftBehind(endpoint: string | null, bucket: string, prefix: string): Promise<LeftUpload[]> {
    const left: LeftUpload[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.folder));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return left;
      throw error;
    }
    for (const { name, isFile } of entries) {
      if (!isFile || name.startsWith(`${this.#session}-`)) continue;
      let record: UploadRecord;
      try {
        record = JSON.parse(await Deno.readTextFile(join(this.folder, name)));
      } catch (error) {
        if (!(error instanceof SyntaxError)) throw error;
        await this.remove(name); // written only in part: its upload is beyond knowing
        continue;
      }
      if (!sameEndpoint(record.endpoint, endpoint) || record.bucket !== bucket) continue;
      if (prefix && !record.key.startsWith(`${prefix}/`)) continue;
      left.push({ ...record, name });
    }
    return left.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

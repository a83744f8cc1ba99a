/**
 * {@link SmallFileWriter}: many small files written in batches, on this thread and, once there are many, on a
 * helper thread with this thread's permissions (lib/helper_threads.ts).
 *
 * Why: in a step's sandbox Deno resolves every path it opens component by component, which costs about as
 * much as creating the file, and that work, as the kernel's, goes on in parallel on two threads. A batch goes
 * to the helper, as one buffer handed over, while it has fewer than 8 batches to write (it counts those it
 * wrote in memory shared with this thread, which may be too busy to read its answers); otherwise this thread
 * writes it. Measured with `bench/small_files.ts --fresh-fs` (zips of 20,000 entries of ~1 KB and 70,000 of
 * ~100 bytes, downloaded and extracted by `deno run -A main.ts`): see bench/RESULTS.md, "Small files: the
 * helper writes while it can".
 *
 * A write may thus end after the call that asked for it: a failure is reported by a later call or by
 * {@link SmallFileWriter.drain} as a {@link FileWriteError} naming the file's path.
 *
 * @module
 */

import { type HelperThread, startHelperThread } from "../helper_threads.ts";

/** Files per batch. */
const BATCH_FILES = 128;
/** Bytes after which a batch is written even with fewer files. */
const BATCH_BYTES = 256 * 1024;
/** Files written before a helper thread is started (a smaller set is not worth starting one). */
const HELPER_AFTER = 128;
/** Batches the helper may have to write at once; more are written here. */
const HELPER_BATCHES = 8;

/** A file of a batch that could not be written: `entry` is its path as the caller named it. */
export class FileWriteError extends Error {
  /** The failure `cause` (its message is this error's) of writing the file the caller named `entry`. */
  constructor(readonly entry: string, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "FileWriteError";
  }
}

/**
 * The helper thread's program: takes the shared counter of batches written, then writes each batch it receives
 * on its port, counting it and answering with the first failure.
 */
const HELPER_SOURCE = `self.onmessage = ({ data: { port } }) => {
  let done;
  port.onmessage = ({ data }) => {
    if (data.done) {
      done = new Int32Array(data.done);
      return;
    }
    const { paths, ends, bytes } = data;
    for (let i = 0; i < paths.length; i++) {
      try {
        Deno.writeFileSync(paths[i], bytes.subarray(i === 0 ? 0 : ends[i - 1], ends[i]), { createNew: true });
      } catch (error) {
        Atomics.add(done, 0, 1);
        port.postMessage({ failed: i, message: String(error?.message ?? error) });
        return;
      }
    }
    Atomics.add(done, 0, 1);
    port.postMessage({ failed: -1 });
  };
};
`;

let helperUrl: string | undefined;

interface Pending {
  full: string;
  entry: string;
  bytes: Uint8Array;
}

/**
 * Writes new files (each at a path nothing is at yet) in batches; see the module documentation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FileWriteError, SmallFileWriter } from "./small_files.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const writer = new SmallFileWriter();
 * for (let i = 0; i < 1000; i++) writer.add(`${dir}/${i}.csv`, `${i}.csv`, new TextEncoder().encode(`${i}\n`));
 * writer.add(`${dir}/missing/x.csv`, "missing/x.csv", new Uint8Array(1)); // no such folder
 * await assert.rejects(writer.drain(), (e) => e instanceof FileWriteError && e.entry === "missing/x.csv");
 * writer.close();
 * assert.equal(await Deno.readTextFile(`${dir}/999.csv`), "999\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class SmallFileWriter {
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #added = 0;
  #helper: HelperThread | undefined;
  #starting = false;
  #closed = false;
  /** The entries of each batch the helper has, oldest first (it answers in order). */
  #atHelper: string[][] = [];
  /** Batches sent to the helper, and (shared with it) how many it has written. */
  #sent = 0;
  #done = new Int32Array(new SharedArrayBuffer(4));
  #failure: FileWriteError | undefined;
  /** Those waiting in {@link SmallFileWriter.drain}, woken by each answer of the helper. */
  #waiting: (() => void)[] = [];

  /**
   * Writes `bytes` to the new file `full` (its folder must exist), now or later; `entry` names it in a failure.
   * The bytes must not change until {@link SmallFileWriter.drain} resolves. Throws an earlier write's failure.
   */
  add(full: string, entry: string, bytes: Uint8Array): void {
    this.#throwFailure();
    this.#pending.push({ full, entry, bytes });
    this.#pendingBytes += bytes.byteLength;
    if (++this.#added === HELPER_AFTER) this.#startHelper();
    if (this.#pending.length >= BATCH_FILES || this.#pendingBytes >= BATCH_BYTES) this.#flush();
  }

  /** Writes what is left and waits for every write; throws the first failure. */
  async drain(): Promise<void> {
    if (this.#pending.length > 0 && !this.#failure) this.#flush();
    while (this.#atHelper.length > 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#throwFailure();
  }

  /** Ends the helper thread (writes it still had may not happen: {@link SmallFileWriter.drain} first). */
  close(): void {
    this.#closed = true;
    this.#helper?.terminate();
    this.#helper = undefined;
    this.#atHelper = [];
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const wake of this.#waiting.splice(0)) wake();
  }

  #throwFailure(): void {
    if (this.#failure) throw this.#failure;
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    const helper = this.#helper;
    if (helper && this.#sent - Atomics.load(this.#done, 0) < HELPER_BATCHES) {
      this.#sent++;
      this.#atHelper.push(batch.map((file) => file.entry));
      // the files' bytes, one after the other in one buffer handed over to the helper: the caller's buffers are
      // free again once this returns
      const ends = new Uint32Array(batch.length);
      let size = 0;
      for (let i = 0; i < batch.length; i++) ends[i] = size += batch[i].bytes.byteLength;
      const bytes = new Uint8Array(size);
      for (let i = 0; i < batch.length; i++) bytes.set(batch[i].bytes, i === 0 ? 0 : ends[i - 1]);
      helper.port.postMessage({ paths: batch.map((file) => file.full), ends, bytes }, [
        bytes.buffer,
        ends.buffer,
      ]);
      return;
    }
    for (const { full, entry, bytes } of batch) {
      try {
        Deno.writeFileSync(full, bytes, { createNew: true });
      } catch (error) {
        this.#failure ??= new FileWriteError(entry, error);
        throw this.#failure;
      }
    }
  }

  #startHelper(): void {
    if (this.#starting || this.#closed) return;
    this.#starting = true;
    helperUrl ??= URL.createObjectURL(new Blob([HELPER_SOURCE], { type: "text/javascript" }));
    startHelperThread(helperUrl, "lakerun-small-files").then((helper) => {
      if (this.#closed) return helper.terminate();
      helper.onerror = (message) => this.#helperFailed(message);
      helper.port.onmessage = ({ data }: MessageEvent<{ failed: number; message?: string }>) => {
        const entries = this.#atHelper.shift();
        if (entries && data.failed >= 0) {
          this.#failure ??= new FileWriteError(entries[data.failed], new Error(data.message));
        }
        this.#wakeAll();
      };
      helper.port.postMessage({ done: this.#done.buffer });
      this.#helper = helper;
    }, () => {
      // no helper thread: every batch is written here
    });
  }

  /** The helper thread died: what it had is not known to be written. */
  #helperFailed(message: string): void {
    const lost = this.#atHelper.flat();
    this.#failure ??= new FileWriteError(
      lost[0] ?? "(a file)",
      new Error(`helper thread failed: ${message}`),
    );
    this.#helper = undefined;
    this.#atHelper = [];
    this.#wakeAll();
  }
}

/**
 * Large S3 objects downloaded into a local file by byte ranges, several at a time, each on its own thread.
 *
 * A single stream is held to one connection and one thread: on AWS one connection carries far less than the
 * network can, and checking a 1 GiB body's MD5 is ~2 s of one core. Here up to {@link RANGE_STREAMS} ranges
 * are fetched at once, each by {@link fetchRangeInto}: a signed GET made by the caller, the bytes written at
 * their offset in the file and, when the object's multipart layout is known, each part hashed as it arrives,
 * so that the parts' MD5s give the object's multipart ETag without reading the file again. Ranges are retried
 * on their own.
 *
 * One range at a time runs on the calling thread, the others on helper threads (lib/helper_threads.ts; shared
 * by every download of the process), each running {@link fetchRangeInto} from a Blob (no file to load, nothing
 * to import but `node:crypto`) with the permissions of the thread that asked for it, so a step's sandbox stays
 * as it was. Each body is read into one buffer (a BYOB reader), hashed and written from it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type HelperThread, startHelperThread } from "../../helper_threads.ts";

/**
 * Ranges in flight per download, and threads fetching them for every download of the process together (the
 * calling thread and up to this many less one helper threads): one per core, 2 to 4. Each thread hashes and
 * writes what it fetches, so more threads than cores only adds memory (~20 MiB per thread); measured on 2
 * cores, 3 and 4 were slower than 2.
 */
export const RANGE_STREAMS = Math.min(4, Math.max(2, navigator.hardwareConcurrency || 2));

/** Bytes per range, rounded to whole parts when the object's parts are hashed. */
export const RANGE_BYTES = 64 * 1024 * 1024;

/** Attempts per range before the download fails. */
export const RANGE_ATTEMPTS = 3;

/** One range of an object: bytes `[start, end)`; `partSize` > 0 when its parts are to be hashed. */
export interface ByteRange {
  start: number;
  end: number;
  /** Bytes per part when `start` is a part boundary and the parts' MD5s are wanted; 0 for none. */
  partSize: number;
}

/**
 * A request signed by the caller, sent as is by a range thread. No secret key is in it, but its headers hold
 * the signature and any session token: it is never logged.
 */
export interface SignedGet {
  url: string;
  headers: Record<string, string>;
}

/** Options for {@link downloadRangesInto}. */
export interface RangeDownloadOptions {
  /** Names the object in errors (e.g. `s3://bucket/key`); never the signed URL. */
  where: string;
  /** A range whose body is silent this long fails (and is retried). */
  idleTimeoutMs: number;
  /** A range whose answer does not start within this long fails (and is retried). */
  responseTimeoutMs: number;
  /**
   * Part sizes whose parts are hashed (default: each range's `partSize`). The ranges are whole parts of the
   * first at most: a part of another that spans two ranges is left for the caller ({@link hashMissingParts}).
   */
  hashSizes?: number[];
  signal?: AbortSignal;
}

/**
 * Splits `size` bytes into ranges of about {@link RANGE_BYTES}; with `partSize` > 0, of whole parts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planRanges } from "./ranges.ts";
 *
 * const MiB = 1024 * 1024;
 * const hashed = planRanges(200 * MiB, 8 * MiB); // 64 MiB ranges (8 parts each), the last of 8 MiB
 * assert.deepEqual(hashed.map((range) => (range.end - range.start) / MiB), [64, 64, 64, 8]);
 * assert.deepEqual(hashed[1], { start: 64 * MiB, end: 128 * MiB, partSize: 8 * MiB });
 * const parts5 = planRanges(200 * MiB, 5 * MiB); // whole parts: 13 of 5 MiB per range
 * assert.deepEqual(parts5.map((range) => (range.end - range.start) / MiB), [65, 65, 65, 5]);
 * const plain = planRanges(200 * MiB, 0); // not hashed
 * assert.deepEqual(plain.map((range) => [(range.end - range.start) / MiB, range.partSize]), [
 *   [64, 0],
 *   [64, 0],
 *   [64, 0],
 *   [8, 0],
 * ]);
 * ```
 */
export function planRanges(size: number, partSize: number, rangeBytes = RANGE_BYTES): ByteRange[] {
  const step = partSize > 0 ? Math.max(1, Math.round(rangeBytes / partSize)) * partSize : rangeBytes;
  const ranges: ByteRange[] = [];
  for (let start = 0; start < size; start += step) {
    ranges.push({ start, end: Math.min(size, start + step), partSize });
  }
  return ranges;
}

/**
 * Downloads every range into `file` (which must exist), each signed by `sign` when it starts, at most
 * {@link RANGE_STREAMS} at a time; resolves, for each hashed part size, to the MD5 of every part in order
 * (`undefined` for a part that spans two ranges). The first range that
 * fails for good (after {@link RANGE_ATTEMPTS}) stops the others and rejects with a message naming
 * `options.where`; the caller removes the file.
 *
 * @example
 * ```ts ignore
 * import { type ByteRange, downloadRangesInto, planRanges } from "./ranges.ts";
 * import { S3Storage } from "./storage.ts";
 *
 * const landing = new S3Storage("s3://lake/landing");
 * const { size, etag, partSize = 0 } = (await landing.objectDigest("big.bin"))!;
 * const file = await Deno.makeTempFile();
 * const sign = (range: ByteRange) => landing.signedGet("big.bin", range, etag);
 * const md5s = await downloadRangesInto(file, planRanges(size, partSize), sign, {
 *   where: "s3://lake/landing/big.bin",
 *   idleTimeoutMs: 60_000,
 *   responseTimeoutMs: 120_000,
 * }); // with a known part size, the MD5 of every part: multipartEtag(md5s.get(partSize)) === etag
 * ```
 */
export async function downloadRangesInto(
  file: string,
  ranges: ByteRange[],
  sign: (range: ByteRange) => Promise<SignedGet>,
  options: RangeDownloadOptions,
): Promise<Map<number, (Uint8Array | undefined)[]>> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const objectSize = ranges.at(-1)?.end ?? 0;
  const hashSizes = options.hashSizes ??
    [...new Set(ranges.map((range) => range.partSize))].filter((p) => p > 0);
  const md5s = new Map(
    hashSizes.map((p) => [
      p,
      Array.from({ length: Math.max(1, Math.ceil(objectSize / p)) }, (): Uint8Array | undefined => undefined),
    ]),
  );
  let next = 0;
  const fetchOne = async (range: ByteRange, onThisThread: boolean): Promise<RangeParts[]> => {
    for (let attempt = 1;; attempt++) {
      signal.throwIfAborted();
      const job: RangeJob = {
        ...await sign(range),
        ...range,
        file,
        idleTimeoutMs: options.idleTimeoutMs,
        responseTimeoutMs: options.responseTimeoutMs,
        hashSizes,
        objectSize,
      };
      const result = onThisThread ? await runHere(job, signal) : await rangeThreads.run(job, signal);
      if (result.ok) return result.parts;
      signal.throwIfAborted();
      if (!result.retryable || attempt >= RANGE_ATTEMPTS) {
        throw new Error(`${options.where}: bytes ${range.start}-${range.end - 1}: ${result.message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (attempt - 1)));
    }
  };
  const streams = Math.min(RANGE_STREAMS, ranges.length);
  using _threads = rangeThreads.hold();
  try {
    await Promise.all(Array.from({ length: streams }, async (_, stream) => {
      while (next < ranges.length) {
        const index = next++;
        const parts = await fetchOne(ranges[index], stream === 0);
        hashSizes.forEach((p, i) =>
          parts[i].md5s.forEach((md5, k) => (md5s.get(p)![parts[i].first + k] = md5))
        );
      }
    }));
  } catch (error) {
    stop.abort(error);
    throw options.signal?.aborted ? options.signal.reason : error;
  }
  return md5s;
}

/**
 * Fills in the MD5s {@link downloadRangesInto} left out (parts of `partSize` that span two ranges) by reading
 * those parts of `file`: at most one part per range boundary.
 */
export async function hashMissingParts(
  file: string,
  partSize: number,
  md5s: (Uint8Array | undefined)[],
  size: number,
): Promise<Uint8Array[]> {
  if (!md5s.includes(undefined)) return md5s as Uint8Array[];
  using handle = await Deno.open(file, { read: true });
  const buffer = new Uint8Array(Math.min(partSize, 16 * 1024 * 1024));
  const out: Uint8Array[] = [];
  for (let index = 0; index < md5s.length; index++) {
    const known = md5s[index];
    if (known) {
      out.push(known);
      continue;
    }
    const hash = createHash("md5");
    const start = index * partSize;
    let left = Math.min(size, start + partSize) - start;
    await handle.seek(start, Deno.SeekMode.Start);
    while (left > 0) {
      const n = await handle.read(buffer.subarray(0, Math.min(buffer.length, left)));
      if (n === null) throw new Error(`${file}: ended before byte ${start + partSize}`);
      hash.update(buffer.subarray(0, n));
      left -= n;
    }
    out.push(new Uint8Array(hash.digest()));
  }
  return out;
}

/** What {@link fetchRangeInto} is asked to do. */
export interface RangeJob extends SignedGet, ByteRange {
  /** The local file the bytes are written into, at their offset. */
  file: string;
  idleTimeoutMs: number;
  responseTimeoutMs: number;
  /**
   * The part sizes whose parts are hashed (default: `partSize` when > 0); a part that begins before the
   * range or ends after it (but for the object's last) is left out.
   */
  hashSizes?: number[];
  /** The object's size (default: the range's end is a part boundary or the object's end). */
  objectSize?: number;
}

/** The MD5s of the parts of one part size that lie whole in a range: parts `first`, `first + 1`, …. */
export interface RangeParts {
  first: number;
  md5s: Uint8Array[];
}

/** How a range ended. */
type RangeResult =
  | { ok: true; parts: RangeParts[] }
  | { ok: false; message: string; retryable: boolean };

/**
 * Fetches one range and writes it at its offset in `job.file`; resolves to the MD5 of each of its parts when
 * `job.partSize` > 0. Failures carry `retryable`: true for what another attempt may cure (network, 5xx, a
 * silent or cut answer). It refers to nothing outside itself (`createHash` is passed in): a range thread
 * runs its source.
 *
 * @example
 * ```ts ignore
 * import { createHash } from "node:crypto";
 * import { fetchRangeInto } from "./ranges.ts";
 * import { S3Storage } from "./storage.ts";
 *
 * const landing = new S3Storage("s3://lake/landing");
 * const { etag } = (await landing.objectDigest("big.bin"))!;
 * const range = { start: 0, end: 8 * 2 ** 20, partSize: 8 * 2 ** 20 };
 * const file = await Deno.makeTempFile();
 * const signed = await landing.signedGet("big.bin", range, etag);
 * const md5s = await fetchRangeInto(
 *   { ...signed, ...range, file, idleTimeoutMs: 60_000, responseTimeoutMs: 120_000 },
 *   createHash,
 * ); // one MD5: the range is one part
 * ```
 */
export async function fetchRangeInto(
  job: RangeJob,
  createHash: typeof import("node:crypto").createHash,
  signal?: AbortSignal,
): Promise<RangeParts[]> {
  const BUFFER_BYTES = 256 * 1024;
  const MIN_READ_BYTES = 64 * 1024; // the buffer is written out when less than this is left for a read
  const WRITE_SYSCALL = 32 * 1024; // as WRITE_SYSCALL_SIZE in lib/storage_local.ts, for the same reason
  const failure = (message: string, retryable: boolean) => Object.assign(new Error(message), { retryable });
  const expected = job.end - job.start;
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const silence = (ms: number, message: string) =>
    setTimeout(() => controller.abort(failure(`${message} ${ms / 1000} s`, true)), ms);
  let timer = silence(job.responseTimeoutMs, "no answer within");
  let file: Deno.FsFile | undefined;
  try {
    signal?.throwIfAborted();
    let response: Response;
    try {
      response = await fetch(job.url, { headers: job.headers, signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted) throw controller.signal.reason;
      throw failure(`request failed: ${(error as Error).message}`, true);
    }
    clearTimeout(timer);
    timer = silence(job.idleTimeoutMs, "the server sent nothing for");
    if (response.status !== 206) {
      const text = await response.text().catch(() => "");
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
      const status = `HTTP ${response.status}${code ? ` ${code}` : ""}`;
      if (response.status === 412) {
        throw failure(`the object changed while it was being downloaded (${status})`, false);
      }
      if (response.status === 200) throw failure("the server ignored the Range header", false);
      throw failure(status, response.status >= 500 || response.status === 408 || response.status === 429);
    }
    const answered = response.headers.get("content-range") ?? "";
    const range = /^bytes (\d+)-(\d+)\//.exec(answered);
    if (!range || Number(range[1]) !== job.start || Number(range[2]) !== job.end - 1) {
      throw failure(`the server answered another range (${answered})`, false);
    }
    const out = file = Deno.openSync(job.file, { write: true });
    out.seekSync(job.start, Deno.SeekMode.Start);
    // The body is read straight into one buffer (a BYOB reader: no new buffer and promise per 64 KiB chunk,
    // a third of fetch's receive CPU), then hashed and written from it.
    let buffer = new ArrayBuffer(BUFFER_BYTES);
    let filled = 0;
    const flush = () => {
      const bytes = new Uint8Array(buffer, 0, filled);
      for (let at = 0; at < filled;) {
        at += out.writeSync(bytes.subarray(at, Math.min(filled, at + WRITE_SYSCALL)));
      }
      filled = 0;
    };
    // per hashed part size: bytes to skip up to its first part boundary, the part being hashed, the MD5s
    const layouts = (job.hashSizes ?? (job.partSize > 0 ? [job.partSize] : [])).map((size) => {
      const first = Math.ceil(job.start / size);
      return {
        size,
        first,
        skip: first * size - job.start,
        hash: undefined as ReturnType<typeof createHash> | undefined,
        inPart: 0,
        md5s: [] as Uint8Array[],
      };
    });
    let received = 0;
    const reader = response.body!.getReader({ mode: "byob" });
    while (true) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read(new Uint8Array(buffer, filled, BUFFER_BYTES - filled));
      } catch (error) {
        if (controller.signal.aborted) throw controller.signal.reason;
        throw failure(`the answer was cut: ${(error as Error).message}`, true);
      }
      if (!chunk.value) throw failure("the answer was cancelled", true);
      buffer = chunk.value.buffer as ArrayBuffer; // the read hands the buffer back
      if (chunk.done) break;
      clearTimeout(timer);
      timer = silence(job.idleTimeoutMs, "the server sent nothing for");
      const length = chunk.value.byteLength;
      received += length;
      if (received > expected) throw failure(`more bytes than the ${expected} asked for`, true);
      for (const layout of layouts) {
        let offset = Math.min(layout.skip, length);
        layout.skip -= offset;
        while (offset < length) {
          const hash = layout.hash ??= createHash("md5");
          const n = Math.min(length - offset, layout.size - layout.inPart);
          hash.update(chunk.value.subarray(offset, offset + n));
          offset += n;
          layout.inPart += n;
          if (layout.inPart === layout.size) {
            layout.md5s.push(new Uint8Array(hash.digest()));
            layout.hash = undefined;
            layout.inPart = 0;
          }
        }
      }
      filled += length;
      if (BUFFER_BYTES - filled < MIN_READ_BYTES) flush();
    }
    if (received !== expected) throw failure(`${received} bytes received of ${expected}`, true);
    flush();
    const objectEnd = job.objectSize === undefined || job.end === job.objectSize;
    return layouts.map((layout) => {
      if (layout.hash && layout.inPart > 0 && objectEnd) {
        layout.md5s.push(new Uint8Array(layout.hash.digest()));
      }
      return { first: layout.first, md5s: layout.md5s };
    });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    controller.abort(); // frees the connection of an answer not read to its end; nothing once it was
    file?.close();
  }
}

/** {@link fetchRangeInto} on the calling thread, its failure as a {@link RangeResult}. */
async function runHere(job: RangeJob, signal: AbortSignal): Promise<RangeResult> {
  try {
    return { ok: true, parts: await fetchRangeInto(job, createHash, signal) };
  } catch (error) {
    const retryable = (error as { retryable?: boolean }).retryable === true;
    return { ok: false, message: (error as Error).message, retryable };
  }
}

/** The range threads' program (see lib/helper_threads.ts): {@link fetchRangeInto} for every job on its port. */
const rangeThreadSource = () =>
  `const fetchRangeInto = ${fetchRangeInto.toString()};
const { createHash } = await import("node:crypto");
self.onmessage = ({ data: { port } }) => {
  // anything thrown outside a job's own promise fails that job, quietly (Deno would print its stack)
  const fail = (error) => port.postMessage({ ok: false, message: String(error?.message ?? error), retryable: true });
  self.addEventListener("error", (event) => (event.preventDefault(), fail(event.error ?? event.message)));
  self.addEventListener("unhandledrejection", (event) => (event.preventDefault(), fail(event.reason)));
  port.onmessage = async ({ data: job }) => {
    try {
      const parts = await fetchRangeInto(job, createHash);
      port.postMessage({ ok: true, parts }, parts.flatMap((layout) => layout.md5s.map((md5) => md5.buffer)));
    } catch (error) {
      port.postMessage({ ok: false, message: error.message, retryable: error.retryable === true });
    }
  };
};
`;

/** How long idle range threads wait for the next download. */
const RANGE_THREAD_GRACE_MS = 2_000;

/**
 * The range threads: at most {@link RANGE_STREAMS} - 1 helper threads, started when needed, kept while any
 * download holds them and {@link RANGE_THREAD_GRACE_MS} more, then ended.
 */
class RangeThreads {
  #url: string | undefined;
  #idle: HelperThread[] = [];
  #busy = 0;
  #holders = 0;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #waiting: ((thread: Promise<HelperThread>) => void)[] = [];

  /** Keeps idle threads until the returned handle is disposed. */
  hold(): Disposable {
    this.#holders++;
    let held = true;
    return {
      [Symbol.dispose]: () => {
        if (!held) return;
        held = false;
        this.#holders--;
        this.#endIdleIfUnused();
      },
    };
  }

  /** Runs `job` on a range thread; an abort ends that thread (its range is then abandoned) and rejects. */
  async run(job: RangeJob, signal: AbortSignal): Promise<RangeResult> {
    let thread: HelperThread;
    try {
      thread = await this.#acquire(signal);
    } catch (error) {
      this.#wakeWaiter();
      throw error;
    }
    return await new Promise<RangeResult>((resolve, reject) => {
      const ended = () => {
        signal.removeEventListener("abort", onAbort);
        thread.terminate();
        this.#busy--;
        this.#wakeWaiter();
      };
      const onAbort = () => {
        ended();
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      thread.port.onmessage = (event: MessageEvent<RangeResult>) => {
        thread.port.onmessage = null; // one answer per job: nothing late is taken for the next one's
        signal.removeEventListener("abort", onAbort);
        this.#release(thread);
        resolve(event.data);
      };
      thread.onerror = (message) => {
        ended();
        resolve({ ok: false, message: `range thread failed: ${message}`, retryable: true });
      };
      thread.port.postMessage(job);
    });
  }

  async #acquire(signal: AbortSignal): Promise<HelperThread> {
    signal.throwIfAborted();
    const idle = this.#idle.pop();
    if (idle) {
      this.#busy++;
      return idle;
    }
    if (this.#busy < RANGE_STREAMS - 1) {
      this.#busy++;
      return await this.#start();
    }
    return await new Promise<HelperThread>((resolve, reject) => {
      const onAbort = () => {
        this.#waiting = this.#waiting.filter((waiter) => waiter !== take);
        reject(signal.reason);
      };
      const take = (thread: Promise<HelperThread>) => {
        signal.removeEventListener("abort", onAbort);
        resolve(thread);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(take);
    });
  }

  #release(thread: HelperThread): void {
    const waiter = this.#waiting.shift();
    if (waiter) return waiter(Promise.resolve(thread));
    this.#busy--;
    thread.onerror = () => (this.#idle = this.#idle.filter((idle) => idle !== thread));
    this.#idle.push(thread);
    this.#endIdleIfUnused();
  }

  /** A thread ended or could not start: one waiting for a thread gets a new one. */
  #wakeWaiter(): void {
    const waiter = this.#waiting.shift();
    if (waiter) {
      this.#busy++;
      waiter(this.#start());
    } else {
      this.#endIdleIfUnused();
    }
  }

  /** Ends the idle threads {@link RANGE_THREAD_GRACE_MS} after the last download let go, unless another came. */
  #endIdleIfUnused(): void {
    clearTimeout(this.#graceTimer);
    if (this.#busy > 0 || this.#holders > 0 || this.#idle.length === 0) return;
    const timer = this.#graceTimer = setTimeout(() => {
      if (this.#busy > 0 || this.#holders > 0) return;
      for (const idle of this.#idle) idle.terminate();
      this.#idle = [];
    }, RANGE_THREAD_GRACE_MS);
    Deno.unrefTimer(timer); // the timer itself never keeps a process alive
  }

  /** Starts a thread; one that cannot start frees its place. */
  async #start(): Promise<HelperThread> {
    this.#url ??= URL.createObjectURL(new Blob([rangeThreadSource()], { type: "text/javascript" }));
    try {
      return await startHelperThread(this.#url, "lakerun-range");
    } catch (error) {
      this.#busy--;
      throw error;
    }
  }
}

const rangeThreads = new RangeThreads();

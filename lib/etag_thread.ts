/**
 * An S3 ETag (MD5, or multipart ETag) computed on a second thread, so that checking a download does not slow
 * the thread that receives and writes it.
 *
 * The bytes are copied into a few reusable buffers that go to the hashing Worker and come back once hashed:
 * memory stays at `buffers × bufferSize` however fast the bytes come, and a producer faster than MD5 waits.
 *
 * Protocol, main → Worker: `{ partSize }`, then `{ buffer, length }` per buffer (transferred), then `{ end: true }`;
 * Worker → main: `{ buffer }` per buffer once hashed (transferred back), then `{ etag }`.
 *
 * @module
 */
import { EtagHasher, multipartEtag } from "./verify.ts";

const MiB = 1024 * 1024;

/** Options of {@link EtagThread}. */
export interface EtagThreadOptions {
  /** Buffers in circulation between the threads; default 16. */
  buffers?: number;
  /** Bytes per buffer; default 1 MiB. */
  bufferSize?: number;
}

/** What both hashers offer: chunks in, the ETag out. */
export interface EtagDigester {
  /** Hashes the next chunk; a returned promise asks the caller to wait before the next one. */
  update(chunk: Uint8Array): Promise<void> | void;
  /** The ETag of everything hashed; call once, at the end. */
  digest(): Promise<string>;
  /** Releases what the hasher holds (idempotent; after digest or instead of it). */
  close(): void;
}

/**
 * The Worker's whole source: the hashing code itself, no import but `node:crypto`. A step's sandbox grants no
 * read access to lakerun's own files, and a Worker started inside it could not load them from a file: URL.
 */
const WORKER_SOURCE = [
  `import { createHash } from "node:crypto";`,
  `const multipartEtag = ${multipartEtag};`,
  `const EtagHasher = ${EtagHasher};`,
  `(${serveEtagHashing})();`,
].join("\n");

let workerSourceUrl: string | undefined;
/** A Blob URL of {@link WORKER_SOURCE}, made once (Workers share it). */
function workerUrl(): string {
  workerSourceUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  return workerSourceUrl;
}

/**
 * Hashes on a Worker: {@link EtagHasher}'s result, computed off the calling thread.
 *
 * @example
 * ```ts
 * const etag = new EtagThread(0);
 * for await (const chunk of body) await etag.update(chunk);
 * await etag.digest(); // "9e107d9d372bb6826bd81d3542a419d6"
 * ```
 */
export class EtagThread implements EtagDigester {
  readonly #worker: Worker;
  readonly #bufferSize: number;
  #unallocated: number;
  readonly #free: ArrayBuffer[] = [];
  #current: Uint8Array | undefined;
  #filled = 0;
  #bufferReturned: PromiseWithResolvers<void> | undefined;
  readonly #result = Promise.withResolvers<string>();
  #closed = false;

  /** @param partSize bytes per part; 0 for a single-part upload */
  constructor(readonly partSize: number, options: EtagThreadOptions = {}) {
    this.#bufferSize = options.bufferSize ?? MiB;
    this.#unallocated = options.buffers ?? 16;
    this.#worker = new Worker(workerUrl(), {
      type: "module",
      deno: { permissions: "none" },
    } as WorkerOptions);
    this.#worker.onmessage = (event: MessageEvent) => {
      const message = event.data as { buffer?: ArrayBuffer; etag?: string };
      if (message.buffer) {
        this.#free.push(message.buffer);
        this.#bufferReturned?.resolve();
        this.#bufferReturned = undefined;
      } else if (message.etag !== undefined) {
        this.#result.resolve(message.etag);
        this.close();
      }
    };
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#fail(new Error(`ETag hashing failed: ${event.message}`));
    };
    this.#result.promise.catch(() => {}); // observed by digest(); not an unhandled rejection meanwhile
    this.#worker.postMessage({ partSize });
  }

  /** Copies `chunk` into the buffers, sending each full one; waits when every buffer is being hashed. */
  update(chunk: Uint8Array): Promise<void> | void {
    for (let offset = 0; offset < chunk.byteLength;) {
      if (!this.#current) {
        const buffer = this.#free.pop() ?? this.#allocate();
        if (!buffer) return this.#waitForBuffer().then(() => this.update(chunk.subarray(offset)));
        this.#current = new Uint8Array(buffer);
      }
      const n = Math.min(this.#current.byteLength - this.#filled, chunk.byteLength - offset);
      this.#current.set(chunk.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#current.byteLength) this.#send();
    }
  }

  /** The ETag of everything hashed; the Worker stops once it is known. */
  digest(): Promise<string> {
    if (this.#current && this.#filled > 0) this.#send();
    if (!this.#closed) this.#worker.postMessage({ end: true });
    return this.#result.promise;
  }

  /** Stops the Worker (idempotent); a digest not yet known rejects. */
  close(): void {
    if (this.#closed) return;
    this.#fail(new Error("ETag hashing stopped"));
  }

  #allocate(): ArrayBuffer | undefined {
    if (this.#unallocated === 0) return undefined;
    this.#unallocated--;
    return new ArrayBuffer(this.#bufferSize);
  }

  #send(): void {
    const buffer = this.#current!.buffer as ArrayBuffer;
    if (!this.#closed) this.#worker.postMessage({ buffer, length: this.#filled }, [buffer]);
    this.#current = undefined;
    this.#filled = 0;
  }

  #waitForBuffer(): Promise<void> {
    if (this.#closed) return this.#result.promise.then(() => {});
    this.#bufferReturned ??= Promise.withResolvers<void>();
    return this.#bufferReturned.promise;
  }

  #fail(error: Error): void {
    this.#closed = true;
    this.#worker.terminate();
    this.#result.reject(error);
    this.#bufferReturned?.reject(error);
    this.#bufferReturned = undefined;
  }
}

/** {@link EtagHasher} behind the {@link EtagDigester} interface, for bodies too small to be worth a Worker. */
export class InlineEtag implements EtagDigester {
  readonly #hasher: EtagHasher;
  /** @param partSize bytes per part; 0 for a single-part upload */
  constructor(partSize: number) {
    this.#hasher = new EtagHasher(partSize);
  }
  /** Hashes the next chunk at once. */
  update(chunk: Uint8Array): void {
    this.#hasher.update(chunk);
  }
  /** The ETag of everything hashed. */
  digest(): Promise<string> {
    return Promise.resolve(this.#hasher.digest());
  }
  /** Nothing to release. */
  close(): void {}
}

/** Bodies from this size on are hashed on a Worker (starting one costs a few milliseconds and MiB). */
export const ETAG_THREAD_MIN_BYTES = 16 * MiB;

/**
 * A hasher for a body of `size` bytes: on a Worker when the body is large, on the calling thread otherwise.
 *
 * @example
 * ```ts
 * const etag = etagDigester(0, response.ContentLength);
 * ```
 */
export function etagDigester(partSize: number, size: number | undefined): EtagDigester {
  if (size === undefined || size < ETAG_THREAD_MIN_BYTES) return new InlineEtag(partSize);
  try {
    return new EtagThread(partSize);
  } catch {
    return new InlineEtag(partSize); // no Workers here: hash on this thread
  }
}

/**
 * The Worker side of {@link EtagThread}: hashes the buffers it receives and sends each one back, then the ETag.
 * Runs as source text in the Worker ({@link WORKER_SOURCE}): it may use only `EtagHasher` and its globals.
 */
function serveEtagHashing(): void {
  const worker = globalThis as unknown as {
    onmessage: (event: MessageEvent) => void;
    postMessage(message: unknown, transfer?: Transferable[]): void;
  };
  let hasher: EtagHasher | undefined;
  worker.onmessage = (event: MessageEvent) => {
    const message = event.data as { partSize?: number; buffer?: ArrayBuffer; length?: number; end?: boolean };
    if (message.partSize !== undefined) {
      hasher = new EtagHasher(message.partSize);
    } else if (message.buffer) {
      hasher!.update(new Uint8Array(message.buffer, 0, message.length));
      worker.postMessage({ buffer: message.buffer }, [message.buffer]);
    } else if (message.end) {
      worker.postMessage({ etag: hasher!.digest() });
    }
  };
}

/**
 * Hashing and counting bytes as they stream past.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { byobReader } from "./streams.ts";

/**
 * Counts bytes and, unless `hash` is false, hashes them with sha256; `onChunk` is told the running count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteMeter } from "./hashing.ts";
 *
 * const seen: number[] = [];
 * const meter = new ByteMeter((bytes) => seen.push(bytes));
 * meter.update(new TextEncoder().encode("te"));
 * meter.update(new TextEncoder().encode("st"));
 * assert.deepEqual([seen, meter.bytes], [[2, 4], 4]);
 * assert.equal(meter.digest(), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
 * ```
 */
export class ByteMeter {
  readonly #hash: Hash | undefined;
  readonly #onChunk: ((bytes: number) => void) | undefined;
  #bytes = 0;

  constructor(onChunk?: (bytes: number) => void, options: { hash?: boolean } = {}) {
    this.#hash = options.hash === false ? undefined : createHash("sha256");
    this.#onChunk = onChunk;
  }

  /** Counts (and hashes) `chunk`. */
  update(chunk: Uint8Array): void {
    this.#hash?.update(chunk);
    this.#bytes += chunk.byteLength;
    this.#onChunk?.(this.#bytes);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Lower-case hex sha256 of everything seen; call once the stream has ended. */
  digest(): string {
    if (!this.#hash) throw new Error("this meter only counts bytes (created with hash: false)");
    return this.#hash.digest("hex");
  }
}

/** A transformer that shows each chunk to `meter` and passes it on unchanged. */
function metering(meter: ByteMeter): Transformer<Uint8Array, Uint8Array> {
  return {
    transform(chunk, controller) {
      meter.update(chunk);
      controller.enqueue(chunk);
    },
  };
}

/**
 * A pass-through stream that counts the bytes and, unless `hash` is false, hashes them with sha256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HashingStream } from "./hashing.ts";
 *
 * const seen: number[] = [];
 * const meter = new HashingStream((bytes) => seen.push(bytes));
 * const body = ReadableStream.from([new TextEncoder().encode("te"), new TextEncoder().encode("st")]);
 * await body.pipeThrough(meter).pipeTo(new WritableStream());
 * assert.deepEqual(seen, [2, 4]);
 * assert.equal(meter.bytes, 4);
 * assert.equal(meter.digest(), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
 * ```
 */
export class HashingStream extends TransformStream<Uint8Array, Uint8Array> {
  readonly #meter: ByteMeter;

  constructor(onChunk?: (bytes: number) => void, options: { hash?: boolean } = {}) {
    const meter = new ByteMeter(onChunk, options);
    super(metering(meter));
    this.#meter = meter;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#meter.bytes;
  }

  /** Lower-case hex sha256 of everything seen; call once the stream has ended. */
  digest(): string {
    return this.#meter.digest();
  }
}

/**
 * `source`, with every chunk shown to `meter` as it is read. A byte stream (a fetch body) stays one, so that
 * its reader can still have the bytes read into its own buffers (BYOB) with nothing copied; any other stream
 * passes through a {@link HashingStream}-like transform.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteMeter, metered } from "./hashing.ts";
 *
 * const bytes = new TextEncoder().encode("test");
 * const source = new ReadableStream({
 *   type: "bytes",
 *   start(controller) {
 *     controller.enqueue(bytes.slice());
 *     controller.close();
 *   },
 * });
 * const meter = new ByteMeter();
 * const reader = metered(source, meter).getReader({ mode: "byob" }); // still a byte stream
 * const { value } = await reader.read(new Uint8Array(16));
 * assert.equal(new TextDecoder().decode(value), "test");
 * assert.equal(meter.digest(), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
 * ```
 */
export function metered(source: ReadableStream<Uint8Array>, meter: ByteMeter): ReadableStream<Uint8Array> {
  const reader = byobReader(source);
  if (!reader) return source.pipeThrough(new TransformStream(metering(meter)));
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    async pull(controller) {
      const request = controller.byobRequest!;
      const view = request.view!;
      // the read moves the request's buffer to the view it returns, which answers the request
      const { done, value } = await reader.read(
        new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
      );
      if (done) {
        controller.close();
        if (value) request.respondWithNewView(value);
        return;
      }
      meter.update(value);
      request.respondWithNewView(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * The sha256 (hex) and length of everything a stream yields.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256OfStream } from "./hashing.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.csv`, "test");
 * const { sha256, size } = await sha256OfStream((await Deno.open(`${dir}/a.csv`)).readable);
 * assert.equal(sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
 * assert.equal(size, 4);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function sha256OfStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { sha256: hash.digest("hex"), size };
}

/**
 * Hashing and counting bytes as they stream past.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

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
  #hash: Hash | undefined;
  #bytes = 0;

  constructor(onChunk?: (bytes: number) => void, options: { hash?: boolean } = {}) {
    const hash = options.hash === false ? undefined : createHash("sha256");
    let count = 0;
    super({
      transform: (chunk, controller) => {
        hash?.update(chunk);
        count += chunk.byteLength;
        this.#bytes = count;
        onChunk?.(count);
        controller.enqueue(chunk);
      },
    });
    this.#hash = hash;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Lower-case hex sha256 of everything seen; call once the stream has ended. */
  digest(): string {
    if (!this.#hash) throw new Error("this stream only counts bytes (created with hash: false)");
    return this.#hash.digest("hex");
  }
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

/**
 * Reading web streams, and joining the chunks read.
 *
 * @module
 */

/**
 * A BYOB reader of `stream` when it is a byte stream (`type: "bytes"`, as a fetch body or a file's `readable`
 * is), so that it can be read into buffers of the caller's; `undefined` (the stream left unlocked) otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byobReader } from "./streams.ts";
 *
 * const bytes = new ReadableStream({
 *   type: "bytes",
 *   start(controller) {
 *     controller.enqueue(new Uint8Array([1, 2, 3]));
 *     controller.close();
 *   },
 * });
 * const { value } = await byobReader(bytes)!.read(new Uint8Array(8));
 * assert.deepEqual([...value!], [1, 2, 3]);
 * assert.equal(byobReader(ReadableStream.from([new Uint8Array(1)])), undefined); // not a byte stream
 * ```
 */
export function byobReader(stream: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return stream.getReader({ mode: "byob" });
  } catch (error) {
    if (error instanceof TypeError) return undefined; // not a byte stream
    throw error;
  }
}

/**
 * The chunks one after the other in one array (the chunk itself when there is one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatBytes } from "./streams.ts";
 *
 * assert.deepEqual([...concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])])], [1, 2, 3]);
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Reading web streams.
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

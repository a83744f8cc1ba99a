/**
 * Decoding a content-encoded reply (gzip, deflate, br) the way requests does.
 *
 * @module
 */

/**
 * Decoders for a `Content-Encoding` the way requests decodes it (gzip, deflate, br), outermost last;
 * empty for identity or when any coding is unknown (the bytes are then handed over as received).
 * Deno's fetch does not decode when the request sets `Accept-Encoding` itself, which this module does.
 * `deflate` is zlib-wrapped deflate (RFC 9110), but some servers send raw deflate under that name: the
 * first two bytes tell which, as curl and browsers do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deflateRawSync, deflateSync } from "node:zlib";
 * import { contentDecoders } from "./content_encoding.ts";
 *
 * const text = "a,b\n1,2\n";
 * for (const body of [deflateSync(text), deflateRawSync(text)]) {
 *   const [decoder] = contentDecoders("deflate");
 *   const decoded = ReadableStream.from([new Uint8Array(body)]).pipeThrough(decoder);
 *   assert.equal(await new Response(decoded).text(), text);
 * }
 * assert.deepEqual(contentDecoders("identity"), []);
 * ```
 */
export function contentDecoders(header: string | null): TransformStream<Uint8Array, Uint8Array>[] {
  const codings = (header ?? "").split(",").map((c) => c.trim().toLowerCase()).filter((c) =>
    c && c !== "identity"
  );
  const formats: Record<string, () => TransformStream<Uint8Array, Uint8Array>> = {
    gzip: () => decompression("gzip"),
    "x-gzip": () => decompression("gzip"),
    deflate: () => deflateDecoder(),
    br: () => decompression("brotli" as CompressionFormat),
  };
  if (!codings.every((c) => c in formats)) return [];
  return codings.reverse().map((c) => formats[c]());
}

function decompression(format: CompressionFormat): TransformStream<Uint8Array, Uint8Array> {
  return new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * Whether two bytes start a zlib stream (RFC 1950): method 8 (deflate), a window of at most 32 KiB, no preset
 * dictionary, and a header checksum that is a multiple of 31. Raw deflate data starts with a block header
 * whose bits practically never pass all four.
 */
function isZlibHeader(b0: number, b1: number): boolean {
  return (b0 & 0x0f) === 8 && (b0 >> 4) <= 7 && ((b0 << 8) | b1) % 31 === 0 && (b1 & 0x20) === 0;
}

/** A `deflate` decoder that takes zlib-wrapped data or raw deflate data, as the first two bytes tell. */
function deflateDecoder(): TransformStream<Uint8Array, Uint8Array> {
  let head = new Uint8Array(0);
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let pump: Promise<void> | undefined;
  const start = (controller: TransformStreamDefaultController<Uint8Array>) => {
    const inner = decompression(isZlibHeader(head[0], head[1]) ? "deflate" : "deflate-raw");
    writer = inner.writable.getWriter();
    pump = (async () => {
      for await (const chunk of inner.readable) controller.enqueue(chunk);
    })();
    pump.catch(() => {}); // surfaced by flush or the next write
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      if (!writer) {
        const joined = new Uint8Array(head.length + chunk.length);
        joined.set(head);
        joined.set(chunk, head.length);
        head = joined;
        if (head.length < 2) return;
        start(controller);
        chunk = head;
      }
      await writer!.write(chunk);
    },
    async flush(controller) {
      if (!writer) start(controller);
      if (head.length > 0 && head.length < 2) await writer!.write(head);
      await writer!.close();
      await pump;
    },
  });
}

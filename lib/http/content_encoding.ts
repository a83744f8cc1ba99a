/**
 * Decoding a content-encoded reply (gzip, deflate, br) the way requests does.
 *
 * @module
 */

/**
 * Decoders for a `Content-Encoding` the way requests decodes it (gzip, deflate, br), outermost last;
 * empty for identity or when any coding is unknown (the bytes are then handed over as received).
 * Deno's fetch does not decode when the request sets `Accept-Encoding` itself, which this module does.
 */
export function contentDecoders(header: string | null): DecompressionStream[] {
  const codings = (header ?? "").split(",").map((c) => c.trim().toLowerCase()).filter((c) =>
    c && c !== "identity"
  );
  const formats: Record<string, string> = {
    gzip: "gzip",
    "x-gzip": "gzip",
    deflate: "deflate",
    br: "brotli",
  };
  if (!codings.every((c) => c in formats)) return [];
  return codings.reverse().map((c) => new DecompressionStream(formats[c] as CompressionFormat));
}

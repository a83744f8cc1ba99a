/**
 * `file:` URLs: the local file streamed once, with the same `consume` contract as HTTP(S).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { BodyInfo, HttpEvents } from "./callbacks.ts";
import { HttpError } from "./errors.ts";
import { redactUrl, type RequestSpec } from "./request.ts";

/** `file:` URLs: streams the local file once; open errors fail at once. */
export async function fetchFile<T>(
  url: URL,
  spec: RequestSpec,
  consume: (body: ReadableStream<Uint8Array>, info: BodyInfo) => Promise<T>,
  events: HttpEvents,
): Promise<T> {
  const shown = redactUrl(url.href);
  const path = fileURLToPath(url);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    const what = err instanceof Deno.errors.NotFound ? "file not found" : (err as Error).message;
    const status = err instanceof Deno.errors.NotFound ? 404 : undefined;
    throw new HttpError(`GET ${shown}: ${what}`, { url: shown, status, attempts: 1 });
  }
  let size: number;
  try {
    const st = await file.stat();
    if (!st.isFile) throw new HttpError(`GET ${shown}: not a regular file`, { url: shown, attempts: 1 });
    size = st.size;
  } catch (err) {
    file.close();
    throw err;
  }
  const signal = spec.signal;
  let received = 0;
  let open = true;
  const closeFile = () => {
    if (open) {
      open = false;
      file.close();
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        signal?.throwIfAborted();
        const buf = new Uint8Array(64 * 1024);
        const n = await file.read(buf);
        signal?.throwIfAborted();
        if (n === null) {
          closeFile();
          if (received !== size) {
            throw new HttpError(`GET ${shown}: file changed while reading (${received} of ${size} bytes)`, {
              url: shown,
            });
          }
          controller.close();
          return;
        }
        received += n;
        controller.enqueue(buf.subarray(0, n));
        events.onProgress?.(received, size);
      } catch (err) {
        closeFile();
        controller.error(err);
      }
    },
    cancel: closeFile,
  }, { highWaterMark: 0 });
  const headers = new Headers({ "content-length": String(size) });
  try {
    return await consume(stream, { url: url.href, status: 200, headers, contentLength: size, attempt: 1 });
  } finally {
    closeFile();
  }
}

/**
 * The helper thread of bench/file_creation.ts's two-thread variant: receives `{ port }`, then batches of
 * `[path, bytes]` on that port, writes each file with one synchronous call, and answers each batch.
 *
 * @module
 */
/// <reference lib="deno.worker" />
self.onmessage = ({ data: { port } }: MessageEvent<{ port: MessagePort }>) => {
  port.onmessage = ({ data: files }: MessageEvent<[string, Uint8Array][]>) => {
    try {
      for (const [path, bytes] of files) Deno.writeFileSync(path, bytes, { createNew: true });
      port.postMessage(null);
    } catch (error) {
      port.postMessage(String(error));
    }
  };
};

/**
 * A static file server for benchmarks: serves a folder on 127.0.0.1 with Content-Length, ETag and byte
 * ranges, and prints its port. Usage: deno run -A bench/serve_files.ts FOLDER
 *
 * @module
 */
import { join } from "node:path";

const folder = Deno.args[0];
const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) },
  async (request) => {
    const name = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (!/^[\w.-]+$/.test(name)) return new Response("not found", { status: 404 });
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(folder, name));
    } catch {
      return new Response("not found", { status: 404 });
    }
    const { size, mtime } = await file.stat();
    return new Response(file.readable, {
      headers: {
        "content-length": String(size),
        "content-type": "application/zip",
        "accept-ranges": "bytes",
        etag: `"${size}-${mtime?.getTime()}"`,
      },
    });
  },
);
Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;

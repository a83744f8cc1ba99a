/**
 * The Worker of bench/file_creation.ts: writes the zip's files one synchronous call each (`write`), or through a
 * LocalStorage write batch (`batch`), extracts
 * the zip into a LocalStorage batch as a step does, streamed (`stream`) or with random access (`file`), or
 * only parses and inflates it, streamed (`parse`); posts its own milliseconds. Helper threads it asks for are
 * started by the host (bench/file_creation.ts), as a step's are.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { extractZipFile, extractZipStream } from "../lib/zip/mod.ts";
import type { ZipEntrySink } from "../lib/zip/mod.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { type HelperThread, setHelperThreadStarter } from "../lib/helper_threads.ts";

// helper threads (a write batch's small files) are started by the host, with these permissions, as a step's are
const started = new Map<number, (helper: HelperThread) => void>();
let lastHelper = 0;
setHelperThreadStarter((url, name) =>
  new Promise((resolve) => {
    const id = ++lastHelper;
    started.set(id, resolve);
    self.postMessage({ type: "helper-start", id, url, name });
  })
);

self.onmessage = async (event: MessageEvent) => {
  if (event.data.type === "helper-started") {
    const { id, port } = event.data as { id: number; port: MessagePort };
    started.get(id)?.({ port, onerror: undefined, terminate: () => port.close() });
    started.delete(id);
    return;
  }
  const { mode, zip, target, entries } = event.data as {
    mode: "write" | "batch" | "stream" | "file" | "parse";
    zip: string;
    target: string;
    entries: number;
  };
  try {
    const start = performance.now();
    if (mode === "write") {
      // the zip's layout: 1,000 files per folder, ~1 KB each
      const bytes = new Uint8Array(1001).fill(0x31);
      for (let i = 0; i < entries; i++) {
        const folder = `${target}/d${String(Math.floor(i / 1000)).padStart(3, "0")}`;
        if (i % 1000 === 0) Deno.mkdirSync(folder, { recursive: true });
        Deno.writeFileSync(`${folder}/f${String(i).padStart(6, "0")}.csv`, bytes);
      }
    } else if (mode === "batch") {
      // the same files through a LocalStorage write batch, as extraction writes them
      const batch = await new LocalStorage(target).batch();
      const bytes = new Uint8Array(1001).fill(0x31);
      for (let i = 0; i < entries; i++) {
        const folder = `d${String(Math.floor(i / 1000)).padStart(3, "0")}`;
        await batch.writeBytes(`${folder}/f${String(i).padStart(6, "0")}.csv`, bytes);
      }
      await batch.commit();
    } else if (mode === "parse") {
      const sink: ZipEntrySink = {
        writeEntry: (_path, data) => data.cancel(),
        writeEntryBytes: () => Promise.resolve(),
      };
      await extractZipStream((await Deno.open(zip)).readable, sink, { maxBytes: 2 ** 40 });
    } else {
      const batch = await new LocalStorage(target).batch();
      const sink: ZipEntrySink = {
        writeEntry: (path, data) => batch.write(path, data).then(() => {}),
        writeEntryBytes: (path, data) => batch.writeBytes(path, data).then(() => {}),
        makeFolder: (path) => batch.makeFolder(path),
      };
      // streamed as a download is; random access as a self-extracting archive is
      if (mode === "stream") {
        await extractZipStream((await Deno.open(zip)).readable, sink, { maxBytes: 2 ** 40 });
      } else await extractZipFile(zip, sink, { maxBytes: 2 ** 40 });
      await batch.commit();
    }
    self.postMessage(performance.now() - start);
  } catch (error) {
    self.postMessage(String(error));
  }
};

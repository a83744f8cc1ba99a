/**
 * The Worker of bench/file_creation.ts: writes the zip's files one synchronous call each (`write`), or through a
 * LocalStorage write batch (`batch`), extracts
 * the zip into a LocalStorage batch as a step does, streamed (`stream`) or with random access (`file`), or
 * only parses and inflates it, streamed (`parse`); posts its own milliseconds.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { extractZipFile, extractZipStream } from "../lib/zip/mod.ts";
import type { ZipEntrySink } from "../lib/zip/mod.ts";
import { LocalStorage } from "../lib/storage/local.ts";

self.onmessage = async (event: MessageEvent) => {
  const { mode, zip, target, entries } = event.data as {
    mode: "write" | "batch" | "stream" | "file" | "parse" | "one-thread" | "two-threads";
    zip: string;
    target: string;
    entries: number;
    port?: MessagePort;
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
    } else if (mode === "one-thread" || mode === "two-threads") {
      const writes = batchedWrites(target, event.data.port);
      await extractZipStream((await Deno.open(zip)).readable, writes.sink, { maxBytes: 2 ** 40 });
      await writes.done();
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

/**
 * A sink writing small entries in batches of 64 files: each on this thread, or (given `port`, a helper thread's)
 * every other batch on the helper, at most two batches there at a time; `done` writes what is left and waits
 * for the helper.
 */
function batchedWrites(target: string, port?: MessagePort): { sink: ZipEntrySink; done(): Promise<void> } {
  const folders = new Set<string>();
  let pending: [string, Uint8Array][] = [];
  let inFlight = 0;
  let turn = 0;
  let failure: string | undefined;
  let wake: (() => void) | undefined;
  if (port) {
    port.onmessage = ({ data }) => {
      failure ??= data ?? undefined;
      inFlight--;
      wake?.();
    };
  }
  const flush = () => {
    if (failure) throw new Error(failure);
    const files = pending;
    pending = [];
    if (port && turn++ % 2 === 0 && inFlight < 2) {
      inFlight++;
      port.postMessage(files);
    } else for (const [path, bytes] of files) Deno.writeFileSync(path, bytes, { createNew: true });
  };
  const sink: ZipEntrySink = {
    writeEntry: (_path, data) => data.cancel(),
    writeEntryBytes: (path, bytes) => {
      const folder = path.slice(0, path.lastIndexOf("/"));
      if (!folders.has(folder)) {
        Deno.mkdirSync(`${target}/${folder}`, { recursive: true });
        folders.add(folder);
      }
      pending.push([`${target}/${path}`, bytes]);
      if (pending.length === 64) flush();
      return Promise.resolve();
    },
  };
  const done = async () => {
    if (pending.length) flush();
    while (inFlight > 0) await new Promise<void>((resolve) => wake = resolve);
    if (failure) throw new Error(failure);
  };
  return { sink, done };
}

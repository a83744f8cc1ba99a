/**
 * What the benchmarks share: running a shell command under GNU time for its wall seconds and peak RSS,
 * serving a folder on loopback (bench/serve_files.ts, nginx or Python's `http.server`), fresh file systems for
 * benchmarks of many small files, and the median their tables give.
 *
 * @module
 */
import { join } from "node:path";

/**
 * A shell command for before a variant: pending writes flushed and, unless `warm`, the kernel's page, dentry
 * and inode caches dropped where this process may (root), so that every variant starts from the same state.
 */
export function settleCommand(warm: boolean): string {
  return warm ? "sync" : "sync && { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true";
}

/** The median of `values`: the middle one, or the mean of the two middle ones for an even count. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Runs `command` with `shell -c` under `/usr/bin/time` in `cwd`: wall seconds and peak RSS (KiB). */
export async function timeShell(
  command: string,
  cwd: string,
  shell: "sh" | "bash" = "sh",
): Promise<{ seconds: number; maxRssKiB: number }> {
  const { seconds, maxRss } = await timeCommand([shell, "-c", command], { cwd });
  return { seconds, maxRssKiB: maxRss / 1024 };
}

/** What {@link timeCommand} measured of one process. */
export interface Measurement {
  /** Wall seconds, measured here. */
  seconds: number;
  /** Peak resident set size in bytes, from the kernel. */
  maxRss: number;
  /** User + system CPU seconds (a server on the same machine shares its cores). */
  cpu: number;
  /** System CPU seconds (part of `cpu`). */
  system: number;
  /** The command's standard output. */
  stdout: string;
}

/**
 * Runs `cmd` (a program and its arguments) under `/usr/bin/time`, with no standard input, in `cwd`, with `env`
 * only when given (`clearEnv`); fails with its output when it fails.
 */
export async function timeCommand(
  cmd: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Measurement> {
  const started = performance.now();
  const output = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "MAXRSS %M CPU %U %S", ...cmd],
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.env !== undefined,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const decoder = new TextDecoder();
  const stdout = decoder.decode(output.stdout);
  const stderr = decoder.decode(output.stderr);
  if (!output.success) throw new Error(`${cmd.join(" ")} failed:\n${stdout}\n${stderr}`);
  const found = /MAXRSS (\d+) CPU ([\d.]+) ([\d.]+)/.exec(stderr);
  if (!found) throw new Error(`no /usr/bin/time figures in:\n${stderr}`);
  const [maxRssKiB, user, system] = found.slice(1).map(Number);
  return { seconds, maxRss: maxRssKiB * 1024, cpu: user + system, system, stdout };
}

/** Serves `folder` on 127.0.0.1 with bench/serve_files.ts (Content-Length, ETag, ranges); `stop` ends it. */
export async function startFileServer(folder: string): Promise<{ port: number; stop(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./serve_files.ts", import.meta.url).pathname, folder],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
  reader.releaseLock();
  return {
    port,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** The static file servers the benchmarks serve archives with. */
export type ServerKind = "deno" | "nginx" | "python";

/** A free loopback port (there is a small window before the server binds it). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Waits until something accepts connections on `port`. */
async function listening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`no server on port ${port}`);
}

/**
 * Serves `data` on 127.0.0.1 with one kind of static file server: bench/serve_files.ts (Deno), nginx (Debian's
 * `nginx-light` or `nginx`, sendfile) or Python's `http.server`; returns its port and how to stop it.
 */
export async function startServer(
  kind: ServerKind,
  data: string,
): Promise<{ port: number; stop(): Promise<void> }> {
  if (kind === "deno") return await startFileServer(data);
  const port = freePort();
  if (kind === "python") {
    const child = new Deno.Command("python3", {
      args: ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", data],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await listening(port);
    return { port, stop: async () => (child.kill("SIGTERM"), await child.status, undefined) };
  }
  const conf = await Deno.makeTempDir({ prefix: "lakerun-bench-nginx-" });
  await Deno.writeTextFile(
    join(conf, "nginx.conf"),
    `daemon off; worker_processes 1; pid ${conf}/nginx.pid; error_log ${conf}/error.log;
events {}
http {
  access_log off; sendfile on; tcp_nopush on; default_type application/zip;
  client_body_temp_path ${conf}; proxy_temp_path ${conf}; fastcgi_temp_path ${conf};
  uwsgi_temp_path ${conf}; scgi_temp_path ${conf};
  server { listen 127.0.0.1:${port}; root ${data}; }
}
`,
  );
  const child = new Deno.Command("nginx", {
    args: ["-c", join(conf, "nginx.conf"), "-p", conf, "-e", join(conf, "error.log")],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await listening(port);
  return {
    port,
    stop: async () => {
      child.kill("SIGQUIT");
      await child.status;
      await Deno.remove(conf, { recursive: true });
    },
  };
}

/**
 * Folders for the variants of a benchmark of many small files. With `fresh`, each {@link FreshFolders.next}
 * makes a new ext4 file system (a sparse image in `work`, on a loop device; needs root and `mkfs.ext4`) and
 * returns where it is mounted, so that no variant pays for what an earlier one deleted: ext4 skips inodes
 * freed in the last minutes when it allocates new ones, and this project's VMs mount their disk with
 * `discard`. Its inode tables and journal are zeroed by `mkfs` (instant on a sparse image), not by the kernel's
 * `ext4lazyinit` thread in the background while a variant runs. Without `fresh`, every variant gets `work`
 * itself. `close` unmounts.
 */
export class FreshFolders {
  readonly #image: string;
  readonly #mountPoint: string;

  constructor(readonly work: string, readonly fresh: boolean) {
    this.#image = `${work}/fresh.img`;
    this.#mountPoint = `${work}/fresh`;
  }

  /** Where every variant's folder is: the file systems' mount point with `fresh`, else `work`. */
  get folder(): string {
    return this.fresh ? this.#mountPoint : this.work;
  }

  /** The folder for the next variant: a new, empty file system's root with `fresh`, else `work`. */
  async next(): Promise<string> {
    if (!this.fresh) return this.work;
    const mount = this.#mountPoint;
    await shell(
      `{ mountpoint -q '${mount}' && umount '${mount}'; } ; mkdir -p '${mount}' && truncate -s 8G '${this.#image}' ` +
        `&& mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 '${this.#image}' ` +
        `&& mount -o loop '${this.#image}' '${mount}'`,
    );
    return mount;
  }

  /** Unmounts the last file system made. */
  async close(): Promise<void> {
    if (this.fresh) {
      await shell(`mountpoint -q '${this.#mountPoint}' && umount '${this.#mountPoint}' || true`);
    }
  }
}

async function shell(command: string): Promise<void> {
  const output = await new Deno.Command("bash", { args: ["-c", command], stderr: "piped" }).output();
  if (!output.success) throw new Error(`failed: ${command}\n${new TextDecoder().decode(output.stderr)}`);
}

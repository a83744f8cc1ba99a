/**
 * What the benchmarks share: running a shell command under GNU time for its wall seconds and peak RSS, and
 * serving a folder on loopback with bench/serve_files.ts.
 *
 * @module
 */

/** Runs `command` with `shell -c` under `/usr/bin/time` in `cwd`: wall seconds and peak RSS (KiB). */
export async function timeShell(
  command: string,
  cwd: string,
  shell: "sh" | "bash" = "sh",
): Promise<{ seconds: number; maxRssKiB: number }> {
  const output = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %M", shell, "-c", command],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim().split("\n");
  if (!output.success) throw new Error(`failed: ${command}\n${stderr.join("\n")}`);
  const [seconds, rss] = stderr.at(-1)!.split(" ").map(Number);
  return { seconds, maxRssKiB: rss };
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

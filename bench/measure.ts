/**
 * What the benchmarks share: running a shell command under GNU time for its wall seconds and peak RSS.
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

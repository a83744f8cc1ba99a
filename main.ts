/**
 * lakerun's command line: parses the arguments and hands them to a command. Nothing else lives here.
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoConfig from "./deno.json" with { type: "json" };
import { describeError, EXIT_INVALID, exitCodeOf, UsageError } from "./orchestrator/errors.ts";

const HELP = `lakerun ${denoConfig.version} — run data-lake routines, every step in its own permission sandbox

Usage:
  lakerun [run] ROUTINE.json     validate the whole routine, then run its steps in order
  lakerun validate ROUTINE.json  check a routine without running anything
  lakerun plan ROUTINE.json      show every step, its tasks and the permissions it will get (--json)
  lakerun plan --iam ROUTINE     print the AWS IAM policy the routine needs (with --json: per step too)
  lakerun list                   executors, their tasks and params (--markdown)
  lakerun schema                 JSON Schema of routine files, for editors ("$schema")
  lakerun demo                   run the offline demo routine in ./lakerun-demo (--dir DIR)

Options:
  --executors DIR   also look for executor plugins in DIR (repeatable)
  --state-dir DIR   where steps keep journals between runs (default: .lakerun)
  --debug           show stack traces
  -h, --help        this help
  -V, --version     the version

Exit codes: 0 success, 1 a task failed, 2 invalid routine or command line (nothing ran).`;

const COMMANDS = ["run", "validate", "plan", "list", "schema", "demo"] as const;
type Command = typeof COMMANDS[number];

async function main(args: string[]): Promise<number> {
  const debug = args.includes("--debug");
  const controller = new AbortController();
  // SIGINT (Ctrl-C, GitHub's first cancel signal) and SIGTERM (cron, systemd, GitHub's second) stop the
  // running step, which removes its temporary files and stops what it started in the cloud; a second signal
  // quits at once
  let interruptedBy: "SIGINT" | "SIGTERM" | undefined;
  const exitCodeFor = (signal: "SIGINT" | "SIGTERM") => (signal === "SIGINT" ? 130 : 143);
  const onSignal = (signal: "SIGINT" | "SIGTERM") => {
    if (controller.signal.aborted) Deno.exit(exitCodeFor(signal));
    interruptedBy = signal;
    console.error(
      `interrupted (${signal}): stopping the current step (send the signal again to quit at once)`,
    );
    controller.abort(new DOMException(`interrupted by ${signal}`, "AbortError"));
  };
  const onInterrupt = () => onSignal("SIGINT");
  const onTerminate = () => onSignal("SIGTERM");
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        executors: { type: "string", multiple: true, default: [] },
        "state-dir": { type: "string" },
        dir: { type: "string" },
        json: { type: "boolean", default: false },
        iam: { type: "boolean", default: false },
        markdown: { type: "boolean", default: false },
        debug: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.version) {
      console.log(`lakerun ${denoConfig.version} (deno ${Deno.version.deno})`);
      return 0;
    }
    let [command, ...rest] = positionals;
    if (command === undefined) throw new UsageError("no routine given; try 'lakerun --help'");
    if (!(COMMANDS as readonly string[]).includes(command)) {
      if (!/\.json$/i.test(command) && !(await isFile(command))) {
        throw new UsageError(`'${command}' is neither a command (${COMMANDS.join(", ")}) nor a routine file`);
      }
      rest = [command, ...rest];
      command = "run";
    }
    const options = {
      executorDirs: values.executors,
      stateDir: values["state-dir"],
      debug: values.debug,
      signal: controller.signal,
    };
    const needsRoutine = ["run", "validate", "plan"].includes(command);
    const expected = needsRoutine ? 1 : 0;
    if (rest.length !== expected) {
      throw new UsageError(
        needsRoutine
          ? `'${command}' takes exactly one routine file${rest.length ? `, got ${rest.length}` : ""}`
          : `'${command}' takes no arguments, got ${JSON.stringify(rest.join(" "))}`,
      );
    }
    Deno.addSignalListener("SIGINT", onInterrupt);
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onTerminate);
    // loaded only now, so that --help and --version start fast
    const { demoCommand } = await import("./orchestrator/cli/demo.ts");
    const { listCommand, planCommand, runCommand, schemaCommand, validateCommand } = await import(
      "./orchestrator/cli/commands.ts"
    );
    switch (command as Command) {
      case "run":
        await runCommand(rest[0], options);
        break;
      case "validate":
        await validateCommand(rest[0], options);
        break;
      case "plan":
        await planCommand(rest[0], { ...options, json: values.json, iam: values.iam });
        break;
      case "list":
        await listCommand({ ...options, markdown: values.markdown });
        break;
      case "schema":
        await schemaCommand(options);
        break;
      case "demo":
        await demoCommand({ ...options, dir: values.dir });
        break;
    }
    return 0;
  } catch (error) {
    if (interruptedBy) {
      console.error(`lakerun: ${describeError(error, debug)}`);
      return exitCodeFor(interruptedBy);
    }
    const argsError = (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    const code = argsError ? EXIT_INVALID : exitCodeOf(error);
    const message = argsError && !debug
      ? `${(error as Error).message.split(". ")[0].replace(/^Unknown/, "unknown")}; try 'lakerun --help'`
      : describeError(error, debug);
    console.error(code === EXIT_INVALID && !message.includes("\n") ? `lakerun: ${message}` : message);
    return code;
  } finally {
    for (const [signal, listener] of [["SIGINT", onInterrupt], ["SIGTERM", onTerminate]] as const) {
      try {
        Deno.removeSignalListener(signal, listener);
      } catch {
        // never added
      }
    }
  }
}

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isFile, () => false);
}

if (import.meta.main) Deno.exit(await main(Deno.args));

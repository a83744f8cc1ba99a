/**
 * lakerun's command line: parses the arguments and hands them to a command. Nothing else lives here.
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoConfig from "./deno.json" with { type: "json" };
import {
  describeError,
  EXIT_INVALID,
  exitCodeOf,
  RoutineError,
  TaskFailedError,
  UsageError,
} from "./orchestrator/errors.ts";
import { SecretMask } from "./lib/mask.ts";
import { defuseCommands } from "./orchestrator/cli/workflow_commands.ts";
import { printableLines } from "./orchestrator/routine/json.ts";
import type { LogSession } from "./orchestrator/cli/json_log.ts";

const HELP = `lakerun ${denoConfig.version} — run data-lake routines, every step in its own permission sandbox

Usage:
  lakerun [run] ROUTINE.json     validate the whole routine, then run its steps in order
  lakerun validate ROUTINE.json  check a routine without running anything
  lakerun plan ROUTINE.json      show every step, its tasks and the permissions it will get (--json)
  lakerun plan --iam ROUTINE     print the AWS IAM policy the routine needs (with --json: per step too)
  lakerun list                   executors, their tasks and params (--markdown)
  lakerun schema                 JSON Schema of routine files, for editors ("$schema")
  lakerun demo                   run the offline demo routine in ./lakerun-demo (--dir DIR)
  lakerun runs ROUTINE.json      the routine's recorded runs: run id, date, status, started (UTC), duration,
                                 steps ok/failed/skipped (--json: the records)

Options:
  --executors DIR   also look for executor plugins in DIR (repeatable)
  --state-dir DIR   where steps keep journals between runs (default: .lakerun)
  --resume [RUN_ID] continue the last failed or interrupted run (or RUN_ID; also --resume=ID or
                    --resume --run-id ID): same run id and date, its succeeded steps skipped
  --new-run         start a new run even when the last one for this date did not succeed (a plain 'run'
                    continues it: cloud jobs and loads it completed are not done again)
  --max-parallel N  most steps running at once when steps have depends_on (default 2)
  --date YYYY-MM-DD the run's date, run.date in \${{ … }} templates (default: today in UTC; run, plan, validate)
  --from A --to B --every day|month|quarter
                    a backfill: one run per date from A to B (inclusive), in order, stopping at the
                    first failed date; month and quarter steps keep month ends (03-31, 06-30, 09-30…)
  --keep-going      a backfill runs every date even after one failed (exit 1 if any failed)
  --secrets-file F  NAME=VALUE lines for \${{ secrets.NAME }} (read before the environment); secrets are
                    masked as *** in everything lakerun prints
  --log-format F    how 'run' logs: text (default), or json (one JSON object per line on standard output)
  --quiet           'run' prints only errors and the last line
  --debug           show stack traces
  -h, --help        this help
  -V, --version     the version

Exit codes: 0 success, 1 a task failed, 2 invalid routine or command line (nothing ran),
75 the routine is already running (nothing ran), 130/143 interrupted by SIGINT/SIGTERM. A step with continue_on_error that fails does not fail the run.`;

const COMMANDS = ["run", "validate", "plan", "list", "schema", "demo", "runs"] as const;
/** The commands with a GitHub Actions mode (annotations, job summary, outputs) when `GITHUB_ACTIONS=true`. */
const GITHUB_COMMANDS: readonly string[] = ["run", "demo", "validate", "plan"];
type Command = typeof COMMANDS[number];

/** The commands each option is for (any other refuses it); `--debug`, `--help` and `--version` go with all. */
const OPTION_COMMANDS: Readonly<Record<string, readonly Command[]>> = {
  executors: ["run", "validate", "plan", "list", "schema", "demo"],
  "state-dir": ["run", "validate", "plan", "runs", "demo"],
  resume: ["run"],
  "new-run": ["run"],
  "run-id": ["run"],
  "max-parallel": ["run"],
  date: ["run", "validate", "plan"],
  "secrets-file": ["run", "validate", "plan"],
  from: ["run"],
  to: ["run"],
  every: ["run"],
  "keep-going": ["run"],
  dir: ["demo"],
  json: ["plan", "runs"],
  iam: ["plan"],
  markdown: ["list"],
  "log-format": ["run"],
  quiet: ["run"],
};

async function main(args: string[]): Promise<number> {
  const debug = args.includes("--debug");
  // the secret values templates use: every error printed here goes through it, as every command's output does
  const secrets = new SecretMask();
  const controller = new AbortController();
  // SIGINT (Ctrl-C, GitHub's first cancel signal) and SIGTERM (cron, systemd, GitHub's second) stop the
  // running step, which removes its temporary files and stops what it started in the cloud; a second signal
  // quits at once
  let interruptedBy: "SIGINT" | "SIGTERM" | undefined;
  // --log-format, --quiet, and GitHub Actions mode (GITHUB_ACTIONS=true): annotations, job summary, outputs
  let logs: LogSession | undefined;
  // the command, once the arguments name one
  let command: string | undefined;
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
    const { values, positionals, tokens } = parseArgs({
      args: resumeArgs(args),
      allowPositionals: true,
      strict: true,
      tokens: true,
      options: {
        executors: { type: "string", multiple: true, default: [] },
        "state-dir": { type: "string" },
        resume: { type: "boolean", default: false },
        "new-run": { type: "boolean", default: false },
        "run-id": { type: "string" },
        "max-parallel": { type: "string" },
        date: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        every: { type: "string" },
        "keep-going": { type: "boolean", default: false },
        "secrets-file": { type: "string" },
        dir: { type: "string" },
        json: { type: "boolean", default: false },
        iam: { type: "boolean", default: false },
        markdown: { type: "boolean", default: false },
        debug: { type: "boolean", default: false },
        "log-format": { type: "string" },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    });
    refuseRepeatedValues(tokens);
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.version) {
      console.log(`lakerun ${denoConfig.version} (deno ${Deno.version.deno})`);
      return 0;
    }
    let rest: string[];
    [command, ...rest] = positionals;
    if (command === undefined) throw new UsageError("no routine given; try 'lakerun --help'");
    if (!(COMMANDS as readonly string[]).includes(command)) {
      if (!/\.json$/i.test(command) && !(await isFile(command))) {
        throw new UsageError(`'${command}' is neither a command (${COMMANDS.join(", ")}) nor a routine file`);
      }
      rest = [command, ...rest];
      command = "run";
    }
    // the log session first: a refused option is then said as the log format says things (JSON lines)
    logs = await logSessionFor(command, values);
    checkOptions(values, command as Command);
    const options = {
      executorDirs: values.executors,
      stateDir: values["state-dir"],
      debug: values.debug,
      signal: controller.signal,
      ...runFlags(values),
      ...dateFlags(values),
      secrets,
      logs,
    };
    const needsRoutine = ["run", "validate", "plan", "runs"].includes(command);
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
    const { listCommand, planCommand, runCommand, runsCommand, schemaCommand, validateCommand } =
      await import(
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
      case "runs":
        await runsCommand(rest[0], { ...options, json: values.json });
        break;
    }
    return 0;
  } catch (error) {
    // (an AbortError's `code` is a number)
    const errorCode = error instanceof Object ? (error as { code?: unknown }).code : undefined;
    const argsError = typeof errorCode === "string" && errorCode.startsWith("ERR_PARSE_ARGS");
    const code = argsError ? EXIT_INVALID : exitCodeOf(error);
    // a command line refused before its log session was made (an unknown option, a bad --log-format) still
    // gives GitHub Actions its annotation and `status: invalid`
    if (!logs && code === EXIT_INVALID && (command === undefined || GITHUB_COMMANDS.includes(command))) {
      logs = await gitHubSession();
    }
    const shortArgsMessage = () => parseArgsMessage((error as Error).message, args);
    const refused = argsError ? new UsageError(shortArgsMessage()) : error;
    logs?.failed(refused, { interrupted: interruptedBy !== undefined, mask: secrets });
    if (interruptedBy) {
      // a step stopped by it is said as a failed step is (`step "x" (…) task 't' failed: interrupted`)
      const said = describeError(error, debug);
      console.error(
        defuseCommands(secrets.mask(error instanceof TaskFailedError ? said : `lakerun: ${said}`)),
      );
      return exitCodeFor(interruptedBy);
    }
    const message = argsError && !debug ? shortArgsMessage() : describeError(error, debug);
    // a routine's problems are `file:line:col: path: message` lines, one or many, as README shows them; any
    // other one-line refusal says who speaks
    const prefixed = code === EXIT_INVALID && !message.includes("\n") && !(refused instanceof RoutineError);
    const line = prefixed ? `lakerun: ${message}` : message;
    console.error(defuseCommands(printableLines(secrets.mask(line))));
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

/** The shape of a run id (`20261130T132750Z-1a2b3c4d`), to read `--resume RUN_ID` as the option's value. */
const RUN_ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

/** `--resume=ID` and `--resume ID` (an ID shaped like a run id) as `--resume --run-id ID`. */
function resumeArgs(args: string[]): string[] {
  return args.flatMap((arg, i) => {
    if (arg.startsWith("--resume=")) return ["--resume", "--run-id", arg.slice("--resume=".length)];
    if (args[i - 1] === "--resume" && RUN_ID.test(arg)) return ["--run-id", arg];
    return [arg];
  });
}

/**
 * Refuses an option given to a command it is not for ({@link OPTION_COMMANDS}), and an option given an empty
 * value (`--state-dir=`), which would otherwise mean the current folder or nothing.
 */
function checkOptions(values: Record<string, unknown>, command: Command): void {
  for (const [option, value] of Object.entries(values)) {
    const given = Array.isArray(value) ? value.length > 0 : value !== undefined && value !== false;
    if (!given) continue;
    if ((Array.isArray(value) ? value : [value]).includes("")) {
      // (`--resume=` is read as `--resume --run-id ""`)
      const named = option === "run-id" ? "--resume/--run-id" : `--${option}`;
      throw new UsageError(`${named}: an empty value was given`);
    }
    const commands = OPTION_COMMANDS[option];
    if (commands && !commands.includes(command)) {
      const names = commands.map((name) => `'${name}'`);
      const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
      throw new UsageError(`--${option} is an option of ${list}, not '${command}'`);
    }
  }
}

/** Options that take one value each: given twice with two values, which one was meant is not known. */
const REPEATABLE = new Set(["executors"]);

/** Refuses an option given twice with different values (`--date A … --date B`). */
function refuseRepeatedValues(tokens: ReturnType<typeof parseArgs>["tokens"]): void {
  const seen = new Map<string, string>();
  for (const token of tokens ?? []) {
    if (token.kind !== "option" || token.value === undefined || REPEATABLE.has(token.name)) continue;
    const earlier = seen.get(token.name);
    if (earlier !== undefined && earlier !== token.value) {
      // (`--resume ID` is read as `--resume --run-id ID`)
      const option = token.name === "run-id" ? "a run id (--resume ID, --run-id ID)" : `--${token.name}`;
      const values = `${JSON.stringify(earlier)} and ${JSON.stringify(token.value)}`;
      throw new UsageError(`${option} given twice, ${values}: give it once`);
    }
    seen.set(token.name, token.value);
  }
}

/** `--resume`, `--run-id`, `--new-run` and `--max-parallel`, checked. */
function runFlags(
  values: { resume?: boolean; "run-id"?: string; "new-run"?: boolean; "max-parallel"?: string },
): { resume?: { runId?: string }; newRun?: boolean; maxParallel?: number } {
  const runId = values["run-id"];
  if (runId !== undefined && !values.resume) throw new UsageError("--run-id goes with --resume");
  if (values.resume && values["new-run"]) {
    throw new UsageError("--resume continues a run, --new-run starts one: give one of them");
  }
  const given = values["max-parallel"];
  if (given !== undefined && !/^[1-9]\d{0,2}$/.test(given)) {
    throw new UsageError(`--max-parallel: ${JSON.stringify(given)} is not a whole number from 1 to 999`);
  }
  return {
    ...(values.resume ? { resume: runId === undefined ? {} : { runId } } : {}),
    ...(values["new-run"] ? { newRun: true } : {}),
    ...(given !== undefined ? { maxParallel: Number(given) } : {}),
  };
}

type DateFlag = "date" | "from" | "to" | "every" | "secrets-file";

/** `--date`, `--from`, `--to`, `--every`, `--keep-going` and `--secrets-file`. */
function dateFlags(
  values: Partial<Record<DateFlag, string> & { "keep-going": boolean }>,
): { date?: string; from?: string; to?: string; every?: string; keepGoing?: boolean; secretsFile?: string } {
  return {
    date: values.date,
    from: values.from,
    to: values.to,
    every: values.every,
    keepGoing: values["keep-going"],
    secretsFile: values["secrets-file"],
  };
}

/**
 * `--log-format` and `--quiet` (options of 'run'), and GitHub Actions mode when `GITHUB_ACTIONS=true` (for
 * 'run' and 'demo', and for the problems 'validate' and 'plan' find); `undefined` when none applies.
 */
async function logSessionFor(
  command: string,
  values: { "log-format"?: string; quiet?: boolean },
): Promise<LogSession | undefined> {
  const { LOG_FORMATS, LogSession } = await import("./orchestrator/cli/json_log.ts");
  const format = values["log-format"] ?? "text";
  if (!(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(
      `--log-format: ${JSON.stringify(format)} is not one of ${LOG_FORMATS.map((f) => `"${f}"`).join(", ")}`,
    );
  }
  const flag = values["log-format"] !== undefined || values.quiet;
  const github = Deno.env.get("GITHUB_ACTIONS") === "true" && GITHUB_COMMANDS.includes(command);
  if (!flag && !github) return undefined;
  return new LogSession({ format: format as LogSession["format"], quiet: values.quiet, github });
}

/** GitHub Actions mode alone, for a command line refused before {@link logSessionFor} ran. */
async function gitHubSession(): Promise<LogSession | undefined> {
  if (Deno.env.get("GITHUB_ACTIONS") !== "true") return undefined;
  const { LogSession } = await import("./orchestrator/cli/json_log.ts");
  return new LogSession({ github: true });
}

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isFile, () => false);
}

/**
 * One line for a command line `node:util`'s parseArgs refused (its messages take up to three lines): an option
 * given a value that starts with `-` is told how to give it, quoting the value.
 */
function parseArgsMessage(message: string, args: readonly string[]): string {
  const ambiguous = /^Option '(--?[\w-]+)' argument is ambiguous/.exec(message);
  if (ambiguous) {
    const option = ambiguous[1];
    // the occurrence followed by a word starting with "-" (the option may be given more than once)
    const at = args.findIndex((arg, i) => arg === option && args[i + 1]?.startsWith("-"));
    const value = args[at + 1] ?? "";
    // `--date --from …`: the value was left out
    if (value.startsWith("--")) return `${option} needs a value; try 'lakerun --help'`;
    return `${option}: ${JSON.stringify(value)} starts with "-" and was taken for an option; to give it as ` +
      `the value, write ${option}=${value}`;
  }
  return `${message.split(/\.\s/)[0].replace(/^Unknown/, "unknown")}; try 'lakerun --help'`;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

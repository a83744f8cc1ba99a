/**
 * A step's run journal: small JSON records kept in the step's state folder between runs, so a re-run can
 * tell what an earlier (possibly killed) run already finished.
 *
 * Each record is stored under a key in its own file, written to a temporary name and renamed into place,
 * so a record is either whole or absent whatever moment the process is killed.
 *
 * @module
 */
import { join } from "node:path";

/** The journal's folder in a step's state folder. */
const FOLDER = "journal";

/** Records of one step, by key. */
export class Journal {
  private constructor(readonly dir: string) {}

  /**
   * Opens (creating if needed) the journal in `stateDir`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Journal } from "./journal.ts";
   *
   * const stateDir = await Deno.makeTempDir(); // in a task: `context.stateDir`
   * const journal = await Journal.open(stateDir);
   * await journal.put("transform", { inputs: ["a.csv"] });
   * assert.deepEqual(await journal.get("transform"), { inputs: ["a.csv"] });
   * const reopened = await Journal.open(stateDir); // as a re-run does
   * assert.deepEqual(await reopened.get("transform"), { inputs: ["a.csv"] });
   * assert.deepEqual(await reopened.keys(), ["transform"]);
   * await journal.delete("transform");
   * assert.equal(await journal.get("transform"), undefined);
   * await assert.rejects(journal.put("../x", {}), /invalid journal key "..\/x"/);
   * await Deno.remove(stateDir, { recursive: true });
   * ```
   */
  static async open(stateDir: string): Promise<Journal> {
    const dir = join(stateDir, FOLDER);
    await Deno.mkdir(dir, { recursive: true });
    return new Journal(dir);
  }

  /** The journal in `stateDir` if one was ever opened there (nothing is created). */
  static async existing(stateDir: string): Promise<Journal | undefined> {
    const dir = join(stateDir, FOLDER);
    try {
      return (await Deno.stat(dir)).isDirectory ? new Journal(dir) : undefined;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  #file(key: string): string {
    if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(key)) {
      throw new Error(`invalid journal key ${JSON.stringify(key)}`);
    }
    return join(this.dir, `${key}.json`);
  }

  /** The record under `key`, or `undefined`. */
  async get<T>(key: string): Promise<T | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(this.#file(key))) as T;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof SyntaxError) return undefined;
      throw error;
    }
  }

  /** Stores `value` under `key`, atomically. */
  async put(key: string, value: unknown): Promise<void> {
    const file = this.#file(key);
    const temporary = `${file}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(temporary, JSON.stringify(value));
    await Deno.rename(temporary, file);
  }

  /** The keys of the records there are (in no particular order). */
  async keys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const { name, isFile } of Deno.readDir(this.dir)) {
      if (isFile && name.endsWith(".json")) keys.push(name.slice(0, -".json".length));
    }
    return keys;
  }

  /** Removes the record under `key`. */
  async delete(key: string): Promise<void> {
    await Deno.remove(this.#file(key)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

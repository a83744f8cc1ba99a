/**
 * The `execute` task: the statements of `sql` or `sql_file`, one by one, in one transaction. SQL is only
 * ever what the user wrote; a script that would end the transaction itself (`COMMIT`, `BEGIN`, …) is refused.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { fingerprintOf } from "../../lib/cloud/ledger.ts";
import { plural } from "../../lib/format.ts";
import { readSqlFile } from "../../lib/sql/sql_file.ts";
import { firstWords, transactionScript } from "../../lib/sql/statements.ts";
import { redactCredentials } from "../../lib/mask.ts";
import { oncePerRun, withSession } from "./session.ts";
import type { Params } from "./params.ts";

/** `execute`: runs the script in one transaction (once per routine run). */
export async function execute(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const { script, origin } = await readScript(context);
  let statements;
  try {
    statements = transactionScript(script);
  } catch (error) {
    throw new Error(`${origin}: ${(error as Error).message}`);
  }
  await withSession(context, async (session) => {
    const fingerprint = fingerprintOf("execute", script, params.host, params.url, params.database);
    const outcome = await oncePerRun(context, session, "execute", fingerprint, async () => {
      for (const statement of statements) {
        try {
          await session.query(statement.text);
        } catch (error) {
          if (session.cancelled) throw error;
          // a credential written in the statement (PASSWORD '…', a URL's password) goes before it is cut, and
          // from the server's message (which may quote it): neither is a registered secret the mask knows
          throw new Error(
            `${origin}: statement ${statement.index} of ${statements.length} (line ${statement.line}, ` +
              `${firstWords(statement.text, (text) => redactCredentials(context.mask(text)))}) failed: ${
                redactCredentials((error as Error).message)
              }; nothing was committed`,
          );
        }
      }
      return statements.length;
    });
    context.log(
      outcome.committed
        ? `${plural(outcome.result, "statement")} committed in one transaction`
        : `execute skipped: ${outcome.reason}`,
    );
  });
}

async function readScript(context: TaskContext<Params>): Promise<{ script: string; origin: string }> {
  const { params } = context;
  if (params.sql !== undefined) return { script: params.sql, origin: "sql" };
  if (params.sql_file !== undefined) {
    const script = await readSqlFile(context.resolve(params.sql_file), "sql_file", params.sql_file);
    return { script, origin: params.sql_file };
  }
  throw new Error("execute needs sql or sql_file");
}

/**
 * The executor contract's old import path, kept working for plugins written before `sdk/executor.ts`.
 *
 * @deprecated Import from `sdk/executor.ts` (exported as `@lakerun/lakerun/executor`).
 * @module
 */
export * from "../sdk/executor.ts";

/** A benchmark plugin whose one task does nothing: running it measures the cost of a step itself. */
import { defineExecutor } from "../../sdk/executor.ts";

export default defineExecutor({
  name: "NoopExecutor",
  description: "Does nothing (benchmarks the cost of a step).",
  params: (z) => z.strictObject({}),
  permissions: () => ({}),
  tasks: { noop: { description: "Does nothing.", run: () => Promise.resolve() } },
});

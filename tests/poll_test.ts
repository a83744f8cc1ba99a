/**
 * The adaptive poll schedule of lib/cloud/poll.ts, checked on the schedule itself (no clock): when a job
 * ending at a given time is noticed, and how many status calls a job costs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { nextPollDelay, type PollOptions } from "../lib/cloud/poll.ts";

/** When the checks of a job that ends at `endMs` happen: at 0, then each {@link nextPollDelay} later. */
function checksUntil(endMs: number, options: PollOptions & { random: () => number }): number[] {
  const checks = [0];
  while (checks.at(-1)! < endMs) checks.push(checks.at(-1)! + nextPollDelay(checks.at(-1)!, options));
  return checks;
}

Deno.test("a job ending at T is noticed by T × (1 + ratio) at the latest, or T + the cap once past it", () => {
  for (const options of [{}, { firstIntervalMs: 1_000, maxIntervalMs: 10_000, ratio: 0.5 }]) {
    const first = options.firstIntervalMs ?? 500;
    const max = options.maxIntervalMs ?? 30_000;
    const ratio = options.ratio ?? 0.25;
    for (const random of [() => 0, () => 0.5, () => 0.999]) {
      for (const endMs of [1, 400, 3_000, 8_000, 60_000, 200_000, 3_600_000]) {
        const noticed = checksUntil(endMs, { ...options, random }).at(-1)!;
        const late = noticed - endMs;
        assert.ok(late >= 0);
        assert.ok(
          late <= Math.max(first, Math.min(max, ratio * endMs)),
          `${endMs} ms: noticed ${late} ms late`,
        );
      }
    }
  }
  // the module's promise with the defaults: a 3-second query is noticed within 0.75 s of its end
  assert.ok(checksUntil(3_000, { random: () => 0 }).at(-1)! - 3_000 <= 750);
});

Deno.test("a long job costs few status calls: about ln(T / first) / ln(1 + ratio), then one per cap", () => {
  const calls = (endMs: number) => checksUntil(endMs, { random: () => 0 }).length;
  assert.ok(calls(3_000) <= 10, `a 3-second job: ${calls(3_000)} calls`);
  // ten minutes: ~22 checks while the interval grows to 30 s, then ~10 more; Airflow's 6 s polling makes 100
  const tenMinutes = calls(600_000);
  assert.ok(tenMinutes >= 25 && tenMinutes <= 45, `a 10-minute job: ${tenMinutes} calls`);
});

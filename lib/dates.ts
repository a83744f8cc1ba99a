/**
 * Calendar dates without time zones: strict `YYYY-MM-DD` parsing, day, month, quarter and year arithmetic,
 * period starts and ends, and a small, strict set of format tokens. A {@link CalendarDate} is a day on the
 * proleptic Gregorian calendar (years 1 to 9999); "today" is today in UTC. Day arithmetic is integer maths
 * on day numbers (no `Date` objects, so no daylight-saving or two-digit-year surprises).
 *
 * Month arithmetic clamps to the end of the month: 2020-01-31 plus one month is 2020-02-29, and 2020-02-29
 * plus one month is 2020-03-29 (use {@link monthEnd} to land on month ends). A series of dates
 * ({@link dateSeries}) steps from its first date, so a series that starts on a month's last day stays on
 * month ends: 2020-03-31, 2020-06-30, 2020-09-30, 2020-12-31.
 *
 * Format tokens ({@link formatDate}): `YYYY`/`yyyy` year, `YY`/`yy` two-digit year, `MMMM` month name
 * (`June`), `MMM` short month name (`Jun`), `MM` two-digit month, `M` month, `DD`/`dd` two-digit day of the
 * month, `D`/`d` day of the month, `Q` quarter (1-4). Any other letter is refused (Java's `DD` day-of-year
 * and `YYYY` week-year do not exist here); digits, punctuation and spaces are copied.
 *
 * @module
 */

/** A day of the calendar; `month` is 1-12. */
export interface CalendarDate {
  year: number;
  month: number;
  day: number;
}

/** A date that cannot be parsed, or arithmetic leaving years 1-9999. */
export class DateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DateError";
  }
}

/** Units a date series steps by. */
export type DateStep = "day" | "month" | "quarter";

/** The steps {@link dateSeries} accepts. */
export const DATE_STEPS: readonly DateStep[] = ["day", "month", "quarter"];

const MONTH_NAMES = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/**
 * Whether `year` is a leap year (divisible by 4, except centuries not divisible by 400).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLeapYear } from "./dates.ts";
 *
 * assert.deepEqual([2020, 2021, 1900, 2000].map(isLeapYear), [true, false, false, true]);
 * ```
 */
export function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/**
 * Number of days in `month` (1-12) of `year`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { daysInMonth } from "./dates.ts";
 *
 * assert.deepEqual([daysInMonth(2020, 2), daysInMonth(2021, 2), daysInMonth(2021, 4)], [29, 28, 30]);
 * ```
 */
export function daysInMonth(year: number, month: number): number {
  return month === 2 ? (isLeapYear(year) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Why `text` is not a `YYYY-MM-DD` date, or `undefined` when it is one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dateProblem } from "./dates.ts";
 *
 * assert.equal(dateProblem("2024-02-29"), undefined);
 * assert.equal(dateProblem("2023-02-29"), '"2023-02-29" is not a date: February 2023 has 28 days');
 * assert.equal(dateProblem("2024-6-30"), '"2024-6-30" is not a date: expected YYYY-MM-DD');
 * ```
 */
export function dateProblem(text: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const quoted = JSON.stringify(text);
  if (!match) return `${quoted} is not a date: expected YYYY-MM-DD`;
  const [year, month, day] = match.slice(1).map(Number);
  if (year < 1) return `${quoted} is not a date: years start at 0001`;
  if (month < 1 || month > 12) return `${quoted} is not a date: month ${match[2]} is not 01-12`;
  const days = daysInMonth(year, month);
  if (day < 1 || day > days) {
    return day === 0
      ? `${quoted} is not a date: days start at 01`
      : `${quoted} is not a date: ${MONTH_NAMES[month - 1]} ${year} has ${days} days`;
  }
  return undefined;
}

/**
 * Parses a strict `YYYY-MM-DD` date (four-digit year, two-digit month and day, nothing else).
 *
 * @throws {DateError} when `text` is not such a date, e.g. `2023-02-29` or `2024-6-30`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDate } from "./dates.ts";
 *
 * assert.deepEqual(parseDate("2024-06-30"), { year: 2024, month: 6, day: 30 });
 * assert.throws(() => parseDate("2024-06-31"), /June 2024 has 30 days/);
 * assert.throws(() => parseDate(" 2024-06-30"), /expected YYYY-MM-DD/);
 * ```
 */
export function parseDate(text: string): CalendarDate {
  const problem = dateProblem(text);
  if (problem) throw new DateError(problem);
  const [year, month, day] = text.split("-").map(Number);
  return { year, month, day };
}

/**
 * Today's date in UTC (or the date of `now` in UTC).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { today } from "./dates.ts";
 *
 * assert.deepEqual(today(new Date("2024-06-30T23:59:59-05:00")), { year: 2024, month: 7, day: 1 });
 * ```
 */
export function today(now: Date = new Date()): CalendarDate {
  return { year: now.getUTCFullYear(), month: now.getUTCMonth() + 1, day: now.getUTCDate() };
}

/** Days since 1970-01-01 (negative before), after Howard Hinnant's `days_from_civil`. */
function dayNumber({ year, month, day }: CalendarDate): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/** The date of a day number (inverse of {@link dayNumber}), years 0001–9999. */
function fromDayNumber(days: number): CalendarDate {
  return checked(civilFromDays(days));
}

/**
 * The proleptic Gregorian date `days` after 1970-01-01 (negative before), any year (0 is 1 BC, -1 is 2 BC),
 * after Howard Hinnant's `civil_from_days`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { civilFromDays } from "./dates.ts";
 *
 * assert.deepEqual(civilFromDays(0), { year: 1970, month: 1, day: 1 });
 * assert.deepEqual(civilFromDays(-719528), { year: 0, month: 1, day: 1 }); // 1 BC
 * assert.deepEqual(civilFromDays(2_932_897), { year: 10000, month: 1, day: 1 });
 * ```
 */
export function civilFromDays(days: number): CalendarDate {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

function checked(date: CalendarDate): CalendarDate {
  if (date.year < 1 || date.year > 9999) {
    throw new DateError(`date out of range (years 0001-9999): year ${date.year}`);
  }
  return date;
}

function wholeNumber(n: number, what: string): number {
  if (!Number.isSafeInteger(n)) throw new DateError(`${what} must be a whole number, got ${n}`);
  return n;
}

/**
 * `date` plus `n` days (`n` may be negative).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addDays, formatDate, parseDate } from "./dates.ts";
 *
 * assert.equal(formatDate(addDays(parseDate("2020-02-28"), 1)), "2020-02-29"); // leap year
 * assert.equal(formatDate(addDays(parseDate("2021-02-28"), 1)), "2021-03-01");
 * assert.equal(formatDate(addDays(parseDate("2021-01-01"), -1)), "2020-12-31");
 * ```
 */
export function addDays(date: CalendarDate, n: number): CalendarDate {
  return fromDayNumber(dayNumber(date) + wholeNumber(n, "days"));
}

/**
 * `date` plus `n` calendar months (`n` may be negative), the day clamped to the last day of the month
 * reached.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addMonths, formatDate, parseDate } from "./dates.ts";
 *
 * assert.equal(formatDate(addMonths(parseDate("2020-01-31"), 1)), "2020-02-29");
 * assert.equal(formatDate(addMonths(parseDate("2021-01-31"), 1)), "2021-02-28");
 * assert.equal(formatDate(addMonths(parseDate("2020-03-31"), -13)), "2019-02-28");
 * ```
 */
export function addMonths(date: CalendarDate, n: number): CalendarDate {
  const index = date.year * 12 + (date.month - 1) + wholeNumber(n, "months");
  const year = Math.floor(index / 12);
  const month = index - year * 12 + 1;
  checked({ year, month, day: 1 });
  return { year, month, day: Math.min(date.day, daysInMonth(year, month)) };
}

/**
 * `date` plus `n` quarters: `3 × n` months, clamped as {@link addMonths} does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addQuarters, formatDate, parseDate } from "./dates.ts";
 *
 * assert.equal(formatDate(addQuarters(parseDate("2019-11-30"), 1)), "2020-02-29");
 * assert.equal(formatDate(addQuarters(parseDate("2020-06-30"), -1)), "2020-03-30"); // clamped, not month end
 * ```
 */
export function addQuarters(date: CalendarDate, n: number): CalendarDate {
  return addMonths(date, 3 * wholeNumber(n, "quarters"));
}

/**
 * `date` plus `n` years; 29 February becomes 28 February in a common year.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addYears, formatDate, parseDate } from "./dates.ts";
 *
 * assert.equal(formatDate(addYears(parseDate("2020-02-29"), 1)), "2021-02-28");
 * assert.equal(formatDate(addYears(parseDate("2020-02-29"), 4)), "2024-02-29");
 * ```
 */
export function addYears(date: CalendarDate, n: number): CalendarDate {
  return addMonths(date, 12 * wholeNumber(n, "years"));
}

/** The quarter (1-4) `date` falls in. */
export function quarterOf(date: CalendarDate): number {
  return Math.floor((date.month - 1) / 3) + 1;
}

/**
 * First day of `date`'s month.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDate, monthStart, parseDate } from "./dates.ts";
 *
 * assert.equal(formatDate(monthStart(parseDate("2024-06-17"))), "2024-06-01");
 * ```
 */
export function monthStart(date: CalendarDate): CalendarDate {
  return { year: date.year, month: date.month, day: 1 };
}

/**
 * Last day of `date`'s month.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDate, monthEnd, parseDate } from "./dates.ts";
 *
 * assert.equal(formatDate(monthEnd(parseDate("2024-02-10"))), "2024-02-29");
 * assert.equal(formatDate(monthEnd(parseDate("1900-02-10"))), "1900-02-28"); // not a leap year
 * ```
 */
export function monthEnd(date: CalendarDate): CalendarDate {
  return { year: date.year, month: date.month, day: daysInMonth(date.year, date.month) };
}

/**
 * First day of `date`'s quarter (1 January, 1 April, 1 July or 1 October).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDate, parseDate, quarterStart } from "./dates.ts";
 *
 * assert.equal(formatDate(quarterStart(parseDate("2024-05-17"))), "2024-04-01");
 * ```
 */
export function quarterStart(date: CalendarDate): CalendarDate {
  return { year: date.year, month: (quarterOf(date) - 1) * 3 + 1, day: 1 };
}

/**
 * Last day of `date`'s quarter (31 March, 30 June, 30 September or 31 December).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDate, parseDate, quarterEnd } from "./dates.ts";
 *
 * assert.deepEqual(
 *   ["2024-01-01", "2024-05-17", "2024-09-30", "2024-10-01"].map((d) => formatDate(quarterEnd(parseDate(d)))),
 *   ["2024-03-31", "2024-06-30", "2024-09-30", "2024-12-31"],
 * );
 * ```
 */
export function quarterEnd(date: CalendarDate): CalendarDate {
  const month = quarterOf(date) * 3;
  return { year: date.year, month, day: daysInMonth(date.year, month) };
}

/** 1 January of `date`'s year. */
export function yearStart(date: CalendarDate): CalendarDate {
  return { year: date.year, month: 1, day: 1 };
}

/** 31 December of `date`'s year. */
export function yearEnd(date: CalendarDate): CalendarDate {
  return { year: date.year, month: 12, day: 31 };
}

/**
 * Negative, zero or positive as `a` is before, the same day as, or after `b`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareDates, parseDate } from "./dates.ts";
 *
 * assert.ok(compareDates(parseDate("2020-12-31"), parseDate("2021-01-01")) < 0);
 * ```
 */
export function compareDates(a: CalendarDate, b: CalendarDate): number {
  return dayNumber(a) - dayNumber(b);
}

const TOKENS: Record<string, (date: CalendarDate) => string> = {
  YYYY: (d) => String(d.year).padStart(4, "0"),
  yyyy: (d) => String(d.year).padStart(4, "0"),
  YY: (d) => String(d.year % 100).padStart(2, "0"),
  yy: (d) => String(d.year % 100).padStart(2, "0"),
  MMMM: (d) => MONTH_NAMES[d.month - 1],
  MMM: (d) => MONTH_NAMES[d.month - 1].slice(0, 3),
  MM: (d) => String(d.month).padStart(2, "0"),
  M: (d) => String(d.month),
  DD: (d) => String(d.day).padStart(2, "0"),
  dd: (d) => String(d.day).padStart(2, "0"),
  D: (d) => String(d.day),
  d: (d) => String(d.day),
  Q: (d) => String(quarterOf(d)),
};

/** The format tokens {@link formatDate} knows, for messages and docs. */
export const FORMAT_TOKENS: readonly string[] = Object.keys(TOKENS);

/**
 * Why `pattern` is not a valid format for {@link formatDate}, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { patternProblem } from "./dates.ts";
 *
 * assert.equal(patternProblem("yyyy/MM/dd"), undefined);
 * assert.match(patternProblem("yyyy-mm-dd")!, /unknown format token "mm"/);
 * ```
 */
export function patternProblem(pattern: string): string | undefined {
  for (const match of pattern.matchAll(/([A-Za-z])\1*/g)) {
    if (!Object.hasOwn(TOKENS, match[0])) {
      return `unknown format token ${JSON.stringify(match[0])} in ${JSON.stringify(pattern)} (tokens: ${
        FORMAT_TOKENS.join(", ")
      }; put other text outside the template)`;
    }
  }
  return undefined;
}

/**
 * `date` written with `pattern` (default `YYYY-MM-DD`); see the module doc for the tokens. A run of one
 * letter is one token; characters other than letters are copied as they are.
 *
 * @throws {DateError} for a letter run that is not a token (e.g. `mm`, `DDD`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDate, parseDate } from "./dates.ts";
 *
 * const date = parseDate("2024-06-30");
 * assert.equal(formatDate(date), "2024-06-30");
 * assert.equal(formatDate(date, "yyyy/MM/dd"), "2024/06/30");
 * assert.equal(formatDate(date, "YYYYMMDD"), "20240630");
 * assert.equal(formatDate(date, "MMMM-yyyy"), "June-2024");
 * assert.equal(formatDate(date, "MMM YY, Q"), "Jun 24, 2");
 * assert.equal(formatDate(parseDate("2024-01-05"), "D/M/YYYY"), "5/1/2024");
 * ```
 */
export function formatDate(date: CalendarDate, pattern = "YYYY-MM-DD"): string {
  const problem = patternProblem(pattern);
  if (problem) throw new DateError(problem);
  return pattern.replace(/([A-Za-z])\1*/g, (token) => TOKENS[token](date));
}

/**
 * Every date from `from` to `to` (inclusive, in order) stepping by a day, a month or a quarter. Month and
 * quarter steps count from `from` (so a day clamped in February does not stay clamped), and when `from` is
 * the last day of its month every date is the last day of its month.
 *
 * @throws {DateError} when `to` is before `from`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dateSeries, formatDate, parseDate } from "./dates.ts";
 *
 * const series = (from: string, to: string, step: "day" | "month" | "quarter") =>
 *   dateSeries(parseDate(from), parseDate(to), step).map((d) => formatDate(d));
 * assert.deepEqual(series("2020-03-31", "2021-03-31", "quarter"), [
 *   "2020-03-31", "2020-06-30", "2020-09-30", "2020-12-31", "2021-03-31",
 * ]);
 * assert.deepEqual(series("2020-01-30", "2020-04-30", "month"), [
 *   "2020-01-30", "2020-02-29", "2020-03-30", "2020-04-30",
 * ]);
 * assert.deepEqual(series("2020-02-28", "2020-03-01", "day"), ["2020-02-28", "2020-02-29", "2020-03-01"]);
 * assert.deepEqual(series("9999-10-31", "9999-12-31", "month"), ["9999-10-31", "9999-11-30", "9999-12-31"]);
 * ```
 */
export function dateSeries(from: CalendarDate, to: CalendarDate, step: DateStep): CalendarDate[] {
  if (compareDates(from, to) > 0) {
    throw new DateError(`the series ends (${formatDate(to)}) before it starts (${formatDate(from)})`);
  }
  const endOfMonth = from.day === daysInMonth(from.year, from.month);
  const dates: CalendarDate[] = [];
  for (let i = 0;; i++) {
    let date: CalendarDate;
    try {
      if (step === "day") date = addDays(from, i);
      else {
        date = addMonths(from, step === "month" ? i : 3 * i);
        if (endOfMonth) date = monthEnd(date);
      }
    } catch (error) {
      // past the year 9999, so past `to`: the series ended
      if (i > 0 && error instanceof DateError) return dates;
      throw error;
    }
    if (compareDates(date, to) > 0) return dates;
    dates.push(date);
  }
}

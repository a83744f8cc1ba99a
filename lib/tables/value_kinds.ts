/**
 * What one text value of a staged file is, as column inference reads it (`infer.ts`): a value of a column
 * type, or a reason a value that looks typed must stay a string (`00123`, a 20-digit integer, a day
 * that is not in the calendar). Values are read as UTF-8 bytes, in one pass and without building a string
 * for the common cases, so that a load can hold every value of a file to the same rules as the sample that
 * chose its column types (`valueFits` in `infer.ts`).
 *
 * @module
 */

/** The column types inference chooses from. */
export type ColumnType = "bigint" | "double" | "boolean" | "date" | "timestamp" | "string";

/** What a value is: a column type's, or why it stays a string. */
export type ValueKind =
  | ColumnType
  | "empty"
  /** `00123`: a number would drop the leading zeros. */
  | "padded"
  /** Beyond 64 bits and beyond a double. */
  | "outOfRange"
  /** An ISO-8601 timestamp (`T`, a zone), which Hive's text SerDes cannot read. */
  | "iso"
  /** Shaped like a date or timestamp, but not a real one. */
  | "badDate"
  /** A timestamp with 7 to 9 fraction digits, which PostgreSQL and Redshift round to microseconds. */
  | "fineTimestamp"
  /** JSON: an object or array. */
  | "nested"
  /** An integer that fits 64 bits but not a double: a bigint, never a double. */
  | "longInteger"
  /** A decimal a double would not give back as written. */
  | "inexact";

const COLUMN_TYPES: readonly string[] = ["bigint", "double", "boolean", "date", "timestamp", "string"];

/** Whether `kind` is a column type's own (rather than a reason to stay a string). */
export function isColumnType(kind: ValueKind): kind is ColumnType {
  return COLUMN_TYPES.includes(kind);
}

const encoder = new TextEncoder();

/**
 * What the text `value` is (see {@link valueKind}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textKind } from "./value_kinds.ts";
 *
 * assert.equal(textKind("-42"), "bigint");
 * assert.equal(textKind("00123"), "padded");
 * assert.equal(textKind("+5"), "padded"); // a number would drop the +
 * assert.equal(textKind(" 5"), "string");
 * assert.equal(textKind("9223372036854775808"), "outOfRange");
 * assert.equal(textKind("9007199254740993"), "longInteger");
 * assert.equal(textKind("1.50"), "double");
 * assert.equal(textKind("12345678901234567.25"), "inexact");
 * assert.equal(textKind("True"), "boolean");
 * assert.equal(textKind("2021-02-29"), "badDate");
 * assert.equal(textKind("2020-09-30 12:00:00.5"), "timestamp");
 * assert.equal(textKind("2020-09-30 12:00:00.123456789"), "fineTimestamp");
 * assert.equal(textKind("2020-09-30T12:00:00Z"), "iso");
 * assert.equal(textKind(""), "empty");
 * ```
 */
export function textKind(value: string): ValueKind {
  const bytes = encoder.encode(value);
  return valueKind(bytes, 0, bytes.length);
}

const ZERO = 0x30;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const COLON = 0x3a;
const SPACE = 0x20;
const LOWER_E = 0x65;
/** The longest timestamp: `yyyy-MM-dd HH:mm:ss.fffffffff`. */
const LONGEST_TIMESTAMP = 29;
/** The longest timestamp PostgreSQL and Redshift keep as written: `yyyy-MM-dd HH:mm:ss.ffffff`. */
const LONGEST_MICROSECOND_TIMESTAMP = 26;

function isDigit(byte: number): boolean {
  return byte >= ZERO && byte <= 0x39;
}

/**
 * What the value in `bytes[start, end)` (UTF-8, a CSV field with its quotes undone) is:
 *
 * - `bigint`: an integer (`-42`; no leading zeros, no `+`) within 64 bits that a double holds too;
 *   `longInteger` when only 64 bits hold it (`9007199254740993`); `outOfRange` beyond 64 bits.
 * - `double`: a decimal written as a double is written (`1.5`, `.5`, `-2e3`, `0.10000000000000001`: an
 *   exponent, or at most 17 significant digits), or one that the nearest double gives back (printed in the
 *   fewest digits that identify it, JavaScript's `String`, PostgreSQL's `float8out`, it is the written
 *   number); `inexact` for more digits than that (`12345678901234567.25`), `outOfRange` beyond a double.
 * - `padded`: a number with leading zeros (`00123`, `01.5`) or a `+` (`+14155550123`, a phone number), which a
 *   number would drop.
 * - `boolean`: `true` or `false`, in any case.
 * - `date`: `yyyy-MM-dd`; `timestamp`: `yyyy-MM-dd HH:mm:ss[.f…]` (up to 6 fraction digits);
 *   `fineTimestamp` with 7 to 9 (nanoseconds, which PostgreSQL and Redshift would round); `badDate` when
 *   shaped so but not a real day or time; `iso`: an ISO-8601 timestamp (`T`, seconds left out, a zone).
 * - `empty`, else `string`.
 */
export function valueKind(bytes: Uint8Array, start: number, end: number): ValueKind {
  const length = end - start;
  if (length === 0) return "empty";
  // `yyyy-MM-dd…` first: no number starts so
  if (length >= 10 && bytes[start + 4] === MINUS && startsWithDate(bytes, start)) {
    if (length === 10) return dayKind(bytes, start) ?? "date";
    if (length <= LONGEST_TIMESTAMP && isTimestampShape(bytes, start, end)) {
      if (dayKind(bytes, start) || !timeOfDayIsValid(bytes, start + 11)) return "badDate";
      return length <= LONGEST_MICROSECOND_TIMESTAMP ? "timestamp" : "fineTimestamp";
    }
    return ISO_LIKE.test(new TextDecoder().decode(bytes.subarray(start, end))) ? "iso" : "string";
  }
  const first = bytes[start];
  if (isDigit(first) || first === MINUS || first === PLUS || first === DOT) {
    const number = numberKind(bytes, start, end);
    if (number !== undefined) return first === PLUS ? "padded" : number;
  }
  if (length === 4 || length === 5) {
    if (isWord(bytes, start, end, "true") || isWord(bytes, start, end, "false")) return "boolean";
  }
  return "string";
}

/** The kind of `[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?`; `undefined` for other text. */
function numberKind(bytes: Uint8Array, start: number, end: number): ValueKind | undefined {
  let i = start;
  if (bytes[i] === PLUS || bytes[i] === MINUS) i++;
  const wholeStart = i;
  while (i < end && isDigit(bytes[i])) i++;
  const wholeDigits = i - wholeStart;
  let fractionDigits = 0;
  let integer = true;
  if (i < end && bytes[i] === DOT) {
    integer = false;
    const fractionStart = ++i;
    while (i < end && isDigit(bytes[i])) i++;
    fractionDigits = i - fractionStart;
  }
  if (wholeDigits === 0 && fractionDigits === 0) return undefined;
  const mantissaEnd = i;
  let exponent = false;
  if (i < end && (bytes[i] | 0x20) === LOWER_E) {
    integer = false;
    exponent = true;
    i++;
    if (i < end && (bytes[i] === PLUS || bytes[i] === MINUS)) i++;
    const exponentStart = i;
    while (i < end && isDigit(bytes[i])) i++;
    if (i === exponentStart) return undefined;
  }
  if (i !== end) return undefined;
  if (wholeDigits > 1 && bytes[wholeStart] === ZERO) return "padded";
  // up to 15 digits (and no exponent) a double gives back, and 64 bits hold: no need to look closer
  if (!exponent && wholeDigits + fractionDigits <= 15) return integer ? "bigint" : "double";
  const digits = integer ? 0 : significantDigits(bytes, wholeStart, mantissaEnd);
  // a decimal of at most 17 significant digits (see below), short enough that no double underflows: the
  // common long case (Python's repr of a random double) needs no text and no parse
  if (!integer && !exponent && wholeDigits + fractionDigits < 300 && digits <= 17) return "double";
  const text = latin1(bytes, start, end);
  if (integer) {
    const value = BigInt(text);
    if (value < INT64_MIN || value > INT64_MAX) return "outOfRange";
    return doubleKeeps(text) ? "bigint" : "longInteger";
  }
  const number = Number(text);
  if (!Number.isFinite(number)) return "outOfRange";
  // written as a double is (an exponent, or at most 17 significant digits: C's %.17g, numpy's %.18e, an
  // older PostgreSQL's float8out): the double it names is the one the writer had
  if (number === 0 && digits > 0) return "inexact"; // too small for a double (1e-400)
  if (exponent || digits <= 17) return "double";
  return doubleKeeps(text, number) ? "double" : "inexact";
}

/** The digits of the number in `bytes[start, end)` (no sign, no exponent) from its first non-zero one. */
function significantDigits(bytes: Uint8Array, start: number, end: number): number {
  let count = 0;
  for (let i = start; i < end; i++) {
    if (!isDigit(bytes[i]) || (count === 0 && bytes[i] === ZERO)) continue;
    count++;
  }
  return count;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Whether the double nearest to the number `text` gives it back: printed in the fewest digits that identify
 * it (JavaScript's `String(number)`, PostgreSQL's `float8out`), it is the same number. Always true for 15
 * significant digits or fewer in a double's normal range.
 */
function doubleKeeps(text: string, number = Number(text)): boolean {
  if (!Number.isFinite(number)) return false;
  const printed = String(number);
  // most often the text is the shortest form already (Python's repr, pandas, JavaScript write numbers so)
  return printed === text || decimalKey(text) === decimalKey(printed);
}

const NUMBER_PARTS = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** A number's value as digits and exponent, without the zeros that do not change it: `1.50` → `15e1`. */
function decimalKey(text: string): string {
  const [, sign, whole, fraction = "", exponent = "0"] = NUMBER_PARTS.exec(text)!;
  let digits = whole + fraction;
  let point = whole.length + Number(exponent);
  const leading = digits.search(/[^0]/);
  if (leading === -1) return "0";
  digits = digits.slice(leading).replace(/0+$/, "");
  point -= leading;
  return `${sign === "-" ? "-" : ""}${digits}e${point}`;
}

/** ASCII bytes as a string. */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
}

/** The bytes are `word` (lowercase ASCII), in any case. */
function isWord(bytes: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if ((bytes[start + i] | 0x20) !== word.charCodeAt(i)) return false;
  }
  return true;
}

/** `yyyy-MM-dd` at `start`. */
function startsWithDate(bytes: Uint8Array, start: number): boolean {
  return digitsAt(bytes, start, 4) && bytes[start + 4] === MINUS && digitsAt(bytes, start + 5, 2) &&
    bytes[start + 7] === MINUS && digitsAt(bytes, start + 8, 2);
}

/** `yyyy-MM-dd HH:mm:ss` and an optional `.` with 1 to 9 digits, exactly. */
function isTimestampShape(bytes: Uint8Array, start: number, end: number): boolean {
  const length = end - start;
  if (length !== 19 && length < 21) return false;
  const shaped = bytes[start + 10] === SPACE && digitsAt(bytes, start + 11, 2) &&
    bytes[start + 13] === COLON &&
    digitsAt(bytes, start + 14, 2) && bytes[start + 16] === COLON && digitsAt(bytes, start + 17, 2);
  return shaped && (length === 19 || (bytes[start + 19] === DOT && digitsAt(bytes, start + 20, length - 20)));
}

function digitsAt(bytes: Uint8Array, start: number, count: number): boolean {
  for (let i = start; i < start + count; i++) if (!isDigit(bytes[i])) return false;
  return true;
}

function numberAt(bytes: Uint8Array, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) value = value * 10 + bytes[i] - ZERO;
  return value;
}

/** `badDate` when the `yyyy-MM-dd` at `start` is not a day of the calendar; else `undefined`. */
function dayKind(bytes: Uint8Array, start: number): "badDate" | undefined {
  const year = numberAt(bytes, start, 4);
  const month = numberAt(bytes, start + 5, 2);
  const day = numberAt(bytes, start + 8, 2);
  const real = year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
  return real ? undefined : "badDate";
}

/** The `HH:mm:ss` at `start` is a time of day. */
function timeOfDayIsValid(bytes: Uint8Array, start: number): boolean {
  return numberAt(bytes, start, 2) <= 23 && numberAt(bytes, start + 3, 2) <= 59 &&
    numberAt(bytes, start + 6, 2) <= 59;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

const ISO_LIKE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/i;

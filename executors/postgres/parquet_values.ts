/**
 * Parquet values as the CSV text `COPY` reads, exactly. hyparquet turns a DECIMAL into a JS number (about 16
 * significant digits), so lakerun reads the top-level columns whose values it writes itself as the integers
 * the file stores, and writes them here:
 *
 * - **DECIMAL** (INT32, INT64, FIXED_LEN_BYTE_ARRAY, BYTE_ARRAY; any precision): the unscaled integer as a
 *   BigInt, written with its scale (`1234567890123456.78`), never through a float.
 * - **DATE**: the day count, as PostgreSQL writes dates (`2024-06-30`, `0769-02-04 BC`, `294926-01-19`), for
 *   every day an INT32 holds (a JS Date holds only ±273,790 years, and no year 0).
 * - **TIME** (MILLIS, MICROS, NANOS): `12:34:56.123456`, with `+00` when it is adjusted to UTC (a `time`
 *   column ignores the offset, a `timetz` one keeps it). PostgreSQL keeps microseconds: nanoseconds are
 *   rounded to the nearest one, a half up.
 * - **TIMESTAMP** (MILLIS, MICROS, NANOS) and legacy **INT96**: every digit, nanoseconds rounded to the
 *   microsecond as TIME's. An instant (`isAdjustedToUTC`, the TIMESTAMP_MILLIS / _MICROS converted types,
 *   INT96 as Spark writes it) ends with `+00`: a `timestamptz` column gets that instant whatever the
 *   session's TimeZone, a `timestamp` one its UTC time (PostgreSQL ignores an offset there). A local
 *   timestamp (`isAdjustedToUTC: false`) has none: a `timestamp` column gets it as it is, and a
 *   `timestamptz` one reads it in the session's TimeZone, as it reads any such text (lakerun sets none).
 *
 * The metadata lakerun reads rows with ({@link parquetReading}) is the file's with the DECIMAL and DATE
 * annotations of these columns taken off, so hyparquet hands over the stored integers (a BYTE_ARRAY decimal
 * as bytes: it is read with `utf8: false`, apart from the other columns); hyparquet leaves TIME values as
 * they are stored. Timestamps come through hyparquet's parsers ({@link PARQUET_PARSERS}) as
 * {@link ParquetTimestamp}s, since hyparquet converts every INT96 value: in nested fields too, whose JSON
 * text they write with all their digits. Nested fields are otherwise loaded as hyparquet decodes them.
 *
 * @module
 */
import type { FileMetaData, SchemaElement, SchemaTree } from "hyparquet";
import { civilFromDays } from "../../lib/dates.ts";

/** How lakerun reads the rows of one parquet file. */
export interface ParquetReading {
  /** The file's metadata with the annotations of the columns read as stored integers taken off. */
  metadata: FileMetaData;
  /** The names of the top-level fields, in order. */
  names: string[];
  /** The top-level fields to read with `utf8: false` (BYTE_ARRAY decimals, whose bytes are a number). */
  binary: string[];
  /** For each top-level field, the CSV field of one of its values; `undefined`: the generic one. */
  text: (((value: unknown) => string) | undefined)[];
  /** hyparquet's `parsers` to read with. */
  parsers: typeof PARQUET_PARSERS;
}

/** A parquet timestamp, every digit kept: nanoseconds since 1970-01-01 00:00 (UTC for an instant). */
export class ParquetTimestamp {
  constructor(readonly nanos: bigint) {}

  /** As in a nested field's JSON: ISO 8601 in UTC, as a JS Date writes it, with every digit. */
  toJSON(): string {
    const { year, month, day, nanos } = timestampParts(this.nanos);
    const two = (n: number) => String(n).padStart(2, "0");
    const iso = year >= 0 && year <= 9999
      ? String(year).padStart(4, "0")
      : `${year < 0 ? "-" : "+"}${String(Math.abs(year)).padStart(6, "0")}`;
    const clock = clockText(nanos / 1000n).slice(0, 8);
    const fraction = (nanos % 1_000_000_000n).toString().padStart(9, "0").replace(/(?:000){1,2}$/, "");
    return `${iso}-${two(month)}-${two(day)}T${clock}.${fraction}Z`;
  }
}

/** hyparquet's timestamp parsers, giving {@link ParquetTimestamp}s instead of JS Dates (milliseconds). */
export const PARQUET_PARSERS = {
  timestampFromMilliseconds: (millis: bigint): ParquetTimestamp =>
    new ParquetTimestamp(BigInt(millis) * 1_000_000n),
  timestampFromMicroseconds: (micros: bigint): ParquetTimestamp =>
    new ParquetTimestamp(BigInt(micros) * 1000n),
  timestampFromNanoseconds: (nanos: bigint): ParquetTimestamp => new ParquetTimestamp(BigInt(nanos)),
};

/**
 * How to read the rows of the parquet file with `metadata`, whose top-level fields are `fields`
 * (`parquetSchema(metadata).children`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parquetMetadata, parquetSchema } from "hyparquet";
 * import { parquetWriteBuffer } from "hyparquet-writer";
 * import { parquetReading } from "./parquet_values.ts";
 *
 * const metadata = parquetMetadata(parquetWriteBuffer({
 *   columnData: [{ name: "price", data: [123456789012345678n, null] }, { name: "note", data: ["a", null] }],
 *   schema: [
 *     { name: "root", num_children: 2 },
 *     { name: "price", type: "INT64", repetition_type: "OPTIONAL", converted_type: "DECIMAL", precision: 18, scale: 2 },
 *     { name: "note", type: "BYTE_ARRAY", repetition_type: "OPTIONAL", converted_type: "UTF8" },
 *   ],
 * }));
 * const reading = parquetReading(metadata, parquetSchema(metadata).children);
 * assert.deepEqual(reading.names, ["price", "note"]);
 * assert.equal(reading.metadata.schema[1].converted_type, undefined); // read as the stored integer
 * assert.equal(reading.text[0]?.(123456789012345678n), "1234567890123456.78");
 * assert.equal(reading.text[0]?.(null), "");
 * assert.equal(reading.text[1], undefined);
 * ```
 *
 * A timestamp column's values are {@link ParquetTimestamp}s, as {@link PARQUET_PARSERS} (`reading.parsers`)
 * make them; an instant is written with `+00`:
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { parquetMetadata, parquetSchema } from "hyparquet";
 * import { parquetWriteBuffer } from "hyparquet-writer";
 * import { parquetReading, ParquetTimestamp } from "./parquet_values.ts";
 *
 * const timestamp = (isAdjustedToUTC: boolean) => ({ type: "TIMESTAMP", isAdjustedToUTC, unit: "MICROS" } as const);
 * const metadata = parquetMetadata(parquetWriteBuffer({
 *   columnData: [{ name: "at", data: [0n] }, { name: "local", data: [0n] }],
 *   schema: [
 *     { name: "root", num_children: 2 },
 *     { name: "at", type: "INT64", repetition_type: "OPTIONAL", logical_type: timestamp(true) },
 *     { name: "local", type: "INT64", repetition_type: "OPTIONAL", logical_type: timestamp(false) },
 *   ],
 * }));
 * const [at, local] = parquetReading(metadata, parquetSchema(metadata).children).text;
 * const value = new ParquetTimestamp(1719746400123456789n);
 * assert.equal(at?.(value), "2024-06-30 11:20:00.123457+00");
 * assert.equal(local?.(value), "2024-06-30 11:20:00.123457");
 * assert.equal(JSON.stringify(value), '"2024-06-30T11:20:00.123456789Z"');
 * ```
 */
export function parquetReading(metadata: FileMetaData, fields: readonly SchemaTree[]): ParquetReading {
  const raw = new Set<SchemaElement>();
  const binary: string[] = [];
  const text = fields.map((field) => {
    const element = field.element;
    if (field.children.length > 0) return undefined;
    const decimal = decimalOf(element);
    if (decimal !== undefined) {
      raw.add(element);
      if (element.type === "BYTE_ARRAY") binary.push(element.name);
      return orNull((value) => decimalText(unscaledOf(value), decimal.scale));
    }
    if (element.logical_type?.type === "DATE" || element.converted_type === "DATE") {
      raw.add(element);
      return orNull(dateText);
    }
    const timestamp = timestampOf(element);
    if (timestamp !== undefined) {
      return orNull((value) => {
        if (!(value instanceof ParquetTimestamp)) throw new Error(`${element.name}: not a ParquetTimestamp`);
        return timestampText(value.nanos, timestamp.adjusted);
      });
    }
    const time = timeOf(element);
    if (time !== undefined) {
      return orNull((value) => `${clockText(micros(BigInt(value), time.unit))}${time.adjusted ? "+00" : ""}`);
    }
    // bytes with no annotation: text as some writers (Impala, older Spark) store strings, or binary data
    const bytes = element.type === "BYTE_ARRAY" || element.type === "FIXED_LEN_BYTE_ARRAY";
    if (bytes && element.logical_type === undefined && element.converted_type === undefined) {
      binary.push(element.name);
      return orNull(bytesText);
    }
    return undefined;
  });
  return {
    metadata: {
      ...metadata,
      schema: metadata.schema.map((element) =>
        raw.has(element) ? { ...element, converted_type: undefined, logical_type: undefined } : element
      ),
    },
    names: fields.map((field) => field.element.name),
    binary,
    text,
    parsers: PARQUET_PARSERS,
  };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * An unannotated byte array's CSV field: its text when the bytes are UTF-8 (without NUL, which no PostgreSQL
 * text holds), else `\x` and its bytes in hex, as a `bytea` column reads them — never text with U+FFFD in
 * place of the bytes.
 */
function bytesText(value: Uint8Array): string {
  try {
    const text = strictUtf8.decode(value);
    if (!text.includes("\0")) return `"${text.replaceAll('"', '""')}"`;
  } catch {
    // not UTF-8: binary
  }
  return byteaText(value);
}

/** Bytes as the CSV field a `bytea` column reads as exactly those bytes: `\x` and hex. */
export function byteaText(value: Uint8Array): string {
  return `"\\x${Array.from(value, (byte) => byte.toString(16).padStart(2, "0")).join("")}"`;
}

/** A column's DECIMAL precision and scale (from the converted or the logical type), or `undefined`. */
export function decimalOf(element: SchemaElement): { precision?: number; scale: number } | undefined {
  const logical = element.logical_type?.type === "DECIMAL" ? element.logical_type : undefined;
  if (element.converted_type !== "DECIMAL" && logical === undefined) return undefined;
  return { precision: element.precision ?? logical?.precision, scale: element.scale ?? logical?.scale ?? 0 };
}

/** `format` for a value, and the empty field (NULL) for `null` / `undefined`. */
export function orNull(format: (value: any) => string): (value: unknown) => string {
  return (value) => value === null || value === undefined ? "" : format(value);
}

/**
 * `unscaled` × 10<sup>−scale</sup> in plain decimal notation, every digit kept.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decimalText } from "./parquet_values.ts";
 *
 * assert.equal(decimalText(123456789012345678n, 2), "1234567890123456.78");
 * assert.equal(decimalText(-5n, 4), "-0.0005");
 * assert.equal(decimalText(0n, 3), "0.000");
 * assert.equal(decimalText(42n, 0), "42");
 * assert.equal(decimalText(-42n, -2), "-4200");
 * ```
 */
export function decimalText(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString();
  let text: string;
  if (scale <= 0) text = unscaled === 0n ? "0" : digits + "0".repeat(-scale);
  else {
    const padded = digits.padStart(scale + 1, "0");
    text = `${padded.slice(0, -scale)}.${padded.slice(-scale)}`;
  }
  return negative ? `-${text}` : text;
}

/**
 * The integer a DECIMAL value stores: an INT32 (a number), an INT64 (a bigint), or the big-endian two's
 * complement bytes of a FIXED_LEN_BYTE_ARRAY or BYTE_ARRAY.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unscaledOf } from "./parquet_values.ts";
 *
 * assert.equal(unscaledOf(-5), -5n);
 * assert.equal(unscaledOf(new Uint8Array([0x01, 0x00])), 256n);
 * assert.equal(unscaledOf(new Uint8Array([0xff, 0xff])), -1n);
 * assert.equal(unscaledOf(new Uint8Array([])), 0n);
 * ```
 */
export function unscaledOf(value: number | bigint | Uint8Array): bigint {
  if (typeof value === "number") return BigInt(value);
  if (typeof value === "bigint") return value;
  let unsigned = 0n;
  for (const byte of value) unsigned = (unsigned << 8n) | BigInt(byte);
  return value.length > 0 && value[0] >= 0x80 ? unsigned - (1n << BigInt(value.length * 8)) : unsigned;
}

/**
 * Whether a timestamp column's values are instants (UTC); `undefined` for another column. The converted
 * types TIMESTAMP_MILLIS / _MICROS stand for instants (parquet-format's LogicalTypes.md), and so does an
 * INT96 as Spark and Hive write it (Spark reads it back as an instant; Impala's local INT96 cannot be told).
 */
export function timestampOf(element: SchemaElement): { adjusted: boolean } | undefined {
  if (element.logical_type?.type === "TIMESTAMP") return { adjusted: element.logical_type.isAdjustedToUTC };
  const converted = element.converted_type;
  if (converted === "TIMESTAMP_MILLIS" || converted === "TIMESTAMP_MICROS") return { adjusted: true };
  if (element.type === "INT96" && converted === undefined) return { adjusted: true };
  return undefined;
}

/**
 * A timestamp from its nanoseconds since 1970-01-01 00:00, rounded to the microsecond (a half up), as
 * PostgreSQL reads it: with `+00` for an instant (`adjusted`), `BC` last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timestampText } from "./parquet_values.ts";
 *
 * assert.equal(timestampText(1719746400123456789n, true), "2024-06-30 11:20:00.123457+00");
 * assert.equal(timestampText(1719746400000000000n, false), "2024-06-30 11:20:00");
 * assert.equal(timestampText(-1000n, false), "1969-12-31 23:59:59.999999");
 * assert.equal(timestampText(-62135596800000000000n - 1000n, true), "0001-12-31 23:59:59.999999+00 BC");
 * ```
 */
export function timestampText(nanos: bigint, adjusted: boolean): string {
  const rounded = micros(nanos, "NANOS");
  const days = floorDiv(rounded, 86_400_000_000n);
  const [date, era] = datePart(Number(days));
  return `${date} ${clockText(rounded - days * 86_400_000_000n)}${adjusted ? "+00" : ""}${era}`;
}

/** The calendar date of `nanos` since 1970-01-01 00:00, and the nanoseconds into that day. */
function timestampParts(nanos: bigint): { year: number; month: number; day: number; nanos: bigint } {
  const days = floorDiv(nanos, 86_400_000_000_000n);
  return { ...civilFromDays(Number(days)), nanos: nanos - days * 86_400_000_000_000n };
}

/** A TIME column's unit, and whether its values are UTC times of day; `undefined` for another column. */
export function timeOf(element: SchemaElement): { unit: TimeUnit; adjusted: boolean } | undefined {
  const logical = element.logical_type;
  if (logical?.type === "TIME") return { unit: logical.unit, adjusted: logical.isAdjustedToUTC };
  // the converted types stand for times adjusted to UTC (parquet-format's LogicalTypes.md)
  if (element.converted_type === "TIME_MILLIS") return { unit: "MILLIS", adjusted: true };
  if (element.converted_type === "TIME_MICROS") return { unit: "MICROS", adjusted: true };
  return undefined;
}

/** The units parquet counts times in. */
export type TimeUnit = "MILLIS" | "MICROS" | "NANOS";

/** `count` `unit`s in microseconds; nanoseconds rounded to the nearest microsecond, a half up. */
export function micros(count: bigint, unit: TimeUnit): bigint {
  if (unit === "MILLIS") return count * 1000n;
  if (unit === "MICROS") return count;
  return floorDiv(count + 500n, 1000n);
}

/** `a` / `b` rounded down (BigInt division rounds towards zero); `b` > 0. */
function floorDiv(a: bigint, b: bigint): bigint {
  const quotient = a / b;
  return a % b < 0n ? quotient - 1n : quotient;
}

/**
 * A time of day from its microseconds: `HH:MM:SS`, and the fraction without its trailing zeros.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clockText } from "./parquet_values.ts";
 *
 * assert.equal(clockText(45296123456n), "12:34:56.123456");
 * assert.equal(clockText(45296120000n), "12:34:56.12");
 * assert.equal(clockText(0n), "00:00:00");
 * assert.equal(clockText(86400000000n), "24:00:00");
 * ```
 */
export function clockText(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const two = (n: bigint) => n.toString().padStart(2, "0");
  const seconds = abs / 1_000_000n;
  const fraction = (abs % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "");
  const clock = `${two(seconds / 3600n)}:${two((seconds / 60n) % 60n)}:${two(seconds % 60n)}`;
  return `${negative ? "-" : ""}${clock}${fraction ? `.${fraction}` : ""}`;
}

/**
 * The date `days` after 1970-01-01 (before it when negative), as PostgreSQL writes it: a year before 1 AD
 * with `BC` (year 0 is 1 BC), a year after 9999 with all its digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dateText } from "./parquet_values.ts";
 *
 * assert.equal(dateText(19904), "2024-06-30");
 * assert.equal(dateText(0), "1970-01-01");
 * assert.equal(dateText(-719162), "0001-01-01");
 * assert.equal(dateText(-719163), "0001-12-31 BC");
 * assert.equal(dateText(-1000000), "0769-02-04 BC");
 * assert.equal(dateText(107000000), "294926-01-19");
 * ```
 */
export function dateText(days: number): string {
  const [date, era] = datePart(days);
  return `${date}${era}`;
}

/** {@link dateText} in two: the date, and ` BC` or nothing (PostgreSQL reads the era last). */
function datePart(days: number): [string, string] {
  const { year, month, day } = civilFromDays(days);
  const two = (n: number) => String(n).padStart(2, "0");
  const date = `${String(year > 0 ? year : 1 - year).padStart(4, "0")}-${two(month)}-${two(day)}`;
  return [date, year > 0 ? "" : " BC"];
}

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
 *
 * The metadata lakerun reads rows with ({@link parquetReading}) is the file's with the DECIMAL and DATE
 * annotations of these columns taken off, so hyparquet hands over the stored integers (a BYTE_ARRAY decimal
 * as bytes: it is read with `utf8: false`, apart from the other columns); hyparquet leaves TIME values as
 * they are stored. Nested fields are loaded as their JSON text, as hyparquet decodes them.
 *
 * @module
 */
import type { FileMetaData, SchemaElement, SchemaTree } from "hyparquet";

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
}

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
    const time = timeOf(element);
    if (time !== undefined) {
      return orNull((value) => `${clockText(micros(BigInt(value), time.unit))}${time.adjusted ? "+00" : ""}`);
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
  };
}

/** A column's DECIMAL precision and scale (from the converted or the logical type), or `undefined`. */
export function decimalOf(element: SchemaElement): { precision?: number; scale: number } | undefined {
  const logical = element.logical_type?.type === "DECIMAL" ? element.logical_type : undefined;
  if (element.converted_type !== "DECIMAL" && logical === undefined) return undefined;
  return { precision: element.precision ?? logical?.precision, scale: element.scale ?? logical?.scale ?? 0 };
}

/** `format` for a value, and the empty field (NULL) for `null` / `undefined`. */
function orNull(format: (value: any) => string): (value: unknown) => string {
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
  const { year, month, day } = civilDate(days);
  const two = (n: number) => String(n).padStart(2, "0");
  const date = `${String(year > 0 ? year : 1 - year).padStart(4, "0")}-${two(month)}-${two(day)}`;
  return year > 0 ? date : `${date} BC`;
}

/** The proleptic Gregorian year (0 is 1 BC), month and day of `days` after 1970-01-01 (H. Hinnant's). */
function civilDate(days: number): { year: number; month: number; day: number } {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const shifted = Math.floor((5 * dayOfYear + 2) / 153); // months from March
  const day = dayOfYear - Math.floor((153 * shifted + 2) / 5) + 1;
  const month = shifted < 10 ? shifted + 3 : shifted - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

/**
 * Parquet values as the CSV text `COPY` reads, exactly. hyparquet turns a DECIMAL into a JS number (about 16
 * significant digits), so lakerun reads the top-level columns whose values it writes itself as the integers
 * the file stores, and writes them here:
 *
 * - **DECIMAL** (INT32, INT64, FIXED_LEN_BYTE_ARRAY, BYTE_ARRAY; any precision): the unscaled integer as a
 *   BigInt, written with its scale (`1234567890123456.78`), never through a float.
 *
 * The metadata lakerun reads rows with ({@link parquetReading}) is the file's with these columns' DECIMAL
 * annotation taken off, so hyparquet hands over the stored integers (a BYTE_ARRAY one as bytes: it is read
 * with `utf8: false`, apart from the other columns). Nested fields are loaded as their JSON text, as
 * hyparquet decodes them.
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
    if (decimal === undefined) return undefined;
    raw.add(element);
    if (element.type === "BYTE_ARRAY") binary.push(element.name);
    return orNull((value) => decimalText(unscaledOf(value), decimal.scale));
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

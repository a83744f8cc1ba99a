/**
 * A small RFC 4180 reader for a SAMPLE of a delimited text file: the first bytes of an object, read with a
 * ranged GET. It understands quoted fields, doubled quotes, CRLF and LF line ends, a UTF-8 BOM and line
 * breaks inside quotes. Because a sample usually stops in the middle of a record, an unfinished last record
 * is dropped rather than guessed at.
 *
 * Lenient where files in the wild are: a quote inside an unquoted field is an ordinary character, text
 * after a closing quote is kept (`"ab"c` reads `abc`), a lone CR ends a line as Hadoop's line reader does,
 * and blank lines are skipped. With {@link SampleOptions.strictQuotes}, the first two are refused
 * ({@link MisquotedField}): where a line is read with PostgreSQL's COPY, whose CSV reader opens or closes a
 * quoted stretch at every quote, such a field would not end its line where this reader ends it.
 *
 * @module
 */

/** One record of a sample, with what the quoting of its fields tells about the file. */
export interface SampleRecord {
  /** The fields, quotes removed and doubled quotes undone. */
  fields: string[];
  /** At least one field was written in quotes. */
  quoted: boolean;
  /** A quoted field holds the delimiter, a quote or a line break: unquoted, it would read differently. */
  quotesNeeded: boolean;
  /** The line the record starts on, from 1. */
  line: number;
  /** How many lines the record spans: more than 1 when a quoted field holds a line break. */
  lines: number;
}

/** What {@link parseDelimitedSample} read. */
export interface DelimitedSample {
  /** The fields of each complete record (the same arrays as `records[i].fields`). */
  rows: string[][];
  /** Each complete record with its quoting details. */
  records: SampleRecord[];
  /** Some field of some record was quoted. */
  quoted: boolean;
  /** Some quoted field holds the delimiter, a quote or a line break. */
  quotesNeeded: boolean;
  /** An unfinished last record was dropped (the sample ends inside it). */
  truncated: boolean;
}

/** How to read a sample. */
export interface SampleOptions {
  /** The field separator: one character, not a quote or a line break. */
  delimiter: string;
  /** Stop after this many records (blank lines are not records). Default: no limit. */
  maxRows?: number;
  /**
   * The text is the whole file, not a prefix: a last line without a line break is a record, and a quote that
   * never closes is an error. Default `false`.
   */
  wholeFile?: boolean;
  /**
   * Refuse ({@link MisquotedField}) a field whose quotes are not RFC 4180's whole-field quoting: a quote in
   * a field that does not start with one (`b"c`), or text after the closing quote (`"b"c`). Default `false`.
   */
  strictQuotes?: boolean;
}

/**
 * A field whose quotes are not RFC 4180's (see {@link SampleOptions.strictQuotes}): its line (where the
 * field starts, from 1), its position in its record (from 0) and its text as written, quotes and all.
 */
export class MisquotedField extends Error {
  constructor(readonly line: number, readonly field: number, readonly text: string, readonly reason: string) {
    super(`line ${line}, field ${field + 1}: ${JSON.stringify(text)}: ${reason}`);
    this.name = "MisquotedField";
  }
}

/** Why a field is a {@link MisquotedField}: a quote inside it. */
export const QUOTE_INSIDE_FIELD = "a quote inside a field that does not start with one";
/** Why a field is a {@link MisquotedField}: text after its closing quote. */
export const TEXT_AFTER_QUOTE = "text after the quote that closes the field";

const QUOTE = '"';
const BOM = "\uFEFF";

/**
 * Parses the start of a delimited text file into records of fields.
 *
 * @example Quotes, doubled quotes and a line break inside quotes
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDelimitedSample } from "./csv.ts";
 *
 * const sample = parseDelimitedSample('id,note\r\n1,"say ""hi"", then\nleave"\r\n2,pl', { delimiter: "," });
 * assert.deepEqual(sample.rows, [["id", "note"], ["1", 'say "hi", then\nleave']]);
 * assert.equal(sample.truncated, true); // "2,pl" may continue beyond the sample
 * assert.equal(sample.quotesNeeded, true);
 * assert.equal(sample.records[1].lines, 2);
 * ```
 * @example Strict quotes: a field that COPY would read otherwise is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { MisquotedField, parseDelimitedSample } from "./csv.ts";
 *
 * assert.deepEqual(parseDelimitedSample('a,b"c,d\n', { delimiter: "," }).rows, [["a", 'b"c', "d"]]);
 * assert.throws(() => parseDelimitedSample('a,b"c,d\n', { delimiter: ",", strictQuotes: true }), {
 *   name: "MisquotedField",
 *   message: 'line 1, field 2: "b\\"c": a quote inside a field that does not start with one',
 * });
 * assert.throws(
 *   () => parseDelimitedSample('id\n"x\ny"z,1\n', { delimiter: ",", strictQuotes: true }),
 *   (error) => error instanceof MisquotedField && error.line === 2 && error.text === '"x\ny"z',
 * );
 * ```
 * @throws Error when the delimiter is unusable, or when `wholeFile` is set and a quote never closes.
 * @throws MisquotedField with `strictQuotes`, for the first field whose quotes are not RFC 4180's.
 */
export function parseDelimitedSample(text: string, options: SampleOptions): DelimitedSample {
  const { delimiter, maxRows = Infinity, wholeFile = false, strictQuotes = false } = options;
  checkDelimiter(delimiter);
  const body = text.startsWith(BOM) ? text.slice(BOM.length) : text;
  const records: SampleRecord[] = [];
  let truncated = false;
  let position = 0;
  let line = 1;
  while (position < body.length && records.length < maxRows) {
    const scanned = scanRecord(body, position, delimiter, strictQuotes ? line : 0);
    if (scanned.unclosedQuote && wholeFile) {
      throw new Error(`a quoted field starting on line ${line + scanned.quoteStartLine} never closes`);
    }
    if (scanned.unclosedQuote || (!scanned.terminated && !wholeFile)) {
      truncated = true;
      break;
    }
    if (!isBlankLine(scanned)) {
      records.push({
        fields: scanned.fields,
        quoted: scanned.quoted,
        quotesNeeded: scanned.quotesNeeded,
        line,
        lines: scanned.lineBreaks + 1,
      });
    }
    position = scanned.end;
    line += scanned.lineBreaks + (scanned.terminated ? 1 : 0);
  }
  return {
    rows: records.map((record) => record.fields),
    records,
    quoted: records.some((record) => record.quoted),
    quotesNeeded: records.some((record) => record.quotesNeeded),
    truncated,
  };
}

function checkDelimiter(delimiter: string): void {
  if (delimiter.length !== 1 || delimiter === QUOTE || delimiter === "\r" || delimiter === "\n") {
    throw new Error(
      `the delimiter must be one character other than a quote or a line break, not ${
        JSON.stringify(delimiter)
      }`,
    );
  }
}

/** One record as scanned from `start`, before deciding whether it is complete. */
interface ScannedRecord {
  fields: string[];
  /** Index just after the record's line break (or the end of the text). */
  end: number;
  /** The record ended with a line break (rather than with the end of the text). */
  terminated: boolean;
  /** The text ended inside a quoted field. */
  unclosedQuote: boolean;
  /** Line breaks inside quoted fields of this record. */
  lineBreaks: number;
  /** For an unclosed quote: line breaks before the quote opened, within this record. */
  quoteStartLine: number;
  quoted: boolean;
  quotesNeeded: boolean;
}

/** Scans one record; `strictLine`, when not 0, is the record's line, and misquoted fields are refused. */
function scanRecord(text: string, start: number, delimiter: string, strictLine: number): ScannedRecord {
  const record: ScannedRecord = {
    fields: [],
    end: start,
    terminated: false,
    unclosedQuote: false,
    lineBreaks: 0,
    quoteStartLine: 0,
    quoted: false,
    quotesNeeded: false,
  };
  let position = start;
  for (;;) {
    let field: string;
    if (text[position] === QUOTE) {
      const quoted = readQuotedField(text, position, delimiter);
      if (quoted === undefined) {
        record.quoteStartLine = record.lineBreaks;
        record.unclosedQuote = true;
        record.end = text.length;
        return record;
      }
      if (strictLine !== 0 && quoted.after > 0) {
        const raw = text.slice(position, quoted.end);
        throw new MisquotedField(strictLine + record.lineBreaks, record.fields.length, raw, TEXT_AFTER_QUOTE);
      }
      record.quoted = true;
      record.quotesNeeded ||= quoted.needed;
      record.lineBreaks += quoted.lineBreaks;
      field = quoted.value;
      position = quoted.end;
    } else {
      const end = fieldEnd(text, position, delimiter);
      field = text.slice(position, end);
      if (strictLine !== 0 && field.includes(QUOTE)) {
        throw new MisquotedField(
          strictLine + record.lineBreaks,
          record.fields.length,
          field,
          QUOTE_INSIDE_FIELD,
        );
      }
      position = end;
    }
    record.fields.push(field);
    if (position >= text.length) {
      record.end = position;
      return record;
    }
    if (text[position] === delimiter) {
      position++;
      continue;
    }
    record.terminated = true;
    record.end = position + (text[position] === "\r" && text[position + 1] === "\n" ? 2 : 1);
    return record;
  }
}

/** Index of the delimiter or line break that ends an unquoted field starting at `start`. */
function fieldEnd(text: string, start: number, delimiter: string): number {
  let position = start;
  while (position < text.length) {
    const char = text[position];
    if (char === delimiter || char === "\n" || char === "\r") break;
    position++;
  }
  return position;
}

interface QuotedField {
  value: string;
  /** Index of the delimiter or line break after the field (or the end of the text). */
  end: number;
  needed: boolean;
  lineBreaks: number;
  /** How many characters follow the closing quote before the delimiter or line break. */
  after: number;
}

/** Reads a field whose first character (at `start`) is a quote; `undefined` when the quote never closes. */
function readQuotedField(text: string, start: number, delimiter: string): QuotedField | undefined {
  let value = "";
  let position = start + 1;
  for (;;) {
    const close = text.indexOf(QUOTE, position);
    if (close === -1) return undefined;
    value += text.slice(position, close);
    if (text[close + 1] === QUOTE) {
      value += QUOTE;
      position = close + 2;
      continue;
    }
    position = close + 1;
    break;
  }
  const end = fieldEnd(text, position, delimiter);
  const inside = value;
  value += text.slice(position, end); // lenient: text after the closing quote is kept
  return {
    value,
    end,
    needed: inside.includes(delimiter) || inside.includes(QUOTE) || /[\r\n]/.test(inside),
    lineBreaks: countLineBreaks(inside),
    after: end - position,
  };
}

function countLineBreaks(text: string): number {
  return text.match(/\r\n|\r|\n/g)?.length ?? 0;
}

function isBlankLine(record: ScannedRecord): boolean {
  return record.fields.length === 1 && record.fields[0] === "" && !record.quoted;
}

/**
 * The fields of a delimited file's header line, the line a COPY with one header line skips (PostgreSQL's
 * `HEADER true`, Redshift's `IGNOREHEADER 1`); `undefined` while `text`, the file's start, does not hold all
 * of it. PostgreSQL's COPY skips the first line without reading its fields, but finds where it ends by
 * opening or closing a quoted stretch at every quote (checked on PostgreSQL 15): a header whose quotes are not
 * RFC 4180's would end elsewhere for COPY (`a,b"c,d` runs on to the next quote, or to the end of the file, and
 * COPY skips every line up to there as the header, loading none of them), so it is refused, as is a blank
 * first line (COPY would skip it and read the header as data). Redshift's COPY could not be checked; it
 * documents RFC 4180's quoting, and the same header is refused for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { headerLineFields } from "./csv.ts";
 *
 * const read = (text: string) => headerLineFields(text, { delimiter: ",", wholeFile: true });
 * assert.deepEqual(read('"a ""x""",b\n1,2\n'), ['a "x"', "b"]);
 * assert.equal(headerLineFields('a,"b', { delimiter: ",", wholeFile: false }), undefined);
 * assert.throws(() => read('a,b"c,d\n1,2,3\n'), {
 *   message: /^header line 1, field 2: "b\\"c": a quote inside a field that does not start with one; /,
 * });
 * assert.throws(() => read('a,"b"c"d,e\n'), { message: /^header line 1, field 2: "\\"b\\"c\\"d": text after/ });
 * assert.throws(() => read("\na,b\n1,2\n"), { message: /^line 1 is blank/ });
 * ```
 * @throws Error (a {@link MisquotedField} for a field) when the header is refused, or its quote never closes.
 */
export function headerLineFields(
  text: string,
  options: { delimiter: string; wholeFile: boolean },
): string[] | undefined {
  let record: SampleRecord | undefined;
  try {
    record = parseDelimitedSample(text, { ...options, maxRows: 1, strictQuotes: true }).records[0];
  } catch (error) {
    if (!(error instanceof MisquotedField)) throw error;
    const refused = new MisquotedField(error.line, error.field, error.text, error.reason);
    refused.message = `header ${error.message}; COPY opens or closes a quoted stretch at every quote, so ` +
      `it would not end the header line where it ends here (write the field as RFC 4180 does: quoted whole, ` +
      `each quote in it doubled)`;
    throw refused;
  }
  if (record === undefined) return undefined;
  if (record.line !== 1) {
    throw new Error(
      `line 1 is blank: COPY would skip it as the header line and read the header, on line ${record.line}, ` +
        `as data`,
    );
  }
  return record.fields;
}

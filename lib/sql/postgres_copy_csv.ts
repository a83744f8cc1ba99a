/**
 * A CSV file's bytes on their way into PostgreSQL's `COPY … FROM STDIN (FORMAT csv)`, changed only where
 * COPY would read them otherwise than the file says.
 *
 * **The end-of-data marker.** PostgreSQL (15 and earlier releases; 18 dropped it) ends the data of a
 * `COPY … FROM STDIN` at a line holding only `\.`, even in CSV, where `\.` is an ordinary value: every line
 * after it was silently left out. COPY looks for it only at the start of a line and outside quotes (a
 * quoted `"\."`, and a `\.` line inside a quoted multi-line field, are data; checked on PostgreSQL 15), and
 * only when a line break follows it (a `\.` at the very end of the data is a value). So a line that holds
 * only `\.`, outside quotes, followed by LF, CR or the end of the file, is sent as `"\."`: the same value,
 * now quoted, which COPY reads as data. The line breaks stay where they were, so COPY's line numbers are
 * still the file's.
 *
 * **A byte order mark.** A UTF-8 BOM at the start of the file is dropped: COPY would keep it as the start of
 * the first value (of a file without a header line; in a header line, which COPY skips, it changes nothing).
 *
 * **Checked values.** Given a check for some fields ({@link CopyCsvOptions.checks}), each value of those
 * fields (its quotes undone as COPY undoes them) is checked on the way, and the first one refused stops the
 * stream with a {@link RefusedValue} naming its line and field, so that the COPY fails and nothing loads.
 *
 * **Quotes as RFC 4180 writes them.** COPY's line reader opens or closes a quoted stretch at every `"`, also
 * in the middle of a field (checked on PostgreSQL 15): `1,5'10"` followed by `2,6'1"` is ONE record for COPY,
 * whose second field holds `5'10⏎2,6'1` (with as many fields as a line, it loads, a row short), and
 * `ab"c"d` or `"ab"c` load as `abcd` and `abc`. So a quote that is neither the first byte of a field, nor a
 * closing quote followed by a delimiter, a line break, the end of the file or a second quote (a doubled
 * quote), stops the stream with a {@link StrayQuote} naming its line (and field, value); so does a quoted
 * field that never closes.
 *
 * Quotes are followed as COPY's own line reader follows them (every `"` opens or closes a quoted stretch;
 * the file's quote character is always `"` and its delimiter `,`: a load sets no others). The bytes are
 * scanned in one pass over each chunk; a chunk with nothing to change is passed on as it is, not copied.
 *
 * @module
 */

import { concatBytes } from "../streams.ts";

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const COMMA = 0x2c;

/** `"\."`: the value `\.`, quoted. */
const QUOTED_MARKER = new Uint8Array([QUOTE, BACKSLASH, DOT, QUOTE]);

/** UTF-8's byte order mark. */
const BOM = [0xef, 0xbb, 0xbf];

/**
 * Rewrites a CSV byte stream, chunk by chunk, for `COPY … FROM STDIN (FORMAT csv)` (see the module's
 * documentation): {@link push} each chunk, then {@link end}; each returns the bytes to send, in order.
 *
 * @example A lone `\.` line is quoted; a quoted one, or one inside a quoted field, is left alone
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyCsvFilter } from "./postgres_copy_csv.ts";
 *
 * const through = (...chunks: string[]) => {
 *   const filter = new CopyCsvFilter();
 *   const out = [...chunks.flatMap((chunk) => filter.push(new TextEncoder().encode(chunk))), ...filter.end()];
 *   return out.map((bytes) => new TextDecoder().decode(bytes)).join("");
 * };
 * assert.equal(through("a\n\\.\nb\n"), 'a\n"\\."\nb\n');
 * assert.equal(through("a\r\n\\.\r\nb\r\n"), 'a\r\n"\\."\r\nb\r\n');
 * assert.equal(through("\\.\nb\n"), '"\\."\nb\n'); // the first line too
 * assert.equal(through("a\n\\."), 'a\n"\\."'); // at the end of the file
 * assert.equal(through("a\n\\", ".\nb\n"), 'a\n"\\."\nb\n'); // across chunks
 * assert.equal(through('a\n"\\."\n'), 'a\n"\\."\n'); // quoted already
 * assert.equal(through('"x\n\\.\ny"\n'), '"x\n\\.\ny"\n'); // inside a quoted field: data for COPY too
 * assert.equal(through("a\n\\.x\n \\.\n"), "a\n\\.x\n \\.\n"); // not alone on its line
 * ```
 * @example A byte order mark is dropped, even when it comes in pieces
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyCsvFilter } from "./postgres_copy_csv.ts";
 *
 * const filter = new CopyCsvFilter();
 * const sent = [new Uint8Array([0xef]), new Uint8Array([0xbb, 0xbf, 0x41, 0x31, 0x0a])]
 *   .flatMap((chunk) => filter.push(chunk));
 * assert.deepEqual(sent.flatMap((piece) => [...piece]), [0x41, 0x31, 0x0a]);
 * ```
 * @example A quote inside a field stops the stream, naming its line, field and value
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyCsvFilter, StrayQuote } from "./postgres_copy_csv.ts";
 *
 * const refusal = (text: string) => {
 *   try {
 *     const filter = new CopyCsvFilter({ header: true });
 *     filter.push(new TextEncoder().encode(text));
 *     filter.end();
 *   } catch (error) {
 *     if (error instanceof StrayQuote) return [error.line, error.field, error.text];
 *     throw error;
 *   }
 * };
 * assert.deepEqual(refusal("id,h\n1,5'10\"\n2,6'1\"\n"), [2, 1, "5'10\""]);
 * assert.deepEqual(refusal('id,h\n1,"a\nb"c,d\n'), [2, 1, '"a\nb"c']);
 * assert.deepEqual(refusal('id,h\n1,x\n2,"never closes\n'), [3, 1, '"never closes\n']);
 * // named at the line its field opens on, a doubled quote on a later line notwithstanding
 * assert.deepEqual(refusal('id,h\n1,"first\nsaid ""hi"" ok" trailing\n')?.slice(0, 2), [2, 1]);
 * assert.equal(refusal('id,h\n1,"say ""hi"""\n"2",""\n'), undefined); // RFC 4180: loads as written
 * ```
 * @example Checked fields: the first value refused stops the stream, naming its line and field
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyCsvFilter, RefusedValue } from "./postgres_copy_csv.ts";
 *
 * const digits = { accepts: (b: Uint8Array, s: number, e: number) => b.subarray(s, e).every((c) => c >= 48 && c <= 57), refusal: "not digits" };
 * const filter = new CopyCsvFilter({ header: true, checks: [undefined, digits] });
 * const file = new TextEncoder().encode('note,n\nhi,"12"\n"a\nb",3\nok,4x\n');
 * assert.throws(() => filter.push(file), (error) => {
 *   assert.ok(error instanceof RefusedValue);
 *   assert.deepEqual([error.line, error.field, error.value], [5, 1, "4x"]);
 *   return true;
 * });
 * ```
 */
export class CopyCsvFilter {
  readonly #checks: readonly (FieldCheck | undefined)[];
  /** Inside a quoted stretch (COPY's line reader toggles on every quote). */
  #inQuote = false;
  /** The next byte starts a line. */
  #lineStart = true;
  /**
   * Bytes held back at the end of a chunk for the next one to decide: the start of a line, `\` or `\.`, or
   * the start of the file, the first bytes of a BOM.
   */
  #held: Uint8Array | undefined;
  /** The start of the file was read (and a BOM dropped). */
  #started = false;
  /** The last byte of the previous chunk (a line break before the first). */
  #prev = LF;
  /** The line (from 1) of the file at the current byte: every LF, CR and CRLF ends one. */
  #line = 1;
  /** The previous chunk ended with a quote that closed a quoted stretch: the next byte must end the field. */
  #closedAtEnd = false;
  /**
   * Without checks: the LFs and the CRs read so far; the line is 1 + the larger count (exact for a file whose
   * lines end in LF, CRLF or CR alone; cheaper than telling CRLF from LF on every line break).
   */
  #lineFeeds = 0;
  #returns = 0;
  /** The line on which the last quoted stretch opened. */
  #openedLine = 1;
  /** The text of the field the previous chunk ended in, when it ended in quotes or with one (for messages). */
  #tail = "";
  /** The position of that field in its record, when known. */
  #tailField: number | undefined;
  // Followed only when there are checks:
  /** The header line is being read (its fields are not checked). */
  #inHeader: boolean;
  /** The field being read (from 0 in its record), the line it starts on, and whether it holds a quote. */
  #field = 0;
  #fieldLine = 1;
  #fieldQuoted = false;
  /** The bytes of the field being read that earlier chunks held, when it is checked. */
  #partial: Uint8Array[] = [];

  constructor(options: CopyCsvOptions = {}) {
    this.#checks = options.checks ?? [];
    this.#inHeader = options.header ?? false;
  }

  /**
   * The bytes to send for the next chunk of the file (none, one piece, or several).
   *
   * @throws RefusedValue for a value a check refuses.
   */
  push(input: Uint8Array): Uint8Array[] {
    let chunk = input;
    if (this.#held) {
      chunk = new Uint8Array(this.#held.length + input.length);
      chunk.set(this.#held);
      chunk.set(input, this.#held.length);
      this.#held = undefined;
    }
    if (!this.#started) {
      if (chunk.length < BOM.length && chunk.every((byte, i) => byte === BOM[i])) {
        if (chunk.length > 0) this.#held = chunk.slice();
        return [];
      }
      this.#started = true;
      if (chunk[0] === BOM[0] && chunk[1] === BOM[1] && chunk[2] === BOM[2]) {
        chunk = chunk.subarray(BOM.length);
      }
    }
    const out: Uint8Array[] = [];
    const from = this.#checks.length > 0 ? this.#scanFields(chunk, out) : this.#scan(chunk, out);
    if (from === 0) out.push(chunk);
    else if (from > 0 && from < chunk.length) out.push(chunk.subarray(from));
    return out;
  }

  /**
   * The bytes to send once the file has ended.
   *
   * @throws RefusedValue for a last value (after the last line break) a check refuses.
   */
  end(): Uint8Array[] {
    const held = this.#held;
    this.#held = undefined;
    if (!this.#started) return held ? [held] : []; // a file of one or two bytes that start like a BOM
    const last = held ?? new Uint8Array(0);
    if (this.#inQuote) {
      const field = this.#checks.length > 0 ? this.#field : this.#tailField;
      throw new StrayQuote(this.#openedLine, field, this.#tail, UNCLOSED);
    }
    const check = this.#inHeader ? undefined : this.#checks[this.#field];
    if (check !== undefined && (this.#partial.length > 0 || last.length > 0)) {
      this.#checkValue(check, last, 0, last.length, this.#field, this.#fieldLine, this.#fieldQuoted);
    }
    if (!held) return [];
    // "\." as the file's last line is a value for COPY too; quoted, it is the same value
    return [held.length === 2 ? QUOTED_MARKER : held];
  }

  /**
   * Scans a chunk for lines holding only `\.`, adding to `out` the bytes before each and its quoted form.
   * Returns the first byte not yet in `out`, or -1 when the chunk's end was held back.
   *
   * @throws StrayQuote for a quote RFC 4180 would not write there.
   */
  #scan(chunk: Uint8Array, out: Uint8Array[]): number {
    const length = chunk.length;
    let inQuote = this.#inQuote;
    let from = 0;
    let start = this.#lineStart && !inQuote ? 0 : -1; // a line start to look at, outside quotes
    // line breaks counted apart (cheaper than telling CRLF from LF): a file's lines end in one kind
    let lineFeeds = this.#lineFeeds;
    let returns = this.#returns;
    let opened = -1; // where the last quoted stretch opened in this chunk
    const previous = this.#prev; // the byte before chunk[0] (private fields in the loop would slow it)
    if (this.#closedAtEnd && length > 0) this.#afterClosed(chunk, undefined);
    for (let i = 0; i < length; i++) {
      const byte = chunk[i];
      if (byte > QUOTE) {
        if (i === start && byte === BACKSLASH) {
          const next = this.#atBackslash(chunk, i, from, out);
          if (next === HELD) {
            this.#lineFeeds = lineFeeds;
            this.#returns = returns;
            return -1;
          }
          if (next !== from) {
            from = next;
            i++; // the line break after "\." is read next
          }
        }
        continue;
      }
      if (byte === QUOTE) {
        if (inQuote) {
          if (i + 1 < length) {
            const after = chunk[i + 1];
            if (after !== COMMA && after !== LF && after !== CR && after !== QUOTE) {
              this.#stray(chunk, i, true, this.#openedLine, start, opened, undefined);
            }
          }
        } else {
          const before = i > 0 ? chunk[i - 1] : previous;
          if (before !== COMMA && before !== LF && before !== CR && before !== QUOTE) {
            this.#stray(chunk, i, false, 1 + Math.max(lineFeeds, returns), start, opened, undefined);
          }
          if (before !== QUOTE) { // (after a quote: a doubled one, inside the field opened before)
            opened = i;
            this.#openedLine = 1 + Math.max(lineFeeds, returns); // (a local here made the loop slower)
          }
        }
        inQuote = !inQuote;
      } else if (byte === LF) {
        lineFeeds++;
        if (!inQuote) start = i + 1;
      } else if (byte === CR) {
        returns++;
        if (!inQuote) start = i + 1;
      }
    }
    this.#lineFeeds = lineFeeds;
    this.#returns = returns;
    this.#endChunk(chunk, inQuote, 1 + Math.max(lineFeeds, returns), opened, start);
    this.#lineStart = start === length;
    return from;
  }

  /** {@link #scan}, also reading fields and lines to check each value with its field's check. */
  #scanFields(chunk: Uint8Array, out: Uint8Array[]): number {
    const checks = this.#checks;
    const length = chunk.length;
    let inQuote = this.#inQuote;
    let from = 0;
    let start = this.#lineStart && !inQuote ? 0 : -1;
    let line = this.#line;
    let inHeader = this.#inHeader;
    let field = this.#field;
    let fieldLine = this.#fieldLine;
    let fieldQuoted = this.#fieldQuoted;
    let fieldStart = 0; // where the field being read starts in this chunk
    let carried = this.#partial.length > 0; // earlier chunks hold the field's start
    let check = inHeader ? undefined : checks[field];
    let opened = -1;
    const previous = this.#prev;
    if (this.#closedAtEnd && length > 0) this.#afterClosed(chunk, field);
    for (let i = 0; i < length; i++) {
      const byte = chunk[i];
      if (byte > QUOTE && byte !== COMMA) {
        if (i === start && byte === BACKSLASH) {
          const next = this.#atBackslash(chunk, i, from, out);
          if (next === HELD) {
            // read again with the next chunk: the state at the start of this line
            this.#line = line;
            this.#inHeader = inHeader;
            this.#field = field;
            this.#fieldLine = fieldLine;
            this.#fieldQuoted = fieldQuoted;
            return -1;
          }
          if (next !== from) {
            from = next;
            i++; // the line break after "\." is read next
          }
        }
        continue;
      }
      if (byte === QUOTE) {
        if (inQuote) {
          if (i + 1 < length) {
            const after = chunk[i + 1];
            if (after !== COMMA && after !== LF && after !== CR && after !== QUOTE) {
              this.#stray(chunk, i, true, this.#openedLine, start, opened, field);
            }
          }
        } else {
          const before = i > 0 ? chunk[i - 1] : previous;
          if (before !== COMMA && before !== LF && before !== CR && before !== QUOTE) {
            this.#stray(chunk, i, false, line, start, opened, field);
          }
          if (before !== QUOTE) { // (after a quote: a doubled one, inside the field opened before)
            opened = i;
            this.#openedLine = line; // (a local here made the loop slower)
          }
        }
        inQuote = !inQuote;
        fieldQuoted = true;
      } else if (byte === COMMA) {
        if (!inQuote) {
          if (
            check !== undefined &&
            (fieldQuoted || carried || !check.accepts(chunk, fieldStart, i))
          ) {
            this.#checkValue(check, chunk, fieldStart, i, field, fieldLine, fieldQuoted);
          }
          fieldQuoted = false;
          carried = false;
          field++;
          check = inHeader ? undefined : checks[field];
          fieldLine = line;
          fieldStart = i + 1;
        }
      } else if (byte === LF || byte === CR) {
        const crlf = byte === LF && (i > 0 ? chunk[i - 1] : previous) === CR;
        if (!crlf) line++;
        if (!inQuote) {
          start = i + 1;
          if (!crlf) {
            if (
              check !== undefined &&
              (fieldQuoted || carried || !check.accepts(chunk, fieldStart, i))
            ) {
              this.#checkValue(check, chunk, fieldStart, i, field, fieldLine, fieldQuoted);
            }
            fieldQuoted = false;
            carried = false;
            field = 0;
            inHeader = false;
            check = checks[0];
          }
          fieldLine = line;
          fieldStart = i + 1;
        }
      }
    }
    this.#endChunk(chunk, inQuote, line, opened, start);
    this.#lineStart = start === length;
    this.#inHeader = inHeader;
    this.#field = field;
    this.#fieldLine = fieldLine;
    this.#fieldQuoted = fieldQuoted;
    if (fieldStart < length && check !== undefined) this.#partial.push(chunk.slice(fieldStart));
    return from;
  }

  /** Keeps, at the end of a scanned chunk, what the next one needs to follow quotes and lines. */
  #endChunk(chunk: Uint8Array, inQuote: boolean, line: number, opened: number, start: number): void {
    const length = chunk.length;
    this.#inQuote = inQuote;
    this.#line = line;
    if (length === 0) return;
    const last = chunk[length - 1];
    // a quote that closed a stretch as the chunk's last byte: the next chunk's first byte must end the field
    this.#closedAtEnd = !inQuote && last === QUOTE;
    if (inQuote || this.#closedAtEnd) {
      // the field's text so far, for a message (rare: a chunk rarely ends inside quotes)
      if (opened !== -1) {
        this.#tail = shown(chunk, opened, length);
        this.#tailField = start !== -1 && start <= opened ? fieldAt(chunk, start, opened) : undefined;
      } else if (this.#tail.length < 200) this.#tail = `${this.#tail}${shown(chunk, 0, length)}`;
    }
    this.#prev = last;
  }

  /** The chunk's first byte follows a quote that closed a quoted stretch (the previous chunk's last byte). */
  #afterClosed(chunk: Uint8Array, field: number | undefined): void {
    this.#closedAtEnd = false;
    const after = chunk[0];
    if (after !== COMMA && after !== LF && after !== CR && after !== QUOTE) {
      const text = `${this.#tail}${shown(chunk, 0, fieldEnd(chunk, 0))}`;
      throw new StrayQuote(this.#openedLine, field ?? this.#tailField, text, TEXT_AFTER);
    }
  }

  /**
   * Refuses the quote at `chunk[i]`: one that closes a quoted stretch but is followed by more of the field
   * (`closing`), or one inside a field that does not start with a quote. `start` is where the record
   * starts in the chunk (-1: in an earlier chunk), `opened` where the last quoted stretch opened in it,
   * `field` the field's position when the caller follows fields; `line` is the quote's line (for a closing
   * one, the line its quoted stretch opened on).
   */
  #stray(
    chunk: Uint8Array,
    i: number,
    closing: boolean,
    line: number,
    start: number,
    opened: number,
    field: number | undefined,
  ): never {
    // the field's start: its opening quote, or (a field with no quote before this one) the byte after the
    // delimiter or line break before it
    let first = i;
    let before = "";
    if (closing) {
      if (opened !== -1) first = opened;
      else [first, before] = [0, this.#tail];
    } else {
      while (first > 0 && !endsField(chunk[first - 1])) first--;
      if (first === 0 && !endsField(this.#prev)) before = "…";
    }
    if (field === undefined && start !== -1 && start <= first) field = fieldAt(chunk, start, first);
    const text = `${before}${shown(chunk, first, fieldEnd(chunk, i + 1))}`;
    throw new StrayQuote(line, field, text, closing ? TEXT_AFTER : INSIDE);
  }

  /**
   * At `chunk[i]`, a `\` that starts a line outside quotes: when it is `\.` and a line break, adds the bytes
   * from `from` and the quoted `"\."` to `out` and returns where the line break is (the new `from`); when
   * the chunk ends before that is known, adds the bytes before it, holds the rest back for the next chunk
   * and returns {@link HELD}; else returns `from`.
   */
  #atBackslash(chunk: Uint8Array, i: number, from: number, out: Uint8Array[]): number {
    const length = chunk.length;
    if (i + 2 >= length) {
      if (i + 1 < length && chunk[i + 1] !== DOT) return from;
      if (i > from) out.push(chunk.subarray(from, i));
      this.#held = chunk.slice(i); // read again with the next chunk, from the same line start
      this.#inQuote = false;
      this.#closedAtEnd = false;
      if (i > 0) this.#prev = chunk[i - 1];
      this.#lineStart = true;
      return HELD;
    }
    if (chunk[i + 1] !== DOT || (chunk[i + 2] !== LF && chunk[i + 2] !== CR)) return from;
    if (i > from) out.push(chunk.subarray(from, i));
    out.push(QUOTED_MARKER);
    return i + 2;
  }

  /**
   * The checked field `field` (from 0), which started on line `line`, ends at `chunk[end]` (it started at
   * `chunk[start]`, after the bytes earlier chunks held): checks its value. (The scan's loop checks an
   * unquoted value within one chunk itself, and calls this for it only to refuse it.)
   */
  #checkValue(
    check: FieldCheck,
    chunk: Uint8Array,
    start: number,
    end: number,
    field: number,
    line: number,
    quoted: boolean,
  ): void {
    let bytes = chunk;
    if (this.#partial.length > 0) {
      bytes = concatBytes([...this.#partial, chunk.subarray(start, end)]);
      this.#partial = [];
      start = 0;
      end = bytes.length;
    }
    if (quoted) [bytes, start, end] = unquoted(bytes, start, end);
    if (!check.accepts(bytes, start, end)) {
      const value = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes.subarray(start, end));
      throw new RefusedValue(line, field, value, check.refusal);
    }
  }
}

/** What {@link CopyCsvFilter}'s `#atBackslash` returns when it held the chunk's end back. */
const HELD = -1;

/** A check of one field's values (see {@link CopyCsvOptions.checks}). */
export interface FieldCheck {
  /** Whether the value in `bytes[start, end)` (quotes undone) may be loaded. */
  accepts(bytes: Uint8Array, start: number, end: number): boolean;
  /** Why a value it refuses may not, for the error. */
  refusal: string;
}

/** What a {@link CopyCsvFilter} looks at besides COPY's end-of-data marker. */
export interface CopyCsvOptions {
  /** The first record is a header line (COPY skips it): its fields are not checked. */
  header?: boolean;
  /** The checks of each field's values, by the field's position in its record (from 0). Default none. */
  checks?: readonly (FieldCheck | undefined)[];
}

/** A value a {@link FieldCheck} refused, and where it is: its line (from 1) and field (from 0). */
export class RefusedValue extends Error {
  constructor(
    readonly line: number,
    readonly field: number,
    readonly value: string,
    readonly refusal: string,
  ) {
    super(`line ${line}, field ${field + 1}: ${JSON.stringify(value)}: ${refusal}`);
    this.name = "RefusedValue";
  }
}

/** Why a {@link StrayQuote} was refused: a quote inside a field that does not start with one. */
const INSIDE = "a quote inside a field that does not start with one: COPY opens a quoted stretch there, " +
  "which runs on to the next quote (joining the lines between into one record), so the field and the " +
  "lines after it would not load as written; quote the whole field, doubling each quote in it";
/** Why a {@link StrayQuote} was refused: text after a closing quote. */
const TEXT_AFTER =
  "text after the quote that closes the field: COPY would drop the field's quotes and load " +
  "the text joined, not as written; quote the whole field, doubling each quote in it";
/** Why a {@link StrayQuote} was refused: a quoted field runs to the end of the file. */
const UNCLOSED = "a quoted field that never closes (COPY would read the rest of the file into it)";

/**
 * A quote RFC 4180 would not write where the file has it, which COPY would read otherwise than the file
 * says: its line (from 1; where its quoted field opened, for a closing quote), its field (from 0) when
 * known, the field's text as written (`…` where it starts before what the filter still held) and why.
 */
export class StrayQuote extends Error {
  constructor(
    readonly line: number,
    readonly field: number | undefined,
    readonly text: string,
    readonly reason: string,
  ) {
    super(
      `line ${line}${field === undefined ? "" : `, field ${field + 1}`}: ${JSON.stringify(text)}: ${reason}`,
    );
    this.name = "StrayQuote";
  }
}

/** A delimiter or a line break: the end of a field. */
function endsField(byte: number): boolean {
  return byte === COMMA || byte === LF || byte === CR;
}

/** Where the field holding `chunk[from]` ends: its delimiter or line break, or the chunk's end. */
function fieldEnd(chunk: Uint8Array, from: number): number {
  let end = from;
  while (end < chunk.length && !endsField(chunk[end])) end++;
  return end;
}

/** The position (from 0) of the field starting at `chunk[first]` in the record starting at `chunk[start]`. */
function fieldAt(chunk: Uint8Array, start: number, first: number): number {
  let field = 0;
  let inQuote = false;
  for (let i = start; i < first; i++) {
    if (chunk[i] === QUOTE) inQuote = !inQuote;
    else if (chunk[i] === COMMA && !inQuote) field++;
  }
  return field;
}

/** `chunk[start, end)` as text for a message (its first 200 bytes). */
function shown(chunk: Uint8Array, start: number, end: number): string {
  return new TextDecoder().decode(chunk.subarray(start, Math.min(end, start + 200)));
}

/** A field's bytes with its quotes undone as COPY undoes them (`"a""b"` → `a"b`; `x"y"` → `xy`). */
function unquoted(bytes: Uint8Array, start: number, end: number): [Uint8Array, number, number] {
  if (bytes[start] === QUOTE && end - start >= 2 && bytes.indexOf(QUOTE, start + 1) === end - 1) {
    return [bytes, start + 1, end - 1];
  }
  const out = new Uint8Array(end - start);
  let length = 0;
  let inQuote = false;
  for (let i = start; i < end; i++) {
    const byte = bytes[i];
    if (byte !== QUOTE) out[length++] = byte;
    else if (!inQuote) inQuote = true;
    else if (i + 1 < end && bytes[i + 1] === QUOTE) out[length++] = bytes[++i];
    else inQuote = false;
  }
  return [out, 0, length];
}

/**
 * A {@link CopyCsvFilter} as a stream: CSV bytes in, the bytes for `COPY … FROM STDIN (FORMAT csv)` out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyCsvStream } from "./postgres_copy_csv.ts";
 *
 * const file = ReadableStream.from([new TextEncoder().encode("path\na\n\\.\nb\n")]);
 * const sent = await new Response(file.pipeThrough(copyCsvStream())).text();
 * assert.equal(sent, 'path\na\n"\\."\nb\n');
 * ```
 */
export function copyCsvStream(options: CopyCsvOptions = {}): TransformStream<Uint8Array, Uint8Array> {
  const filter = new CopyCsvFilter(options);
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (const piece of filter.push(chunk)) controller.enqueue(piece);
    },
    flush(controller) {
      for (const piece of filter.end()) controller.enqueue(piece);
    },
  });
}

/**
 * lib/tables/: reading samples of staged files (csv.ts), inferring columns (infer.ts), safe names and
 * literals (identifiers.ts) and the DDL built from them (ddl.ts). Hostile headers and values are data: every
 * test that builds SQL checks they come out quoted, never as SQL.
 *
 * Run: deno test -A --doc lib/tables/ tests/tables_test.ts
 */

import assert from "node:assert/strict";
import { parseDelimitedSample } from "../lib/tables/csv.ts";
import {
  athenaAddPartitionsSql,
  athenaCreateTableSql,
  hiveType,
  partitionsFromKeys,
  schemaDrift,
  sqlCreateTable,
} from "../lib/tables/ddl.ts";
import {
  columnIdentifiers,
  columnsOfNames,
  parseTableName,
  quoteIdentifier,
  quoteLiteral,
  type SqlDialect,
} from "../lib/tables/identifiers.ts";
import { type ColumnType, inferTable, inferValueType } from "../lib/tables/infer.ts";

const HOSTILE_HEADERS = [
  'x"; DROP TABLE y; --',
  "`tick`",
  "it's",
  "multi\nline",
  "a".repeat(300),
  "Prénom",
  "名前",
  "",
  "Name",
  "name",
  "2nd",
];

/** A reproducible source of pseudo-random numbers in [0, 1) (mulberry32). */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomText(random: () => number, alphabet: string[], maxLength: number): string {
  const length = Math.floor(random() * maxLength);
  return Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
}

function typesOf(columns: { name: string; type: string }[]): string[] {
  return columns.map(({ name, type }) => `${name} ${type}`);
}

// ---------------------------------------------------------------------------------------------------------
// csv.ts

Deno.test("parseDelimitedSample reads quotes, doubled quotes, and delimiters and line breaks in quotes", () => {
  const sample = parseDelimitedSample('a,b,c\n"x, y","say ""hi""","two\nlines"\nplain,,end\n', {
    delimiter: ",",
  });
  assert.deepEqual(sample.rows, [["a", "b", "c"], ["x, y", 'say "hi"', "two\nlines"], ["plain", "", "end"]]);
  assert.deepEqual(sample.records.map((r) => [r.line, r.lines, r.quoted, r.quotesNeeded]), [
    [1, 1, false, false],
    [2, 2, true, true],
    [4, 1, false, false],
  ]);
  assert.equal(sample.truncated, false);
});

Deno.test("parseDelimitedSample ends lines at CRLF, LF or a lone CR, and drops a UTF-8 BOM", () => {
  const sample = parseDelimitedSample('\uFEFFid,name\r\n1,"a\r\nb"\r\n2,c\n3,d\r4,e\r\n', { delimiter: "," });
  assert.deepEqual(sample.rows, [["id", "name"], ["1", "a\r\nb"], ["2", "c"], ["3", "d"], ["4", "e"]]);
  assert.deepEqual(sample.records.map((r) => r.line), [1, 2, 4, 5, 6]);
});

Deno.test("parseDelimitedSample drops a record the sample cuts, in a bare or a quoted field", () => {
  const bare = parseDelimitedSample("id,name\n1,ab\n2,cd", { delimiter: "," });
  assert.deepEqual(bare.rows, [["id", "name"], ["1", "ab"]]);
  assert.equal(bare.truncated, true);

  const quoted = parseDelimitedSample('id,name\n1,"ab\n2,cd\n', { delimiter: "," });
  assert.deepEqual(quoted.rows, [["id", "name"]]);
  assert.equal(quoted.truncated, true);

  const complete = parseDelimitedSample("id,name\n1,ab\n", { delimiter: "," });
  assert.equal(complete.truncated, false);
  assert.equal(complete.rows.length, 2);
});

Deno.test("parseDelimitedSample keeps a last line without a line break when given the whole file", () => {
  const sample = parseDelimitedSample("id\n1\n2", { delimiter: ",", wholeFile: true });
  assert.deepEqual(sample.rows, [["id"], ["1"], ["2"]]);
  assert.equal(sample.truncated, false);
  assert.throws(
    () => parseDelimitedSample('id\n1\n"open\n', { delimiter: ",", wholeFile: true }),
    /a quoted field starting on line 3 never closes/,
  );
});

Deno.test("parseDelimitedSample tells quoting by style from quoting that is needed", () => {
  const styled = parseDelimitedSample('"id","name"\n"1","ann"\n', { delimiter: "," });
  assert.deepEqual(styled.rows, [["id", "name"], ["1", "ann"]]);
  assert.equal(styled.quoted, true);
  assert.equal(styled.quotesNeeded, false);
  const needed = parseDelimitedSample('"1","a ""b"""\n', { delimiter: "," });
  assert.equal(needed.quotesNeeded, true);
  const bare = parseDelimitedSample("1,2\n", { delimiter: "," });
  assert.equal(bare.quoted, false);
});

Deno.test("parseDelimitedSample stops at maxRows, skips blank lines and is lenient with stray quotes", () => {
  const sample = parseDelimitedSample('a\n\nb"c\n"d"e\n""\nf\ng\n', { delimiter: ",", maxRows: 4 });
  assert.deepEqual(sample.rows, [["a"], ['b"c'], ["de"], [""]]);
  assert.equal(sample.truncated, false);
});

Deno.test("parseDelimitedSample splits TSV at tabs and keeps commas", () => {
  const sample = parseDelimitedSample('id\tnote\n1\ta, b\n2\t"tab\there"\n', { delimiter: "\t" });
  assert.deepEqual(sample.rows, [["id", "note"], ["1", "a, b"], ["2", "tab\there"]]);
});

Deno.test("parseDelimitedSample refuses a delimiter that is not one ordinary character", () => {
  for (const delimiter of ["", ",,", '"', "\n", "\r"]) {
    assert.throws(() => parseDelimitedSample("a", { delimiter }), /the delimiter must be one character/);
  }
});

// ---------------------------------------------------------------------------------------------------------
// identifiers.ts

Deno.test("columnIdentifiers makes hostile headers safe, unique names", () => {
  const names = columnIdentifiers(HOSTILE_HEADERS);
  assert.deepEqual(names, [
    "x_drop_table_y",
    "tick",
    "it_s",
    "multi_line",
    "a".repeat(127),
    "prenom",
    "col_7",
    "col_8",
    "name_2", // "Name": "name" is already a valid name and keeps it
    "name",
    "_2nd",
  ]);
});

Deno.test("columnIdentifiers gives duplicates _2, _3 … around names other headers already have", () => {
  assert.deepEqual(columnIdentifiers(["a", "A", "a_2", "a"]), ["a", "a_3", "a_2", "a_4"]);
  // a header's own name wins over the col_<position> generated for an empty one
  assert.deepEqual(columnIdentifiers(["", "", "col_1"]), ["col_1_2", "col_2", "col_1"]);
  assert.deepEqual(columnIdentifiers(["col_2", ""]), ["col_2", "col_2_2"]);
  assert.deepEqual(columnIdentifiers(["Straße", "Ｆｕｌｌ　Ｗｉｄｔｈ", "ﬁle", "__x__", "(id)"]), [
    "stra_e",
    "full_width",
    "file",
    "_x_",
    "id",
  ]);
});

Deno.test("columnIdentifiers cuts long names and keeps the suffix of a repeated one within the limit", () => {
  const long = "b".repeat(300);
  const [first, second] = columnIdentifiers([long, long]);
  assert.equal(first, "b".repeat(127));
  assert.equal(second, `${"b".repeat(125)}_2`);
  assert.deepEqual(columnIdentifiers([long, `${long}x`], { maxLength: 63 }), [
    "b".repeat(63),
    `${"b".repeat(61)}_2`,
  ]);
});

Deno.test("columnIdentifiers always returns valid, unique names (random hostile headers)", () => {
  const random = seededRandom(42);
  const alphabet = [..."aZ9_ -.\"'`;\n\t\\/é名🙂", "\u0000", "\u0301", "İ"];
  for (let round = 0; round < 200; round++) {
    const headers = Array.from(
      { length: 1 + Math.floor(random() * 12) },
      () => randomText(random, alphabet, 10),
    );
    const names = columnIdentifiers(headers);
    assert.equal(new Set(names).size, names.length, JSON.stringify(headers));
    for (const name of names) assert.match(name, /^[a-z_][a-z0-9_]{0,126}$/, JSON.stringify(headers));
  }
});

Deno.test("a header fills the column create_table named it, whatever the order of the headers", () => {
  const random = seededRandom(7);
  const unknown = (name: string) => `no column for ${name}`;
  for (
    const headers of [
      ["key", "id", "ID", "Name"],
      ["ID", "Id", "iD"],
      ["a b", "a_b", "A B", "a_b_2"],
      ["col_1", "Col 1", "COL_1", "x"],
      ["Prénom", "prenom", "PRENOM"],
    ]
  ) {
    const table = columnIdentifiers(headers);
    const columnOf = new Map(headers.map((header, i) => [header, table[i]]));
    for (let round = 0; round < 20; round++) {
      const shuffled = headers.map((header) => ({ header, key: random() })).sort((a, b) => a.key - b.key)
        .map(({ header }) => header);
      const mapped = columnsOfNames(shuffled, table, { unknown });
      shuffled.forEach((header, i) =>
        assert.equal(mapped[i], columnOf.get(header), JSON.stringify(shuffled))
      );
      // and a table made from the shuffled headers names each the same way
      const again = columnIdentifiers(shuffled);
      shuffled.forEach((header, i) => assert.equal(again[i], columnOf.get(header), JSON.stringify(shuffled)));
    }
  }
});

Deno.test("quoteIdentifier quotes for each dialect and refuses NUL and empty names", () => {
  const name = 'x"; DROP TABLE `y`; --';
  assert.equal(quoteIdentifier(name, "athena"), '`x"; DROP TABLE ``y``; --`');
  for (const dialect of ["athena-dml", "postgres", "redshift"] as const) {
    assert.equal(quoteIdentifier(name, dialect), '"x""; DROP TABLE `y`; --"');
  }
  assert.throws(() => quoteIdentifier("a\u0000b", "postgres"), /cannot hold a NUL/);
  assert.throws(() => quoteIdentifier("", "athena"), /cannot be empty/);
});

/** Reads one single-quoted literal the way `dialect` does; throws when `sql` holds anything after it. */
function readLiteral(sql: string, dialect: SqlDialect): string {
  const backslashEscapes = dialect === "athena" || dialect === "redshift" || sql.startsWith("E'");
  const body = sql.startsWith("E'") ? sql.slice(1) : sql;
  assert.equal(body[0], "'");
  let value = "";
  for (let i = 1; i < body.length; i++) {
    const char = body[i];
    if (backslashEscapes && char === "\\") {
      const next = body[++i];
      value += ({ n: "\n", t: "\t", r: "\r" } as Record<string, string>)[next] ?? next;
    } else if (char === "'" && body[i + 1] === "'" && dialect !== "athena") {
      value += "'";
      i++;
    } else if (char === "'") {
      assert.equal(i, body.length - 1, `the literal ends early: ${sql}`);
      return value;
    } else {
      value += char;
    }
  }
  throw new Error(`the literal never ends: ${sql}`);
}

Deno.test("quoteLiteral writes literals each dialect reads back unchanged, whatever they hold", () => {
  const random = seededRandom(7);
  const alphabet = [..."a'\\\"`;-\n\t\r é"];
  const values = [
    "it's",
    "s3://b/p\\",
    "\\'",
    "'; DROP TABLE t; --",
    "",
    ...Array.from({ length: 300 }, () => randomText(random, alphabet, 12)),
  ];
  for (const dialect of ["athena", "athena-dml", "postgres", "redshift"] as const) {
    for (const value of values) {
      assert.equal(
        readLiteral(quoteLiteral(value, dialect), dialect),
        value,
        `${dialect}: ${JSON.stringify(value)}`,
      );
    }
  }
  assert.equal(quoteLiteral("a\\b", "athena-dml"), "'a\\b'");
  assert.equal(quoteLiteral("a'b", "postgres"), "'a''b'");
  assert.throws(() => quoteLiteral("a\u0000", "redshift"), /cannot hold a NUL/);
});

Deno.test("parseTableName reads bare and quoted parts", () => {
  assert.deepEqual(parseTableName("Orders", "public"), { schema: "public", table: "orders" });
  assert.deepEqual(parseTableName(" raw.Orders ", "public"), { schema: "raw", table: "orders" });
  assert.deepEqual(parseTableName('"my.schema"."T"', "public"), { schema: "my.schema", table: "T" });
  assert.deepEqual(parseTableName('"a""b".`c``d`', "public"), { schema: 'a"b', table: "c`d" });
  assert.deepEqual(parseTableName("ventes_été", "public"), { schema: "public", table: "ventes_été" });
});

Deno.test("parseTableName refuses empty parts and odd names, quoting the input", () => {
  const refusals: [string, RegExp][] = [
    ["", /^Error: table name "" is empty$/],
    ["raw.", /^Error: table name "raw\." has an empty part$/],
    [".t", /^Error: table name "\.t" has an empty part$/],
    ['"".t', /^Error: table name "\\"\\"\.t" has an empty part$/],
    ["a..b", /has an empty part/],
    ["a.b.c", /^Error: table name "a\.b\.c" has 3 parts; write "table" or "schema\.table"$/],
    ['"open', /has a quote that never closes/],
    ['"a"b', /needs a "\." after a quoted part, at character 4/],
    ["my table", /has a part "my table" that is not letters, digits, _ and \$: write it in double quotes/],
    ["t; DROP TABLE x", /write it in double quotes/],
  ];
  for (const [input, message] of refusals) {
    assert.throws(() => parseTableName(input, "public"), (error: Error) => {
      assert.match(String(error), message);
      return true;
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// infer.ts: single values

Deno.test("inferValueType follows the rules for each kind of value", () => {
  const cases: [string, ColumnType | undefined][] = [
    ["", undefined],
    ["0", "bigint"],
    ["-0", "bigint"],
    ["+17", "string"], // a number would drop the + (+14155550123, a phone number)
    ["+1.5", "string"],
    ["00123", "string"],
    ["-0123", "string"],
    ["9223372036854775807", "bigint"],
    ["-9223372036854775808", "bigint"],
    ["9223372036854775808", "string"],
    ["-9223372036854775809", "string"],
    ["1.5", "double"],
    ["-2e3", "double"],
    ["1E+10", "double"],
    [".5", "double"],
    ["5.", "double"],
    ["0.25", "double"],
    ["01.5", "string"],
    // written as doubles are: C's %.17g, numpy's %.18e, 16-17 digit amounts
    ["0.10000000000000001", "double"],
    ["1.000000000000000056e-01", "double"],
    ["43770195043363.48", "double"],
    ["12345678901234567.25", "string"], // 19 digits: more than a double was ever written with
    ["1e400", "string"],
    ["e5", "string"],
    [".", "string"],
    ["NaN", "string"],
    ["Infinity", "string"],
    ["-Infinity", "string"],
    ["true", "boolean"],
    ["FALSE", "boolean"],
    ["True", "boolean"],
    ["1", "bigint"],
    ["yes", "string"],
    ["t", "string"],
    ["2020-09-30", "date"],
    ["2020-9-30", "string"],
    ["2020-13-01", "string"],
    ["2020-04-31", "string"],
    ["0000-01-01", "string"],
    ["2020-09-30 12:34:56", "timestamp"],
    ["2020-09-30 12:34:56.123456", "timestamp"],
    ["2020-09-30 12:34:56.1234567", "string"], // more digits than PostgreSQL and Redshift keep
    ["2020-09-30 12:34:56.123456789", "string"],
    ["2020-09-30 24:00:00", "string"],
    ["2020-09-30 12:60:00", "string"],
    ["2020-09-30 12:00:60", "string"],
    ["2020-09-30T12:34:56", "string"],
    ["2020-09-30T12:34:56Z", "string"],
    ["2020-09-30 12:34:56+02:00", "string"],
    ["2020-09-30 12:34", "string"],
    [" 1", "string"],
  ];
  for (const [value, type] of cases) assert.equal(inferValueType(value), type, JSON.stringify(value));
});

Deno.test("inferValueType knows leap years", () => {
  const cases: [string, ColumnType][] = [
    ["2020-02-29", "date"],
    ["2021-02-29", "string"],
    ["2000-02-29", "date"],
    ["1900-02-29", "string"],
    ["2024-02-30", "string"],
    ["2021-02-28", "date"],
    ["2020-02-29 23:59:59", "timestamp"],
    ["2021-02-29 00:00:00", "string"],
  ];
  for (const [value, type] of cases) assert.equal(inferValueType(value), type, value);
});

// ---------------------------------------------------------------------------------------------------------
// infer.ts: CSV and TSV

Deno.test("inferTable decides each column from all its values; empty values decide nothing", () => {
  const csv = [
    "n,x,flag,day,at,zip,mixed,blank,iso",
    "1,1,true,2020-02-29,2020-09-30 01:02:03,00123,1,,2020-09-30T01:02:03Z",
    ",2.5,,,,,2020-01-01,,",
    "3,,False,2021-03-01,2020-09-30 01:02:03.5,12345,abc,,2020-09-30T01:02:03+02:00",
    "",
  ].join("\n");
  const table = inferTable([csv], { names: ["a.csv"], target: "athena" });
  assert.deepEqual(typesOf(table.columns), [
    "n bigint",
    "x double",
    "flag boolean",
    "day date",
    "at timestamp",
    "zip string",
    "mixed string",
    "blank string",
    "iso string",
  ]);
  assert.deepEqual(table.columns.map((c) => c.emptyValues), [
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    true,
    true,
  ]);
  assert.deepEqual(table.reasons, [
    'column zip: values like "00123" have leading zeros; kept as a string so they keep them',
    'column mixed: mixes bigint ("1") and date ("2020-01-01") and string ("abc"), so it is a string',
    "column blank: every sampled value is empty, so it is a string",
    'column iso: values like "2020-09-30T01:02:03Z" are ISO-8601 timestamps, which Hive\'s text SerDes cannot read ' +
    'as TIMESTAMP (they read "yyyy-MM-dd HH:mm:ss[.fff]"); kept as a string (use from_iso8601_timestamp() in queries)',
  ]);
  assert.equal(table.header, true);
  assert.equal(table.quoted, false);
  assert.equal(table.delimiter, ",");
});

Deno.test("inferTable keeps integers beyond int64 and invalid dates as strings, saying why", () => {
  const csv = "id,day\n9223372036854775807,2020-02-29\n9223372036854775808,2021-02-29\n";
  const table = inferTable([csv]);
  assert.deepEqual(typesOf(table.columns), ["id string", "day string"]);
  assert.deepEqual(table.reasons, [
    'column id: "9223372036854775808" does not fit a 64-bit integer or a double; kept as a string',
    'column day: "2021-02-29" is not a valid date or time; kept as a string',
  ]);
  assert.deepEqual(typesOf(inferTable(["id\n9223372036854775807\n-9223372036854775808\n"]).columns), [
    "id bigint",
  ]);
});

Deno.test("inferTable types a column double only when a double gives every value back as written", () => {
  const csv = [
    "wide,computed,money,long_id,long_mixed,tiny",
    "12345678901234567.25,0.30000000000000004,19.99,9007199254740993,9007199254740993,1e-400",
    "1.5,0.1,5,1,1.5,1",
    "",
  ].join("\n");
  const table = inferTable([csv]);
  assert.deepEqual(typesOf(table.columns), [
    "wide string",
    "computed double", // a double's own shortest output: it reads back as written
    "money double",
    "long_id bigint", // beyond a double but within int64: bigint holds it
    "long_mixed string", // with decimals it would be a double, which cannot hold it
    "tiny string",
  ]);
  assert.deepEqual(table.reasons, [
    'column wide: a double would not keep "12345678901234567.25" as written (it would read back as ' +
    "12345678901234568); kept as a string",
    'column long_mixed: "9007199254740993" is an integer a double cannot hold (it would read back as ' +
    '9007199254740992), and values like "1.5" need a double; kept as a string',
    'column tiny: a double would not keep "1e-400" as written (it would read back as 0); kept as a string',
  ]);
  // JSON numbers alike
  const json = inferTable(['{"wide": 12345678901234567.25, "computed": 0.30000000000000004, "n": 1.50}\n'], {
    format: "json",
  });
  assert.deepEqual(typesOf(json.columns), ["wide string", "computed double", "n double"]);
  // every engine then declares the column as its text type
  const columns = table.columns.slice(0, 1);
  assert.match(sqlCreateTable({ dialect: "postgres", schema: "s", table: "t", columns }), /"wide" text\n/);
  assert.match(
    sqlCreateTable({ dialect: "redshift", schema: "s", table: "t", columns }),
    /"wide" varchar\(65535\)\n/,
  );
  const athena = athenaCreateTableSql({
    database: "d",
    table: "t",
    columns,
    location: "s3://b/t/",
    format: "csv",
  });
  assert.match(athena.sql, /`wide` string\n/);
});

Deno.test("inferTable says nothing about a column of ordinary strings that happen to look typed", () => {
  const table = inferTable(["code\nabc\n00123\n2020-09-30T00:00:00Z\n99999999999999999999\n"]);
  assert.deepEqual(typesOf(table.columns), ["code string"]);
  assert.deepEqual(table.reasons, []);
});

Deno.test("inferTable reads every sample: a later file can turn a column into a string", () => {
  const table = inferTable(["id,v\n1,2\n", "id,v\n2,x\n"], { names: ["a.csv", "b.csv"] });
  assert.deepEqual(typesOf(table.columns), ["id bigint", "v string"]);
  assert.match(table.reasons.join("\n"), /column v: mixes bigint \("2"\) and string \("x"\)/);
});

Deno.test("inferTable ignores the record a sample cuts", () => {
  const table = inferTable(["id,amount\n1,10\n2,20\n3,1."]); // "1." may be the start of "1.5"
  assert.deepEqual(typesOf(table.columns), ["id bigint", "amount bigint"]);
  const cutInQuotes = inferTable(['id,amount\n1,10\n2,"x\n']);
  assert.deepEqual(typesOf(cutInQuotes.columns), ["id bigint", "amount bigint"]);
  assert.equal(cutInQuotes.quoted, false);
});

Deno.test("inferTable counts a last line without a line break when told the sample is the whole file", () => {
  const table = inferTable(["id,amount\n1,10\n2,x"], { wholeFiles: [true] });
  assert.deepEqual(typesOf(table.columns), ["id bigint", "amount string"]);
});

Deno.test("inferTable names hostile headers safely and logs each rename", () => {
  const header = HOSTILE_HEADERS.map((h) => `"${h.replaceAll('"', '""')}"`).join(",");
  const row = HOSTILE_HEADERS.map(() => "1").join(",");
  const table = inferTable([`${header}\n${row}\n`], { names: ["evil.csv"], target: "athena" });
  assert.deepEqual(table.columns.map((c) => c.source), HOSTILE_HEADERS);
  assert.deepEqual(table.columns.map((c) => c.name), columnIdentifiers(HOSTILE_HEADERS));
  assert.equal(table.quoted, false);
  const reasons = table.reasons.join("\n");
  assert.match(reasons, /the header of "evil\.csv" spans 2 lines/);
  assert.match(reasons, /only the header line is quoted/);
  assert.match(reasons, /column 1 "x\\"; DROP TABLE y; --" is named x_drop_table_y/);
  assert.match(reasons, /column 7 "名前" is named col_7/);
  assert.match(reasons, /column 9 "Name" is named name_2/);
  assert.doesNotMatch(reasons, /"name" is named/);
});

Deno.test("inferTable: headers that differ between files are an error naming both", () => {
  assert.throws(
    () => inferTable(["id,name\n1,a\n", "id,full_name\n2,b\n"], { names: ["a.csv", "b.csv"] }),
    {
      message:
        'the files have different headers: "a.csv" has ["id","name"] but "b.csv" has ["id","full_name"]',
    },
  );
  assert.throws(
    () => inferTable(["id,name\n1,a\n", "name,id\nb,2\n"]),
    {
      message: "the files have different headers (the same columns in another order): " +
        '"file 1" has ["id","name"] but "file 2" has ["name","id"]',
    },
  );
});

Deno.test("inferTable finds quoted fields, says why they need a quote-aware SerDe, warns of line breaks", () => {
  const table = inferTable(['id,note\n1,plain\n2,"a, b"\n3,"two\nlines"\n'], {
    names: ["q.csv"],
    target: "athena",
  });
  assert.equal(table.quoted, true);
  assert.deepEqual(table.reasons, [
    'quoted fields hold the delimiter ",", quotes or line breaks (first at "q.csv" line 3), so the table needs a ' +
    "quote-aware SerDe",
    '"q.csv" line 4: a quoted field holds a line break; Athena reads text files line by line, so such rows will be split',
  ]);
  const styled = inferTable(['"id","note"\n"1","x"\n'], { target: "athena" });
  assert.equal(styled.quoted, true);
  assert.deepEqual(styled.reasons, [
    'fields are written in quotes (first at "file 1" line 2); a quote-aware SerDe removes them',
  ]);
});

Deno.test("inferTable gives Athena's advice for Athena tables only: COPY reads quotes, line breaks, backslashes", () => {
  const sample = 'id,path,when\n1,"a, b",2020-01-01T00:00:00Z\n2,"two\nlines",2020-01-02T00:00:00Z\n' +
    "3,C:\\temp,2020-01-03T00:00:00Z,extra\n";
  const athena = inferTable([sample], { names: ["q.csv"], target: "athena" }).reasons.join("\n");
  const advice = [/SerDe/, /line by line/, /Athena ignores the extra fields/, /escape characters/, /Hive/];
  for (const said of advice) assert.match(athena, said);
  for (const target of ["postgres", "redshift", undefined] as const) {
    const table = inferTable([sample], { names: ["q.csv"], target });
    assert.equal(table.quoted, true); // the fact stays; only the advice goes
    assert.deepEqual(table.reasons, [
      '"q.csv" line 5 has 4 fields where the header has 3',
      'column when: values like "2020-01-01T00:00:00Z" are ISO-8601 timestamps; kept as a string (give `columns` ' +
      "to declare a timestamp type)",
    ], String(target));
  }
});

Deno.test("inferTable reads CRLF files with a BOM", () => {
  const table = inferTable(["\uFEFFid,when\r\n1,2020-01-01\r\n2,2020-01-02\r\n"]);
  assert.deepEqual(typesOf(table.columns), ["id bigint", "when date"]);
  assert.deepEqual(table.columns.map((c) => c.source), ["id", "when"]);
});

Deno.test("inferTable reads TSV with tabs, where commas are data", () => {
  const table = inferTable(["id\tnote\tprice\n1\ta, b\t1.5\n2\tc\t2\n"], { format: "tsv" });
  assert.equal(table.delimiter, "\t");
  assert.deepEqual(typesOf(table.columns), ["id bigint", "note string", "price double"]);
  assert.equal(table.quoted, false);
});

Deno.test("inferTable without a header names columns col_1 … and sizes them from the widest line", () => {
  const table = inferTable(["1,a\n2,b,true\n"], { header: false, names: ["h.csv"], target: "athena" });
  assert.deepEqual(typesOf(table.columns), ["col_1 bigint", "col_2 string", "col_3 boolean"]);
  assert.deepEqual(table.columns.map((c) => c.source), ["", "", ""]);
  assert.deepEqual(table.reasons, [
    "no header line: the columns are named col_1 … col_3",
    '"h.csv" line 1 has 2 fields where the widest line has 3; missing fields read as NULL',
  ]);
});

Deno.test("inferTable warns of lines wider or narrower than the header, and of headers that look like data", () => {
  const table = inferTable(["id,name\n1,a,extra\n2\n"], { names: ["w.csv"], target: "athena" });
  assert.deepEqual(table.reasons, [
    '"w.csv" line 2 has 3 fields where the header has 2; Athena ignores the extra fields',
  ]);
  const dataFirst = inferTable(["1,2020-01-01\n2,2020-01-02\n"], { names: ["d.csv"] });
  assert.match(
    dataFirst.reasons[0],
    /the first line of "d\.csv" looks like data \("1", "2020-01-01"\); pass header: false/,
  );
});

Deno.test("inferTable: backslashes stay as they are in unquoted files; quoted files are warned of OpenCSVSerde's escapes", () => {
  const table = inferTable(["path\nC:\\temp\n"], { target: "athena" });
  assert.deepEqual(table.reasons, [
    'column path: values like "C:\\\\temp" hold backslashes, read as they are (the table gets no ESCAPED BY)',
  ]);
  assert.equal(table.backslashes, true);
  const quoted = inferTable(['path,note\nC:\\temp,"a, b"\n'], { target: "athena" });
  assert.ok(
    quoted.reasons.includes(
      'column path: values like "C:\\\\temp" hold backslashes, which OpenCSVSerde (quoted fields) reads as ' +
        "escape characters (its escape character is \\)",
    ),
    quoted.reasons.join("\n"),
  );
  assert.equal(inferTable(["path\n/tmp\n"]).backslashes, false);
});

Deno.test("inferTable reads up to maxRows data rows per sample", () => {
  const table = inferTable(["id\n1\n2\nx\n"], { maxRows: 2 });
  assert.deepEqual(typesOf(table.columns), ["id bigint"]);
});

Deno.test("inferTable skips empty files and refuses samples without one complete line", () => {
  const table = inferTable(["", "\uFEFF", "id\n1\n"], { names: ["e1.csv", "e2.csv", "a.csv"] });
  assert.deepEqual(typesOf(table.columns), ["id bigint"]);
  assert.deepEqual(table.reasons.slice(0, 2), [
    '"e1.csv" is empty; it decides nothing',
    '"e2.csv" is empty; it decides nothing',
  ]);
  assert.throws(() => inferTable(["id,na"], { names: ["short.csv"] }), {
    message: 'the sample of "short.csv" (5 characters) holds no complete line; read a larger sample',
  });
  assert.throws(() => inferTable([""]), /every sampled file is empty/);
});

Deno.test("inferTable refuses parquet: its columns must be given", () => {
  assert.throws(() => inferTable(["PAR1"], { format: "parquet" }), {
    message:
      "parquet tables need `columns` (a name and type for each column): lakerun does not infer them from parquet files",
  });
});

Deno.test("inferTable can keep names within PostgreSQL's 63 bytes", () => {
  const table = inferTable([`${"c".repeat(100)}\n1\n`], { maxNameLength: 63 });
  assert.equal(table.columns[0].name, "c".repeat(63));
});

// ---------------------------------------------------------------------------------------------------------
// infer.ts: newline-delimited JSON

Deno.test("inferTable reads JSON lines: keys in first-seen order, numbers by their digits, nested as text", () => {
  const lines = [
    '{"id": 1, "Price": 1.5, "tags": ["a"], "big": 9223372036854775808, "day": "2020-02-29", "ok": true}',
    '{"id": 2, "Price": 2, "meta": {"a": 1}, "day": null, "note": "007", "ok": false}',
    "",
    '{"id": 3, "First Name": "Ann", "ok": null, "big": 1}',
    '{"id": "cut off',
  ];
  const table = inferTable([lines.join("\r\n")], { format: "json", names: ["j.json"], target: "athena" });
  assert.deepEqual(typesOf(table.columns), [
    "id bigint",
    "price double",
    "tags string",
    "big string",
    "day date",
    "ok boolean",
    "meta string",
    "note string",
    "first_name string",
  ]);
  assert.deepEqual(table.columns.map((c) => c.source), [
    "id",
    "Price",
    "tags",
    "big",
    "day",
    "ok",
    "meta",
    "note",
    "First Name",
  ]);
  assert.deepEqual(table.reasons, [
    'column 9 "First Name" is named first_name',
    'column names are lowercased (e.g. "Price" → price)',
    'column tags: holds nested JSON ("[\\"a\\"]"); declared string, which holds its JSON text (give `columns` with ' +
    "struct/array types to query inside it)",
    'column big: "9223372036854775808" does not fit a 64-bit integer or a double; kept as a string',
    'column meta: holds nested JSON ("{\\"a\\":1}"); declared string, which holds its JSON text (give `columns` with ' +
    "struct/array types to query inside it)",
  ]);
  assert.equal(table.header, false);
  assert.equal(table.quoted, false);
  assert.equal(table.delimiter, undefined);
});

Deno.test("inferTable for JSON keeps strings as strings unless they are dates or timestamps", () => {
  const table = inferTable([
    '{"n": "123", "b": "true", "d": "2020-01-01", "t": "2020-01-01 00:00:00", "i": "2020-01-01T00:00:00Z"}\n',
  ], {
    format: "json",
  });
  assert.deepEqual(typesOf(table.columns), ["n string", "b string", "d date", "t timestamp", "i string"]);
});

Deno.test("inferTable refuses JSON that is not one object per line, naming the file and line", () => {
  assert.throws(
    () => inferTable(['{"a": 1}\n{\n  "a": 2\n}\n'], { format: "json", names: ["p.json"] }),
    (error: Error) => {
      assert.match(
        error.message,
        /^"p\.json" line 2 is not a JSON value on one line \(the files must be newline-delimited JSON\): /,
      );
      return true;
    },
  );
  assert.throws(() => inferTable(["[1, 2]\n"], { format: "json", names: ["a.json"] }), {
    message: '"a.json" line 1 holds "[1,2]", not an object: each line must be one JSON object',
  });
  assert.throws(() => inferTable(['{"a"'], { format: "json" }), /no sampled file holds a complete JSON line/);
});

// ---------------------------------------------------------------------------------------------------------
// ddl.ts: Athena

Deno.test("athenaCreateTableSql: unquoted CSV, partitioned, with hostile names quoted", () => {
  const { sql, reasons } = athenaCreateTableSql({
    database: "lake`db",
    table: 'x"; DROP TABLE y; --',
    columns: [{ name: "id", type: "bigint" }, { name: "at", type: "timestamp" }, {
      name: "day",
      type: "date",
    }],
    partitionedBy: [{ name: "dt", type: "string" }],
    location: "s3://bucket/it's/",
    format: "csv",
    header: true,
    quoted: false,
    ifNotExists: true,
  });
  assert.equal(
    sql,
    [
      'CREATE EXTERNAL TABLE IF NOT EXISTS `lake``db`.`x"; DROP TABLE y; --` (',
      "  `id` bigint,",
      "  `at` timestamp,",
      "  `day` date",
      ")",
      "PARTITIONED BY (`dt` string)",
      "ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'",
      "STORED AS TEXTFILE",
      "LOCATION 's3://bucket/it\\'s/'",
      "TBLPROPERTIES ('skip.header.line.count'='1')",
    ].join("\n"),
  );
  assert.deepEqual(reasons, [
    "'skip.header.line.count'='1': the first line of each file is a header",
    "no quoted fields: LazySimpleSerDe (ROW FORMAT DELIMITED), which reads every column type",
  ]);
});

Deno.test("athenaCreateTableSql: quoted TSV uses OpenCSVSerde, declaring what it cannot parse as string", () => {
  const { sql, reasons, columns } = athenaCreateTableSql({
    database: "lake",
    table: "t",
    columns: [
      { name: "id", type: "bigint" },
      { name: "n", type: "bigint", emptyValues: true },
      { name: "ok", type: "boolean" },
      { name: "day", type: "date" },
      { name: "at", type: "timestamp" },
      { name: "note", type: "string", emptyValues: true },
    ],
    location: "s3://bucket/t/",
    format: "tsv",
    header: false,
    quoted: true,
  });
  assert.equal(
    sql,
    [
      "CREATE EXTERNAL TABLE `lake`.`t` (",
      "  `id` bigint,",
      "  `n` string,",
      "  `ok` boolean,",
      "  `day` string,",
      "  `at` string,",
      "  `note` string",
      ")",
      "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'",
      "WITH SERDEPROPERTIES ('separatorChar'='\\t', 'quoteChar'='\"', 'escapeChar'='\\\\')",
      "STORED AS TEXTFILE",
      "LOCATION 's3://bucket/t/'",
    ].join("\n"),
  );
  assert.deepEqual(reasons, [
    "quoted fields: OpenCSVSerde, which removes the quotes but parses only BOOLEAN, BIGINT, INT and DOUBLE",
    "column n is declared string, not bigint: it has empty values, which OpenCSVSerde does not read as NULL in a " +
    "bigint column (use TRY_CAST in queries)",
    "column day is declared string, not date: OpenCSVSerde cannot parse date (cast it in queries, e.g. CAST(day AS date))",
    "column at is declared string, not timestamp: OpenCSVSerde cannot parse timestamp (cast it in queries, e.g. " +
    "CAST(at AS timestamp))",
  ]);
  assert.deepEqual(typesOf(columns), [
    "id bigint",
    "n string",
    "ok boolean",
    "day string",
    "at string",
    "note string",
  ]);
});

Deno.test("athenaCreateTableSql: JSON maps keys that differ from their column names", () => {
  const table = inferTable(['{"URL": "a", "Url": "b", "id": 1, "First Name": "c"}\n'], { format: "json" });
  const { sql } = athenaCreateTableSql({ ...table, database: "lake", table: "j", location: "s3://b/j" });
  assert.equal(
    sql,
    [
      "CREATE EXTERNAL TABLE `lake`.`j` (",
      "  `url` string,",
      "  `url_2` string,",
      "  `id` bigint,",
      "  `first_name` string",
      ")",
      "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'",
      "WITH SERDEPROPERTIES ('case.insensitive'='FALSE', 'mapping.url'='URL', 'mapping.url_2'='Url', " +
      "'mapping.first_name'='First Name')",
      "STORED AS TEXTFILE",
      "LOCATION 's3://b/j/'",
    ].join("\n"),
  );
  const plain = athenaCreateTableSql({
    database: "lake",
    table: "j",
    columns: [{ name: "id", type: "bigint", source: "id" }],
    location: "s3://b/j/",
    format: "json",
  });
  assert.doesNotMatch(plain.sql, /SERDEPROPERTIES/);
});

Deno.test("athenaCreateTableSql: parquet with given columns, Hive types written back from their parse", () => {
  const { sql } = athenaCreateTableSql({
    database: "lake",
    table: "p",
    columns: [
      { name: "id", type: "BIGINT" },
      { name: "amount", type: "decimal( 10 , 2 )" },
      { name: "tags", type: "array<string>" },
      { name: "meta", type: "map<string,struct<a:integer,b:varchar(5)>>" },
    ],
    partitionedBy: [{ name: "year", type: "int" }, { name: "month", type: "int" }],
    location: "s3://b/p/",
    format: "parquet",
    header: true,
    quoted: true,
  });
  assert.equal(
    sql,
    [
      "CREATE EXTERNAL TABLE `lake`.`p` (",
      "  `id` bigint,",
      "  `amount` decimal(10,2),",
      "  `tags` array<string>,",
      "  `meta` map<string,struct<a:int,b:varchar(5)>>",
      ")",
      "PARTITIONED BY (`year` int, `month` int)",
      "STORED AS PARQUET",
      "LOCATION 's3://b/p/'",
    ].join("\n"),
  );
});

Deno.test("athenaCreateTableSql: end to end, a hostile CSV header never reaches the SQL as written", () => {
  const csv = '"x""; DROP TABLE y; --",`b`\n1,2\n';
  const table = inferTable([csv]);
  const { sql } = athenaCreateTableSql({ ...table, database: "lake", table: "t", location: "s3://b/t/" });
  assert.doesNotMatch(sql, /DROP|;|"/);
  assert.match(sql, /^ {2}`x_drop_table_y` bigint,\n {2}`b` bigint$/m);
});

Deno.test("athenaCreateTableSql refuses bad types, repeated columns, bad locations and delimiters", () => {
  const base = {
    database: "lake",
    table: "t",
    columns: [{ name: "id", type: "bigint" }],
    location: "s3://b/t/",
    format: "csv" as const,
  };
  assert.throws(
    () =>
      athenaCreateTableSql({ ...base, columns: [{ name: "id", type: "bigint) LOCATION 's3://evil/' --" }] }),
    /is not a Hive column type/,
  );
  assert.throws(
    () => athenaCreateTableSql({ ...base, partitionedBy: [{ name: "ID", type: "string" }] }),
    /column `ID` is declared twice/,
  );
  assert.throws(
    () => athenaCreateTableSql({ ...base, location: "/local/path" }),
    /must be an s3:\/\/bucket\/prefix\/ folder/,
  );
  assert.throws(
    () => athenaCreateTableSql({ ...base, delimiter: "||" }),
    /the delimiter must be one character/,
  );
});

Deno.test("hiveType accepts Hive's types and nothing else", () => {
  const valid: [string, string][] = [
    ["STRING", "string"],
    ["integer", "int"],
    ["decimal", "decimal"],
    ["decimal(38)", "decimal(38)"],
    ["char(3)", "char(3)"],
    ["struct< a : int , b : array<double> >", "struct<a:int,b:array<double>>"],
  ];
  for (const [type, written] of valid) assert.equal(hiveType(type), written);
  const invalid = [
    "",
    "int8",
    "varchar",
    "char(1,2)",
    "array<>",
    "map<string>",
    "struct<a int>",
    "struct<`a`:int>",
    "bigint,",
    "string -- x",
    "text",
  ];
  for (const type of invalid) assert.throws(() => hiveType(type), /is not a Hive column type/, type);
});

Deno.test("athenaAddPartitionsSql quotes names and values, and refuses what Athena could not run", () => {
  const sql = athenaAddPartitionsSql("lake", "t", [
    { values: { year: "2020", month: "09" }, location: "s3://b/t/year=2020/month=09" },
    { values: { year: "it's", month: "a\\" }, location: "s3://b/t/year=x/month=y/" },
  ]);
  assert.equal(
    sql,
    [
      "ALTER TABLE `lake`.`t` ADD IF NOT EXISTS",
      "  PARTITION (`year`='2020', `month`='09') LOCATION 's3://b/t/year=2020/month=09/'",
      "  PARTITION (`year`='it\\'s', `month`='a\\\\') LOCATION 's3://b/t/year=x/month=y/'",
    ].join("\n"),
  );
  assert.throws(() => athenaAddPartitionsSql("lake", "t", []), /there are no partitions to add/);
  assert.throws(
    () => athenaAddPartitionsSql("lake", "t", [{ values: {}, location: "s3://b/t/" }]),
    /has no values/,
  );
  const many = Array.from(
    { length: 5000 },
    (_, i) => ({ values: { dt: `day-${i}` }, location: `s3://b/t/dt=day-${i}/` }),
  );
  assert.throws(() => athenaAddPartitionsSql("lake", "t", many), /over Athena's 262144; add them in batches/);
});

Deno.test("partitionsFromKeys finds distinct Hive-style partitions and ignores other keys", () => {
  const keys = [
    "t/dt=2020-09-30/part-0.csv",
    "t/dt=2020-09-30/part-1.csv",
    "t/dt=2020-10-01/sub/part-0.csv",
    "t/dt=2020-10-02 10%3A00/part-0.csv",
    "t/dt=/part-0.csv",
    "t/dt=2020-10-03/",
    "t/_SUCCESS",
    "t/other=1/part-0.csv",
    "other/dt=2020-09-30/part-0.csv",
    "tx/dt=2020-09-30/part-0.csv",
  ];
  assert.deepEqual(partitionsFromKeys("s3://b/t", keys, ["dt"]), [
    { values: { dt: "2020-09-30" }, location: "s3://b/t/dt=2020-09-30/" },
    { values: { dt: "2020-10-01" }, location: "s3://b/t/dt=2020-10-01/" },
    { values: { dt: "2020-10-02 10:00" }, location: "s3://b/t/dt=2020-10-02 10%3A00/" },
  ]);
});

Deno.test("partitionsFromKeys reads nested partitions only in the order of the partition columns", () => {
  const keys = [
    "t/year=2020/month=09/a.csv",
    "t/month=09/year=2020/b.csv",
    "t/year=2021/c.csv",
    "t/year=2021/month=01/d.csv",
  ];
  const partitions = partitionsFromKeys("s3://b/t/", keys, ["year", "month"]);
  assert.deepEqual(partitions, [
    { values: { year: "2020", month: "09" }, location: "s3://b/t/year=2020/month=09/" },
    { values: { year: "2021", month: "01" }, location: "s3://b/t/year=2021/month=01/" },
  ]);
  assert.deepEqual(Object.keys(partitions[0].values), ["year", "month"]);
  assert.deepEqual(partitionsFromKeys("s3://b", ["dt=1/a.csv"], ["dt"]), [{
    values: { dt: "1" },
    location: "s3://b/dt=1/",
  }]);
  assert.throws(() => partitionsFromKeys("b/t", keys, ["year"]), /must be an s3:\/\/bucket\/prefix\/ folder/);
  assert.throws(() => partitionsFromKeys("s3://b/t", keys, []), /at least one partition column/);
});

// ---------------------------------------------------------------------------------------------------------
// ddl.ts: PostgreSQL and Redshift

Deno.test("sqlCreateTable maps types for PostgreSQL and Redshift", () => {
  const columns = ["bigint", "double", "boolean", "date", "timestamp", "string"].map((type) => ({
    name: `c_${type}`,
    type,
  }));
  assert.equal(
    sqlCreateTable({ dialect: "postgres", schema: "public", table: "T", columns }),
    [
      'CREATE TABLE "public"."T" (',
      '  "c_bigint" bigint,',
      '  "c_double" double precision,',
      '  "c_boolean" boolean,',
      '  "c_date" date,',
      '  "c_timestamp" timestamp,',
      '  "c_string" text',
      ")",
    ].join("\n"),
  );
  assert.match(
    sqlCreateTable({ dialect: "redshift", schema: "raw", table: "t", columns }),
    /"c_string" varchar\(65535\)\n\)$/,
  );
});

Deno.test("sqlCreateTable quotes hostile names and accepts only known types", () => {
  const sql = sqlCreateTable({
    dialect: "postgres",
    schema: 'a"b',
    table: "x; DROP TABLE y",
    columns: [{ name: 'q"', type: "Numeric( 10, 2 )" }, { name: "v", type: "character  varying(20)" }],
    ifNotExists: true,
  });
  assert.equal(
    sql,
    'CREATE TABLE IF NOT EXISTS "a""b"."x; DROP TABLE y" (\n  "q""" numeric(10,2),\n  "v" character varying(20)\n)',
  );
  assert.equal(
    sqlCreateTable({
      dialect: "redshift",
      schema: "s",
      table: "t",
      columns: [{ name: "v", type: "varchar(max)" }],
    }),
    'CREATE TABLE "s"."t" (\n  "v" varchar(max)\n)',
  );
  // each database's own names, as its catalog shows them too, written back in one spelling
  const declared = (dialect: "postgres" | "redshift", types: string[]) =>
    sqlCreateTable({
      dialect,
      schema: "s",
      table: "t",
      columns: types.map((type, i) => ({ name: `c${i}`, type })),
    })
      .split("\n").slice(1, -1).map((line) => line.replace(/^ {2}"c\d+" |,$/g, ""));
  assert.deepEqual(
    declared("postgres", [
      "Double Precision",
      "float8",
      "jsonb",
      "uuid",
      "varchar",
      "timestamp (3) WITH time zone",
    ]),
    ["double precision", "float8", "jsonb", "uuid", "varchar", "timestamp(3) with time zone"],
  );
  assert.deepEqual(
    declared("redshift", [
      "double precision",
      "character varying(256)",
      "timestamp without time zone",
      "super",
    ]),
    ["double precision", "character varying(256)", "timestamp without time zone", "super"],
  );
  for (const type of ["jsonb", "uuid", "timestamp(3)", "varchar(256) encode zstd"]) {
    assert.throws(
      () => sqlCreateTable({ dialect: "redshift", schema: "s", table: "t", columns: [{ name: "v", type }] }),
      /is not a column type lakerun declares in redshift/,
      type,
    );
  }
  for (
    const type of [
      "varchar(max)",
      "bigint primary key",
      "text); DROP TABLE x; --",
      "int8[]",
      "serial",
      "constructor",
      "numeric(10,2",
      "timestamp with time",
      "double precision precision",
    ]
  ) {
    assert.throws(
      () => sqlCreateTable({ dialect: "postgres", schema: "s", table: "t", columns: [{ name: "v", type }] }),
      /is not a column type lakerun declares in postgres/,
      type,
    );
  }
});

Deno.test("sqlCreateTable refuses names PostgreSQL would cut, repeated columns, schemas of temporary tables", () => {
  const long = "n".repeat(64);
  assert.throws(
    () =>
      sqlCreateTable({
        dialect: "postgres",
        schema: "s",
        table: "t",
        columns: [{ name: long, type: "bigint" }],
      }),
    /is 64 bytes; postgres keeps only 63 and would silently cut it/,
  );
  assert.doesNotThrow(() =>
    sqlCreateTable({
      dialect: "redshift",
      schema: "s",
      table: "t",
      columns: [{ name: long, type: "bigint" }],
    })
  );
  assert.throws(
    () =>
      sqlCreateTable({
        dialect: "redshift",
        schema: "s",
        table: "é".repeat(64),
        columns: [{ name: "a", type: "bigint" }],
      }),
    /is 128 bytes; redshift keeps only 127/,
  );
  assert.throws(
    () =>
      sqlCreateTable({
        dialect: "postgres",
        schema: "s",
        table: "t",
        columns: [{ name: "a", type: "bigint" }, { name: "a", type: "string" }],
      }),
    /column `a` is declared twice/,
  );
  assert.throws(
    () => sqlCreateTable({ dialect: "postgres", schema: "s", table: "t", columns: [], temporary: true }),
    /a temporary table lives in the session's own schema: omit schema "s"/,
  );
  assert.throws(
    () => sqlCreateTable({ dialect: "postgres", table: "t", columns: [] }),
    /table `t` needs a schema/,
  );
});

// ---------------------------------------------------------------------------------------------------------
// ddl.ts: schema drift

Deno.test("schemaDrift is empty when types agree under their aliases", () => {
  const table = [
    { name: "a", type: "INT8" },
    { name: "b", type: "float8" },
    { name: "c", type: "character varying(256)" },
    { name: "d", type: "timestamp without time zone" },
    { name: "e", type: "bool" },
    { name: "f", type: "numeric(10, 2)" },
    { name: "g", type: "varchar(65535)" },
    // as format_type shows what sqlCreateTable declared for the types below
    { name: "h", type: "character(3)" },
    { name: "i", type: "timestamp(3) with time zone" },
    { name: "j", type: "time without time zone" },
    { name: "k", type: "timestamp with time zone" },
  ];
  const files = [
    { name: "a", type: "bigint" },
    { name: "b", type: "double" },
    { name: "c", type: "string" },
    { name: "d", type: "timestamp" },
    { name: "e", type: "boolean" },
    { name: "f", type: "decimal(10,2)" },
    { name: "g", type: "text" },
    { name: "h", type: "char(3)" },
    { name: "i", type: "timestamptz(3)" },
    { name: "j", type: "time" },
    { name: "k", type: "timestamptz" },
  ];
  assert.deepEqual(schemaDrift(table, files), []);
  assert.deepEqual(
    schemaDrift([{ name: "p", type: "double precision" }], [{ name: "p", type: "double" }]),
    [],
  );
});

Deno.test("schemaDrift lists every difference, order included for positional formats", () => {
  const table = [
    { name: "id", type: "bigint" },
    { name: "x", type: "bigint" },
    { name: "z", type: "date" },
    { name: "w", type: "int" },
  ];
  const files = [
    { name: "x", type: "string" },
    { name: "id", type: "bigint" },
    { name: "y", type: "date" },
    { name: "w", type: "bigint" },
    { name: "odd name", type: "string" },
  ];
  assert.deepEqual(schemaDrift(table, files), [
    "column `x`: table has bigint, files have string",
    "files have a column `y` the table lacks",
    "column `w`: table has int, files have bigint",
    'files have a column "odd name" the table lacks',
    "table has a column `z` the files lack",
    "columns are in another order: table has (`id`, `x`, `w`), files have (`x`, `id`, `w`)",
  ]);
  assert.deepEqual(schemaDrift(table, files, { positional: false }).length, 5);
  assert.deepEqual(schemaDrift(table.slice(0, 2), [table[1], table[0]], { positional: false }), []);
});

Deno.test("schemaDrift compares the columns a CREATE declares (OpenCSVSerde turns dates into strings)", () => {
  const table = inferTable(['id,day\n1,"2020-01-01"\n']);
  const created = athenaCreateTableSql({ ...table, database: "lake", table: "t", location: "s3://b/t/" });
  const existing = [{ name: "id", type: "bigint" }, { name: "day", type: "string" }];
  assert.deepEqual(schemaDrift(existing, created.columns), []);
  assert.deepEqual(schemaDrift(existing, table.columns), ["column `day`: table has string, files have date"]);
});

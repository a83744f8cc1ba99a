/**
 * Secret values never reach what lakerun prints or stores: every line of output, every error, the plan, the
 * run records and the job summary pass through one {@link SecretMask} holding the values of the routine's
 * `secrets.*`, which replaces each occurrence with `***`.
 *
 * @module
 */

/** The secret values of one run, and the masking of text that may contain them. */
export class SecretMask {
  #values: string[] = [];
  /** Each value's forms ({@link secretForms}), worked out once: masking runs on every line printed. */
  #forms = new Map<string, string[]>();

  /** Registers a secret value (values shorter than 4 characters are refused: they would mask ordinary text). */
  add(value: string): void {
    if (value.length < 4) throw new Error("a secret must have at least 4 characters to be masked");
    if (!this.#values.includes(value)) {
      this.#values.push(value);
      this.#forms.set(value, secretForms(value));
      this.#values.sort((a, b) => b.length - a.length); // longest first: a value inside another is masked whole
    }
  }

  /** The registered values (for `::add-mask::`), longest first. */
  get values(): readonly string[] {
    return this.#values;
  }

  /**
   * The registered values that occur in `value` (in any string it holds, as written or JSON-escaped): the
   * secrets a step's params hold, which its tasks may mask themselves ({@link SecretMask.mask} before shortening
   * text, since a secret cut in two is no longer recognised).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SecretMask } from "./mask.ts";
   *
   * const mask = new SecretMask();
   * mask.add("s3cr3t-token");
   * mask.add("other-secret");
   * assert.deepEqual(mask.valuesIn({ sql: "ALTER ROLE r PASSWORD 's3cr3t-token'" }), ["s3cr3t-token"]);
   * assert.deepEqual(mask.valuesIn({ sql: "SELECT 1" }), []);
   * ```
   */
  valuesIn(value: unknown): string[] {
    const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
    return this.#values.filter((secret) => this.#forms.get(secret)!.some((form) => text.includes(form)));
  }

  /**
   * `text` with every registered value replaced by `***`, as written and in the forms text carries it in:
   * JSON-escaped, percent-encoded as a URL's path, query, fragment or form data encode it, and as a host name
   * (lower case, punycode): a secret templated into a URL is shown in messages as the URL parser wrote it.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SecretMask } from "./mask.ts";
   *
   * const mask = new SecretMask();
   * mask.add("s3cr3t-token");
   * assert.equal(mask.mask("Authorization: s3cr3t-token"), "Authorization: ***");
   * assert.equal(mask.mask("nothing to hide"), "nothing to hide");
   * mask.add("p@ss w/rd%+é");
   * assert.equal(mask.mask(new URL("http://h/x/p@ss w/rd%+é.zip").href), "http://h/x/***.zip");
   * assert.equal(mask.mask(`?key=${encodeURIComponent("p@ss w/rd%+é")}`), "?key=***");
   * assert.equal(mask.mask(`?${new URLSearchParams({ key: "p@ss w/rd%+é" })}`), "?key=***");
   * mask.add("a'b {c} é");
   * assert.equal(mask.mask(new URL("https://h/x?key=a'b {c} é#a'b {c} é").href), "https://h/x?key=***#***");
   * mask.add("Sup3rS3cretHost");
   * assert.equal(mask.mask(new URL("http://Sup3rS3cretHost.example/a.zip").host), "***.example");
   * mask.add("Tënant-Ω");
   * assert.equal(mask.mask(new URL("http://Tënant-Ω.example/").host), "***.example");
   * ```
   */
  mask(text: string): string {
    let masked = text;
    for (const value of this.#values) masked = this.#maskOne(masked, value);
    return masked;
  }

  #maskOne(text: string, value: string): string {
    let masked = text;
    for (const form of this.#forms.get(value)!) masked = masked.split(form).join("***");
    return masked;
  }
}

/** A secret's forms, longest first: as written, JSON-escaped, and percent-encoded the ways URLs encode it. */
function secretForms(value: string): string[] {
  const forms = new Set([value, JSON.stringify(value).slice(1, -1)]);
  try {
    forms.add(encodeURIComponent(value));
    forms.add(encodeURI(value));
    forms.add(new URLSearchParams({ v: value }).toString().slice(2));
    const url = new URL("http://h/");
    url.pathname = `/${value}`;
    forms.add(url.pathname.slice(1));
    url.search = `?${value}`; // the URL parser's own query encoding (' as %27, { kept)
    forms.add(url.search.slice(1));
    url.hash = `#${value}`;
    forms.add(url.hash.slice(1));
    // in a URL's host, the parser writes it in lower case (and punycode): only for a value that is one host
    // label or name, so that no part of a longer value (`user@host`) is taken for it
    if (/^[^\s/\\:@?#[\]%]+$/.test(value)) {
      url.host = value;
      if (url.hostname !== "h") forms.add(url.hostname);
      forms.add(value.toLowerCase());
    }
  } catch {
    // a lone surrogate cannot be percent-encoded: it cannot appear encoded either
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

/**
 * Text that gives a secret away by its shape: a `name=value` (or `name: value`, `NAME 'value'`) whose name
 * says password, secret, token, credentials or key (`password=…`, `aws_secret_access_key=…`,
 * `"password": …`, `CREDENTIALS '…'`, `ACCESS_KEY_ID '…'`), a URL with a password, an AWS access key id,
 * a bearer token or a private key.
 */
const CREDENTIAL_NAME =
  /(?:pass(?:word|wd)?|pwd|secret|token|credentials?|api[_-]?key|access[_-]?key(?:[_-]?id)?|private[_-]?key)/;
const CREDENTIAL_SHAPES = [
  new RegExp(`${CREDENTIAL_NAME.source}["']?\\s*(?:[=:]|\\s+')`, "i"),
  /[a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:[^\s/@]+@/i,
  /\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/,
  /\bbearer\s+[A-Za-z0-9._~+/-]{8,}/i,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
];

/**
 * True when `value` (a string, or any string inside an array or object) looks like it holds a credential:
 * messages about such a value name where it is and what is wrong, and never quote it, whether or not it is
 * a registered secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { looksLikeCredential } from "./mask.ts";
 *
 * assert.equal(looksLikeCredential("host=127.0.0.1 password=s3cr3tPW"), true);
 * assert.equal(looksLikeCredential(["CREDENTIALS 'aws_access_key_id=AKIA;aws_secret_access_key=x'"]), true);
 * assert.equal(looksLikeCredential("ACCESS_KEY_ID 'AKIAIOSFODNN7EXAMPLE'"), true);
 * assert.equal(looksLikeCredential('{"username":"loader","password":"hunter22"}'), true);
 * assert.equal(looksLikeCredential("postgres://loader:hunter22@db/lake"), true);
 * assert.equal(looksLikeCredential({ password: "hunter22" }), true);
 * assert.equal(looksLikeCredential("DATEFORMAT 'auto'"), false);
 * assert.equal(looksLikeCredential("s3://lake/secret_reports/"), false);
 * ```
 */
export function looksLikeCredential(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return CREDENTIAL_SHAPES.some((shape) => shape.test(text));
}

/**
 * What {@link redactCredentials} replaces, each with what it keeps: a named value (`password=…`,
 * `"token": "…"`, `PASSWORD '…'`, `CREDENTIALS '…'`; a quote left open, as in a statement cut short, runs to
 * the end), a URL's password, an AWS access key id, a bearer token and a private key.
 */
const CREDENTIAL_VALUES: Array<[RegExp, (match: string, ...groups: string[]) => string]> = [
  [
    new RegExp(
      `(${CREDENTIAL_NAME.source}["']?(?:\\s*[=:]\\s*|\\s+(?=['$]|[Ee]')))` +
        // a value masked already (a message composed from masked text) is left as it is
        `(?![Ee]?['"]?\\*\\*\\*)` +
        // SQL's E'…' and $$…$$ / $tag$…$tag$ literals, '…', "…", a bare word
        `([Ee]'(?:[^'\\\\]|\\\\.|'')*'?|\\$\\w*\\$[\\s\\S]*?(?:\\$\\w*\\$|$)|'(?:[^']|'')*'?|"(?:[^"\\\\]|\\\\.)*"?|[^\\s,;&'"()]+)`,
      "gi",
    ),
    (_, name, value) =>
      `${name}${
        value[0] === "'" || /^E'/i.test(value)
          ? "'***'"
          : value[0] === '"'
          ? '"***"'
          : value[0] === "$"
          ? "$$***$$"
          : "***"
      }`,
  ],
  [/([a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:)[^\s/@]+@/gi, (_, start) => `${start}***@`],
  [/\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b/g, () => "***"],
  [/\b(bearer\s+)[A-Za-z0-9._~+/-]{8,}=*/gi, (_, bearer) => `${bearer}***`],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, () => "***"],
];

/**
 * `text` with every credential {@link looksLikeCredential} recognises replaced by `***`, the rest kept: for
 * text lakerun shows but did not write, such as a statement's first words and a database's error message
 * (`ALTER ROLE r PASSWORD '…'` failed; `invalid input syntax: "postgres://u:…@h/db"`), whether or not
 * the credential is a registered secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactCredentials } from "./mask.ts";
 *
 * assert.equal(redactCredentials("ALTER ROLE r PASSWORD 'Hunter2''s'"), "ALTER ROLE r PASSWORD '***'");
 * assert.equal(redactCredentials("ALTER ROLE r PASSWORD 'Hunter2S…"), "ALTER ROLE r PASSWORD '***'");
 * assert.equal(redactCredentials("ALTER ROLE r PASSWORD $$Hunter2$$ x"), "ALTER ROLE r PASSWORD $$***$$ x");
 * assert.equal(redactCredentials("ALTER ROLE r PASSWORD $pw$Hunter2$pw$"), "ALTER ROLE r PASSWORD $$***$$");
 * assert.equal(redactCredentials("ALTER ROLE r PASSWORD E'Hunter\\'2'"), "ALTER ROLE r PASSWORD '***'");
 * // masked text said again (a message composed from a cut excerpt): the rest of it stays
 * assert.equal(
 *   redactCredentials("(line 1, ALTER ROLE r WITH PASSWORD '***…) failed: role \"r\" does not exist"),
 *   "(line 1, ALTER ROLE r WITH PASSWORD '***…) failed: role \"r\" does not exist",
 * );
 * assert.equal(
 *   redactCredentials('invalid input syntax for type integer: "postgres://u:Hunter5@h/db"'),
 *   'invalid input syntax for type integer: "postgres://u:***@h/db"',
 * );
 * assert.equal(redactCredentials("host=db password=s3cr3t user=x"), "host=db password=*** user=x");
 * assert.equal(redactCredentials("password=pa$$word!"), "password=***");
 * assert.equal(redactCredentials('{"password": "hunter22"}'), '{"password": "***"}');
 * assert.equal(redactCredentials("CREDENTIALS 'aws_access_key_id=AKIA;x=y'"), "CREDENTIALS '***'");
 * assert.equal(redactCredentials("key AKIAIOSFODNN7EXAMPLE used"), "key *** used");
 * assert.equal(redactCredentials("Authorization: Bearer abcdefgh1234"), "Authorization: Bearer ***");
 * assert.equal(redactCredentials('relation "secret_reports" does not exist'), 'relation "secret_reports" does not exist');
 * ```
 */
export function redactCredentials(text: string): string {
  let redacted = text;
  for (const [shape, replacement] of CREDENTIAL_VALUES) {
    redacted = redacted.replace(shape, replacement as (match: string, ...groups: any[]) => string);
  }
  return redacted;
}

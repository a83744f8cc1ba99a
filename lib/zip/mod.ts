/**
 * Streaming ZIP extraction that treats every archive as hostile.
 *
 * {@link extractZipStream} parses local file headers as the bytes arrive and inflates each entry while it
 * downloads; {@link extractZipFile} reads a local file with random access (central directory first) and is the
 * fallback for archives that cannot be delimited while streaming ({@link ZipNeedsRandomAccess}).
 *
 * Both refuse, naming the entry: unsafe names (the rules of `relativePathProblem` in `storage.ts`, plus
 * lakerun's temporary names, and entries inside `.git`, `.hg` or `.svn` folders unless `allowVcsMetadata`), duplicate names (exact, or equal after Unicode NFC normalisation), a file whose
 * name is also a parent folder of another entry (`a` and `a/b`), symbolic links, encrypted entries,
 * compression methods other than STORED (0), DEFLATE (8), and those with decoders of lakerun's own: Deflate64
 * (9), BZip2 (12), and PKZIP 1.x's Shrink (1) and Implode (6), which unzip still extracts (LZMA, PPMd, XZ
 * and others are refused, as unzip refuses them), CRC-32 or size mismatches, and any disagreement
 * between the local headers and the central directory (entries present in one but not the other, other
 * names, sizes, CRCs or methods, gaps or overlaps between entries, zip records after the end).
 *
 * Both accept what unzip accepts: `.` segments in names (`./a.csv` is `a.csv`), a FIFO or device mode on a
 * file entry (a file with data is a file), up to 64 KiB of bytes holding no zip record after the end record
 * (a newline, padding), and (the file API; streaming throws {@link ZipNeedsRandomAccess}) a self-extracting
 * stub before the archive, with or without adjusted offsets. Directory entries are handed to the sink's
 * optional `makeFolder`; small entries (up to 1 MiB) to its optional `writeEntryBytes`, inflated with one
 * call. A sink's own failure is rethrown as a {@link ZipError} naming the entry.
 *
 * Entry names are UTF-8 when general-purpose flag bit 11 is set; otherwise the Info-ZIP Unicode Path extra
 * field (0x7075) is used when its CRC matches the raw name; else the raw bytes are read as UTF-8 when they
 * are valid UTF-8 (Info-ZIP `zip` on Linux writes UTF-8 names without the flag), and otherwise mapped through
 * code page 437, the ZIP specification's default. Bytes below 0x80 are ASCII either way, so NUL, `\` and
 * `/` stay what they are and are validated as such.
 *
 * Sink contract: a {@link ZipEntrySink} must only make entries visible once the whole extraction has
 * succeeded (stage, then commit: see `WriteBatch` in `storage.ts`). In streaming mode some checks can only
 * run at the end: symbolic links (local headers carry no file mode; it is in the central directory's external
 * attributes) and the central-directory cross-checks. An entry's data stream errors instead of closing when
 * its CRC-32 or size is wrong, so a sink that reads to the end never mistakes bad data for a complete file.
 *
 * @module
 */

export { extractZipFile } from "./file.ts";
export { extractZipStream } from "./stream.ts";
export { ZipError, ZipNeedsRandomAccess } from "./errors.ts";
export { VCS_FOLDERS, VCS_REFUSAL, vcsFolderOf } from "./names.ts";
export type { EntryWriter, ZipEntrySink, ZipLimits, ZipSummary } from "./types.ts";

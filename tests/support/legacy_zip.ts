/**
 * Encoders for PKZIP 1.x's Shrink (method 1) and Implode (method 6), written after PKWARE's APPNOTE, to make
 * test archives no tool on Debian writes any more. Tests check that unzip extracts what they make to the bytes
 * given, so the fixtures are valid whatever lakerun's decoders do.
 *
 * @module
 */

/** Packs bits least significant first, as both methods do. */
class BitWriter {
  readonly bytes: number[] = [];
  #buffer = 0;
  #count = 0;
  /** Appends the `n` low bits of `value`, lowest first. */
  bits(value: number, n: number): void {
    for (let i = 0; i < n; i++) {
      this.#buffer |= ((value >>> i) & 1) << this.#count;
      if (++this.#count === 8) this.flush();
    }
  }
  /** Appends an `n`-bit code most significant bit first (as Shannon-Fano codes are sent). */
  code(value: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.bits((value >>> i) & 1, 1);
  }
  flush(): void {
    if (this.#count === 0) return;
    this.bytes.push(this.#buffer);
    this.#buffer = 0;
    this.#count = 0;
  }
  done(): Uint8Array {
    this.flush();
    return Uint8Array.from(this.bytes);
  }
}

/**
 * Shrinks `data`: LZW codes of 9 bits growing to 13 (escape 256, 1), and partial clears (escape 256, 2)
 * whenever the code table fills, made right after a byte's own code so that the code being extended is never
 * cleared. Code assignment follows the decoder exactly (the lowest free code above the last one assigned since
 * the last clear; a clear frees the codes up to that one which none of them extends).
 */
export function shrink(data: Uint8Array): Uint8Array {
  const CODES = 8192;
  const FREE = -1;
  const out = new BitWriter();
  const parent = new Int32Array(CODES).fill(FREE);
  const last = new Uint8Array(CODES);
  const child = new Map<number, number>(); // parent * 256 + byte → code
  let size = 9;
  let lastDefined = 256;
  let previous = -1;
  const nextFree = () => {
    let next = lastDefined + 1;
    while (next < CODES && parent[next] !== FREE) next++;
    return next;
  };
  const emit = (code: number) => {
    while (code >= 1 << size) {
      out.bits(256, size);
      out.bits(1, size);
      size++;
    }
    out.bits(code, size);
  };
  let pos = 0;
  while (pos < data.length) {
    let free = previous < 0 ? CODES : nextFree();
    if (free === CODES && previous >= 0) {
      // full: clear (the previous code is a byte, see below), as the decoder does
      emit(256);
      out.bits(2, size);
      const extended = new Uint8Array(CODES);
      for (let c = 257; c <= lastDefined; c++) if (parent[c] > 256) extended[parent[c]] = 1;
      for (let c = 257; c <= lastDefined; c++) {
        if (!extended[c] && parent[c] !== FREE) {
          if (child.get(parent[c] * 256 + last[c]) === c) child.delete(parent[c] * 256 + last[c]);
          parent[c] = FREE;
        }
      }
      lastDefined = 256;
      free = nextFree();
      if (free === CODES) throw new Error("shrink: a partial clear freed nothing");
    }
    // the longest string the table has (a single byte when the table is about to fill)
    let code = data[pos];
    let length = 1;
    const room = previous < 0 ? 2 : (() => {
      let n = 0;
      for (let c = free; c < CODES && n < 2; c++) if (parent[c] === FREE) n++;
      return n;
    })();
    if (room > 1) {
      while (pos + length < data.length) {
        const next = child.get(code * 256 + data[pos + length]);
        if (next === undefined) break;
        code = next;
        length++;
      }
    }
    emit(code);
    if (previous >= 0) {
      lastDefined = free;
      parent[free] = previous;
      last[free] = data[pos];
      child.set(previous * 256 + data[pos], free);
    }
    previous = code;
    pos += length;
  }
  return out.done();
}

/**
 * Bit lengths of complete Shannon-Fano trees with codes of several lengths and ties between symbols, for the
 * three trees of Implode: 256 literals (7, 8 or 9 bits), 64 lengths and 64 distances (1 to 10 bits, the
 * short codes at opposite ends).
 */
const LITERAL_LENGTHS = Array.from({ length: 256 }, (_, s) => (s % 4 === 0 ? 7 : s % 4 === 1 ? 8 : 9));
const LENGTH_LENGTHS = Array.from(
  { length: 64 },
  (_, s) => (s < 4 ? s + 1 : [10, 20, 30, 40].includes(s) ? 9 : 10),
);
const DISTANCE_LENGTHS = LENGTH_LENGTHS.toReversed();

/** The Shannon-Fano codes of `lengths` by APPNOTE 5.3.7, as `length`-bit values sent most significant first. */
function shannonFanoCodes(lengths: number[]): number[] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const codes = new Array<number>(lengths.length);
  let code = 0;
  let increment = 0;
  let lastLength = 0;
  for (let i = order.length - 1; i >= 0; i--) {
    const length = lengths[order[i]];
    code += increment;
    if (length !== lastLength) {
      lastLength = length;
      increment = 1 << (16 - length);
    }
    codes[order[i]] = code >>> (16 - length);
  }
  return codes;
}

/** A tree as Implode stores it: the number of run bytes less one, then (count - 1) << 4 | (length - 1) each. */
function storedTree(lengths: number[]): number[] {
  const runs: number[] = [];
  for (let i = 0; i < lengths.length;) {
    let n = 1;
    while (n < 16 && i + n < lengths.length && lengths[i + n] === lengths[i]) n++;
    runs.push(((n - 1) << 4) | (lengths[i] - 1));
    i += n;
  }
  return [runs.length - 1, ...runs];
}

/**
 * Implodes `data` with a greedy LZ77 search: `window8k` sets general purpose flag bit 1 (8 KiB window, 7 low
 * distance bits), `literalTree` bit 2 (literals coded with a third tree; matches of 3 bytes or more, else 2).
 * Returns the compressed bytes and the flags to write.
 */
export function implode(
  data: Uint8Array,
  options: { window8k: boolean; literalTree: boolean },
): { compressed: Uint8Array; flags: number } {
  const out = new BitWriter();
  const window = options.window8k ? 8192 : 4096;
  const lowBits = options.window8k ? 7 : 6;
  const minimum = options.literalTree ? 3 : 2;
  const literalCodes = shannonFanoCodes(LITERAL_LENGTHS);
  const lengthCodes = shannonFanoCodes(LENGTH_LENGTHS);
  const distanceCodes = shannonFanoCodes(DISTANCE_LENGTHS);
  const trees = [
    ...(options.literalTree ? storedTree(LITERAL_LENGTHS) : []),
    ...storedTree(LENGTH_LENGTHS),
    ...storedTree(DISTANCE_LENGTHS),
  ];
  for (const byte of trees) out.bits(byte, 8);
  const sendLength = (symbol: number) => out.code(lengthCodes[symbol], LENGTH_LENGTHS[symbol]);
  const recent = new Map<number, number>(); // three bytes → the last position they started at
  const key = (at: number) => data[at] << 16 | data[at + 1] << 8 | data[at + 2];
  for (let pos = 0; pos < data.length;) {
    let best = 0;
    let distance = 0;
    if (pos + 2 < data.length) {
      const start = recent.get(key(pos));
      if (start !== undefined && pos - start <= window) {
        let n = 0;
        const limit = Math.min(data.length - pos, minimum + 63 + 255);
        while (n < limit && data[start + n] === data[pos + n]) n++;
        if (n >= minimum) [best, distance] = [n, pos - start];
      }
    }
    if (best === 0) {
      out.bits(1, 1);
      if (options.literalTree) out.code(literalCodes[data[pos]], LITERAL_LENGTHS[data[pos]]);
      else out.bits(data[pos], 8);
      best = 1;
    } else {
      out.bits(0, 1);
      out.bits((distance - 1) & ((1 << lowBits) - 1), lowBits);
      const high = (distance - 1) >> lowBits;
      out.code(distanceCodes[high], DISTANCE_LENGTHS[high]);
      const length = best - minimum;
      if (length >= 63) {
        sendLength(63);
        out.bits(length - 63, 8);
      } else sendLength(length);
    }
    for (let i = 0; i < best; i++) if (pos + i + 2 < data.length) recent.set(key(pos + i), pos + i);
    pos += best;
  }
  return { compressed: out.done(), flags: (options.window8k ? 2 : 0) | (options.literalTree ? 4 : 0) };
}

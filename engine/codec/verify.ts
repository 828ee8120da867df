import { CodecError } from './errors.js';
import { TableFields } from './generated/layout.js';

/**
 * A schema-driven FlatBuffers verifier for EventBatch messages that may sit at any (odd) offset
 * inside a larger slab. FlatBuffers readers trust their input; this walk checks every offset,
 * vtable, string and vector bound the reader will later follow, so the reader can stay unchecked
 * and allocation-free. Offsets to children are unsigned and forward (uoffset), so the walk always
 * terminates; its cost is linear in the message size.
 *
 * It never throws anything but CodecError.
 */

export const FILE_IDENTIFIER = 'RTA1';
const ID0 = 0x52, ID1 = 0x54, ID2 = 0x41, ID3 = 0x31; // "RTA1"

/** Kinds <= K_SCALAR8 are scalars whose kind is their size in bytes (1, 2, 4, 8). */
const K_SCALAR8 = 8;
const K_STRING = 16, K_TABLE_VECTOR = 17, K_UNION = 18, K_TABLE = 19, K_SCALAR_VECTOR1 = 20, K_UNION_VECTOR = 21;

interface TableSpec {
  readonly name: string;
  readonly slots: Int32Array;
  readonly kinds: Int32Array;
  readonly children: (TableSpec | null)[];
  /** For union fields: member specs in type-code order (code = index + 1). */
  readonly unionMembers: (TableSpec[] | null)[];
  /** Vtables already checked in the current message (a few distinct ones per table type). */
  readonly caches: VtableCache[];
  gen: number;
  used: number;
  next: number;
}

const CACHED_VTABLES_PER_TABLE = 8;

const SCALAR_SIZES: Record<string, number> = {
  bool: 1, byte: 1, ubyte: 1, int8: 1, uint8: 1,
  short: 2, ushort: 2, int16: 2, uint16: 2,
  int: 4, uint: 4, int32: 4, uint32: 4, float: 4, float32: 4,
  long: 8, ulong: 8, int64: 8, uint64: 8, double: 8, float64: 8,
};

const UNION_MEMBERS: Record<string, readonly string[]> = {
  EventBody: ['WebEvent', 'MobileEvent', 'TransactionEvent', 'IotSensorEvent', 'UserActionEvent'],
};

const specs = new Map<string, TableSpec>();
function specFor(name: string): TableSpec {
  let s = specs.get(name);
  if (s) return s;
  const fields = TableFields[name];
  if (!fields) throw new Error(`codec layout has no table ${name}`);
  s = {
    name,
    slots: new Int32Array(fields.length),
    kinds: new Int32Array(fields.length),
    children: new Array(fields.length).fill(null),
    unionMembers: new Array(fields.length).fill(null),
    caches: Array.from({ length: CACHED_VTABLES_PER_TABLE }, () => ({
      gen: -1, vt: -1, tableLen: 0, n: 0, fo: new Int32Array(fields.length), kind: new Int32Array(fields.length),
      idx: new Int32Array(fields.length), typeFo: new Int32Array(fields.length),
    })),
    gen: -1,
    used: 0,
    next: 0,
  };
  specs.set(name, s);
  fields.forEach(([slot, type], i) => {
    s!.slots[i] = slot;
    if (type === 'string') s!.kinds[i] = K_STRING;
    else if (SCALAR_SIZES[type]) s!.kinds[i] = SCALAR_SIZES[type];
    else if (type.startsWith('union:')) {
      s!.kinds[i] = K_UNION;
      const members = UNION_MEMBERS[type.slice(6)];
      if (!members) throw new Error(`codec layout: unknown union ${type}`);
      s!.unionMembers[i] = members.map(specFor);
    } else if (type.startsWith('[union:')) {
      s!.kinds[i] = K_UNION_VECTOR;
      const members = UNION_MEMBERS[type.slice(7, -1)];
      if (!members) throw new Error(`codec layout: unknown union ${type}`);
      s!.unionMembers[i] = members.map(specFor);
    } else if (type.startsWith('[')) {
      const inner = type.slice(1, -1);
      if (SCALAR_SIZES[inner] === 1) s!.kinds[i] = K_SCALAR_VECTOR1;
      else {
        s!.kinds[i] = K_TABLE_VECTOR;
        s!.children[i] = specFor(inner);
      }
    } else {
      s!.kinds[i] = K_TABLE;
      s!.children[i] = specFor(type);
    }
  });
  return s;
}

let generation = 0;
let tableBudget = 0;

export const EVENT_BATCH_SPEC = specFor('EventBatch');

export interface VerifyLimits {
  /** Largest message accepted, in bytes. */
  maxMessageBytes: number;
  /** Deepest table nesting accepted. */
  maxDepth: number;
}

export const DEFAULT_LIMITS: VerifyLimits = { maxMessageBytes: 4 * 1024 * 1024, maxDepth: 16 };

/**
 * Little-endian reads at any alignment through a DataView of the current slab (TurboFan compiles
 * DataView accesses to plain loads). The view is made once per slab, not per message.
 */
let dvBytes: Uint8Array | null = null;
let dv: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(8));
function viewOf(b: Uint8Array): void {
  if (b !== dvBytes) {
    dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    dvBytes = b;
  }
}
function u16(_b: Uint8Array, p: number): number {
  return dv.getUint16(p, true);
}
function i32(_b: Uint8Array, p: number): number {
  return dv.getInt32(p, true);
}
function u32(_b: Uint8Array, p: number): number {
  return dv.getUint32(p, true);
}

/** True when the message at [start, start+length) carries the EventBatch file identifier. */
export function hasEventBatchIdentifier(b: Uint8Array, start: number, length: number): boolean {
  return length >= 8 && b[start + 4] === ID0 && b[start + 5] === ID1 && b[start + 6] === ID2 && b[start + 7] === ID3;
}

/**
 * Verifies the EventBatch message at [start, start+length) of `b` and returns the absolute
 * position of its root table.
 */
export function verifyEventBatch(b: Uint8Array, start: number, length: number, limits: VerifyLimits = DEFAULT_LIMITS): number {
  if (!(length >= 0) || start < 0 || start + length > b.length) {
    throw new CodecError('ERR_CODEC_OUT_OF_BOUNDS', `message range [${start}, ${start + length}) lies outside its ${b.length}-byte slab`);
  }
  if (length > limits.maxMessageBytes) {
    throw new CodecError('ERR_CODEC_TOO_LARGE', `message of ${length} bytes exceeds the ${limits.maxMessageBytes}-byte limit`);
  }
  if (length < 12) throw new CodecError('ERR_CODEC_TRUNCATED', `message of ${length} bytes is too short for an EventBatch`, 0);
  if (!hasEventBatchIdentifier(b, start, length)) {
    throw new CodecError('ERR_CODEC_BAD_IDENTIFIER', `file identifier is not "${FILE_IDENTIFIER}": not an EventBatch`, 4);
  }
  const end = start + length;
  viewOf(b);
  generation++; // a double: never wraps in practice (2^53 messages)
  // Every table visit costs budget. A table is at least 4 bytes, so an honest message visits at
  // most length/4 of them; a crafted one that points many references at the same tables would
  // otherwise make verification quadratic (like FlatBuffers' max_tables).
  tableBudget = (length >>> 2) + 16;
  const root = start + u32(b, start);
  verifyTable(b, start, end, root, EVENT_BATCH_SPEC, 0, limits.maxDepth);
  return root;
}

function fail(code: 'ERR_CODEC_OUT_OF_BOUNDS' | 'ERR_CODEC_BAD_VTABLE' | 'ERR_CODEC_BAD_UNION' | 'ERR_CODEC_TRUNCATED', what: string, at: number, start: number): never {
  throw new CodecError(code, `malformed EventBatch: ${what} at byte ${at - start}`, at - start);
}

/**
 * Per-spec cache of the last vtable checked. The builder deduplicates identical vtables, so most
 * tables of a message share a handful of them: for a vtable already checked (same message, same
 * position) the scalar checks are known to pass and only the table bound and the offsets of its
 * reference fields remain to be checked.
 */
interface VtableCache {
  /** The verification (one per message) that filled this entry: bytes may be reused between messages. */
  gen: number;
  vt: number;
  tableLen: number;
  /** Present reference fields: field offset within the table, kind, spec field index, union type offset. */
  n: number;
  fo: Int32Array;
  kind: Int32Array;
  idx: Int32Array;
  typeFo: Int32Array;
}

function verifyTable(b: Uint8Array, start: number, end: number, t: number, spec: TableSpec, depth: number, maxDepth: number): void {
  if (--tableBudget < 0) throw new CodecError('ERR_CODEC_TOO_COMPLEX', 'malformed EventBatch: more table references than a message of this size can hold', t - start);
  if (depth > maxDepth) fail('ERR_CODEC_BAD_VTABLE', `tables nested deeper than ${maxDepth}`, t, start);
  if (t < start || t + 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} table offset out of bounds`, t, start);
  const vt = t - i32(b, t);
  let c: VtableCache | null = null;
  if (spec.gen === generation) {
    const caches = spec.caches;
    for (let k = 0; k < spec.used; k++) {
      if (caches[k].vt === vt) {
        c = caches[k];
        break;
      }
    }
  } else {
    spec.gen = generation;
    spec.used = 0;
    spec.next = 0;
  }
  if (c === null) c = checkVtable(b, start, end, t, vt, spec);
  if (t + c.tableLen > end) fail('ERR_CODEC_BAD_VTABLE', `${spec.name} table length ${c.tableLen} invalid`, t, start);
  for (let k = 0; k < c.n; k++) {
    const fp = t + c.fo[k];
    const target = fp + u32(b, fp);
    switch (c.kind[k]) {
      case K_STRING: {
        if (target + 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} string offset out of bounds`, fp, start);
        const n = u32(b, target);
        // Strings are read by length, never by terminator, so the terminator byte is not checked
        // (one memory access less per string); its place must still lie inside the message.
        if (target + 4 + n + 1 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} string of ${n} bytes overruns the message`, target, start);
        break;
      }
      case K_SCALAR_VECTOR1: {
        if (target + 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} vector offset out of bounds`, fp, start);
        const n = u32(b, target);
        if (target + 4 + n > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} vector of ${n} bytes overruns the message`, target, start);
        break;
      }
      case K_TABLE_VECTOR: {
        if (target + 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} vector offset out of bounds`, fp, start);
        const n = u32(b, target);
        // n * 4 bytes of offsets must fit: this bounds the loop by the message size.
        if (target + 4 + n * 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} vector declares ${n} elements, more than the message holds`, target, start);
        const child = spec.children[c.idx[k]]!;
        for (let e = 0, p = target + 4; e < n; e++, p += 4) {
          verifyTable(b, start, end, p + u32(b, p), child, depth + 1, maxDepth);
        }
        break;
      }
      case K_TABLE:
        verifyTable(b, start, end, target, spec.children[c.idx[k]]!, depth + 1, maxDepth);
        break;
      case K_UNION_VECTOR: {
        // A vector of unions: offsets here, type codes in the byte vector declared just before.
        if (target + 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} union vector offset out of bounds`, fp, start);
        const n = u32(b, target);
        if (target + 4 + n * 4 > end) fail('ERR_CODEC_OUT_OF_BOUNDS', `${spec.name} vector declares ${n} elements, more than the message holds`, target, start);
        const typeFo = c.typeFo[k];
        if (typeFo === 0) fail('ERR_CODEC_BAD_UNION', `${spec.name} union vector has no type vector`, t, start);
        const tfp = t + typeFo;
        const types = tfp + u32(b, tfp);
        if (types + 4 > end || u32(b, types) !== n || types + 4 + n > end) fail('ERR_CODEC_BAD_UNION', `${spec.name} union type vector does not match its ${n} elements`, tfp, start);
        const members = spec.unionMembers[c.idx[k]]!;
        for (let e = 0, p = target + 4; e < n; e++, p += 4) {
          const code = b[types + 4 + e];
          if (code === 0) continue; // NONE: the reader reports an event without a body
          if (code > members.length) fail('ERR_CODEC_BAD_UNION', `${spec.name} union type ${code} unknown`, types + 4 + e, start);
          verifyTable(b, start, end, p + u32(b, p), members[code - 1], depth + 1, maxDepth);
        }
        break;
      }
      case K_UNION: {
        const typeFo = c.typeFo[k];
        const typeCode = typeFo === 0 ? 0 : b[t + typeFo];
        const members = spec.unionMembers[c.idx[k]]!;
        if (typeCode < 1 || typeCode > members.length) fail('ERR_CODEC_BAD_UNION', `${spec.name} union type ${typeCode} unknown`, t, start);
        verifyTable(b, start, end, target, members[typeCode - 1], depth + 1, maxDepth);
        break;
      }
    }
  }
}

/** Full check of a vtable not seen before in this message; fills the spec's cache. */
function checkVtable(b: Uint8Array, start: number, end: number, t: number, vt: number, spec: TableSpec): VtableCache {
  if (vt < start || vt + 4 > end) fail('ERR_CODEC_BAD_VTABLE', `${spec.name} vtable out of bounds`, t, start);
  const vtLen = u16(b, vt);
  const tableLen = u16(b, vt + 2);
  if (vtLen < 4 || (vtLen & 1) !== 0 || vt + vtLen > end) fail('ERR_CODEC_BAD_VTABLE', `${spec.name} vtable length ${vtLen} invalid`, vt, start);
  if (tableLen < 4) fail('ERR_CODEC_BAD_VTABLE', `${spec.name} table length ${tableLen} invalid`, t, start);
  const c = spec.caches[spec.next];
  c.vt = -1; // invalid until complete
  let n = 0;
  const slots = spec.slots;
  const kinds = spec.kinds;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i];
    if (slot >= vtLen) break; // fields past the vtable are absent (older writer)
    const fo = u16(b, vt + slot);
    if (fo === 0) continue;
    const kind = kinds[i];
    if (kind <= K_SCALAR8) {
      if (fo + kind > tableLen) fail('ERR_CODEC_BAD_VTABLE', `${spec.name} scalar field ${slot} outside its table`, t, start);
      continue;
    }
    if (fo + 4 > tableLen) fail('ERR_CODEC_BAD_VTABLE', `${spec.name} field ${slot} outside its table`, t, start);
    c.fo[n] = fo;
    c.kind[n] = kind;
    c.idx[n] = i;
    // A union's type byte is the field declared just before it (already range-checked above).
    c.typeFo[n] = (kind === K_UNION || kind === K_UNION_VECTOR) && slot - 2 < vtLen ? u16(b, vt + slot - 2) : 0;
    n++;
  }
  c.n = n;
  c.tableLen = tableLen;
  c.vt = vt;
  c.gen = generation;
  spec.next = (spec.next + 1) % CACHED_VTABLES_PER_TABLE;
  if (spec.used < CACHED_VTABLES_PER_TABLE) spec.used++;
  return c;
}

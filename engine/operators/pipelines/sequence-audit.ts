import type { ScratchEvent } from '../../workers/scratch.js';
import type { Pipeline, PipelineContext, StateKey } from '../api.js';

/**
 * What the sequence audit stores per user: the sequence numbers (`seq`, stamped by the producer:
 * 1, 2, 3... per key) of the events the engine counted, as sorted, disjoint, non-adjacent ranges
 * `[from, to, from, to, ...]` (inclusive), and how many counted events carried a seq already
 * inside a range (duplicates). Events arriving in order keep one range: a few bytes per user.
 */
export interface SequenceAudit {
  r: number[];
  d: number;
}

/** Key of the per-partition count of events the audit cannot place: no user, or no seq stamped. */
export const UNKEYED = '~';

/**
 * Inserts `seq` into the range list `r`; returns false when it was already there (a duplicate).
 * Exact whatever the arrival order (a user's events come from several topics).
 */
export function addSeq(r: number[], seq: number): boolean {
  const n = r.length;
  if (n > 0 && r[n - 1] + 1 === seq) {
    r[n - 1] = seq; // the common case: the next seq of the key
    return true;
  }
  // First range whose end is >= seq - 1 (ranges are pairs: search over pair indices).
  let lo = 0;
  let hi = n >> 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (r[2 * mid + 1] < seq - 1) lo = mid + 1;
    else hi = mid;
  }
  const i = 2 * lo;
  if (i < n && r[i] <= seq && seq <= r[i + 1]) return false;
  if (i < n && r[i + 1] === seq - 1) {
    r[i + 1] = seq;
    if (i + 2 < n && r[i + 2] === seq + 1) r.splice(i + 1, 2); // joins the next range
  } else if (i < n && r[i] === seq + 1) {
    r[i] = seq;
  } else {
    r.splice(i, 0, seq, seq);
  }
  return true;
}

/**
 * Opt-in audit (`--audit-sequences`, off by default: not even constructed then): per user, which
 * sequence numbers the engine counted, committed with the rest of the state in the same
 * transaction, so after any crash and replay it says exactly which events the committed state
 * holds. The reliability reconciler compares it with the acknowledged events per key: no gap, no
 * duplicate, every acknowledged seq counted. Not subject to retention: meant for test and
 * verification runs, its size grows with the number of keys (and their out-of-order holes).
 */
export class SequenceAuditPipeline implements Pipeline {
  readonly name = 'sequence_audit';
  readonly changed = new Set<number>();
  private readonly byUser = new Map<number, SequenceAudit>();
  private readonly dirty = new Set<number>();
  private unkeyed = 0;
  private unkeyedDirty = false;

  constructor(private readonly ctx: PipelineContext) {}

  onEvent(e: ScratchEvent, _streamTime: number): void {
    if (e.user < 0 || e.seq <= 0) {
      this.unkeyed++;
      this.unkeyedDirty = true;
      return;
    }
    let a = this.byUser.get(e.user);
    if (!a) this.byUser.set(e.user, (a = { r: [], d: 0 }));
    if (!addSeq(a.r, e.seq)) a.d++;
    this.dirty.add(e.user);
  }

  onStreamTime(): void {}

  collectWrites(write: (key: StateKey, value: unknown) => void): void {
    const users = this.ctx.vocab.users;
    for (const u of this.dirty) write([users.value(u)], this.byUser.get(u));
    if (this.unkeyedDirty) write([UNKEYED], this.unkeyed);
  }

  committed(): void {
    this.dirty.clear();
    this.unkeyedDirty = false;
  }

  restore(key: StateKey, value: unknown): void {
    const k = key[0] as string;
    if (k === UNKEYED) this.unkeyed = value as number;
    else {
      const a = value as SequenceAudit;
      this.byUser.set(this.ctx.vocab.users.internString(k), { r: [...a.r], d: a.d });
    }
  }

  get dirtyCount(): number {
    return this.dirty.size + (this.unkeyedDirty ? 1 : 0);
  }
}

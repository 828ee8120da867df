import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

/**
 * Disk blocks held ahead of LMDB's writes, for a store opened with MDB_WRITEMAP.
 *
 * With MDB_WRITEMAP LMDB writes a commit's pages straight into a shared memory map of its data
 * file, which it sizes to the whole map (sparse). A page the filesystem cannot back then faults
 * (SIGBUS) and kills the process: there is no error LMDB could return, so a full disk became a
 * crash, and after a restart the same crash. Without the option the commit's write() fails with
 * ENOSPC and consumption pauses. (The option is off by default for another reason: LMDB aborts in
 * some delete-heavy commits with it; see EngineConfig.storeWritemap.)
 *
 * So before and during every write transaction the file's blocks are allocated (fallocate(1),
 * FALLOC_FL_KEEP_SIZE: beyond the file's end too, which LMDB's own growth of the map keeps) up to
 * LMDB's last used page plus an estimate of what the transaction can add: one page per write (the
 * leaf it copies; branch pages are shared by many writes) until the writes have counted as many
 * pages as the store has (each is copied at most once per transaction), an eighth of a page per
 * write after that (the leaf space of a new entry), plus the bytes of binary and string values,
 * plus `MIN_BYTES`. An allocation that fails throws, before any page beyond the held blocks is touched:
 * the transaction aborts and the commit fails as with ENOSPC. Pages below the last used one were
 * all written before, so they are backed. This holds only where an allocated block stays the
 * file's own when it is rewritten: not on copy-on-write filesystems (btrfs, ZFS), so the probe
 * accepts only ext2/3/4, XFS and tmpfs.
 *
 * What this does not guarantee: a transaction whose new pages exceed the estimate (many leaf
 * splits, or large values that are neither binary nor strings), on a disk
 * that fills up at that moment. The margin is `MIN_BYTES` plus twice the recent largest growth of
 * the last used page in one transaction of this store (halved at each transaction that grew less).
 */
export class FileReserve {
  /** Held beyond the estimate; also the step by which a reservation runs ahead of what it needs. */
  static readonly MIN_BYTES = 1 << 20;
  private reservedEnd = 0;
  private largestGrowth = 0;
  private txnStart = 0;
  /** Bytes the running transaction may need from the file's start: compared with `reservedEnd` at each write. */
  private need = 0;
  /** Bytes of pages the running transaction may still copy (the store's pages, each copied at most once). */
  private copyable = 0;

  constructor(
    private readonly file: string,
    private readonly pageSize: number,
    /** The newest committed meta's last used page (LMDB's me_last_pgno). */
    private readonly lastPage: () => number,
  ) {}

  /** Before a write transaction: holds the margin beyond the last used page. */
  begin(): void {
    this.txnStart = (this.lastPage() + 1) * this.pageSize;
    this.copyable = this.txnStart;
    this.need = this.txnStart + FileReserve.MIN_BYTES + 2 * this.largestGrowth;
    if (this.need > this.reservedEnd) this.extend();
  }

  /** Before each put or delete of the transaction; `value` undefined for a delete. */
  write(value: unknown): void {
    // Past the store's own pages, what a write can add is the new leaf space of its entry: an
    // eighth of a page covers entries up to about 256 bytes in half-full pages after splits.
    let bytes = this.pageSize >> 3;
    if (this.copyable > 0) {
      bytes = this.pageSize;
      this.copyable -= this.pageSize;
    }
    if (value instanceof Uint8Array) bytes += value.byteLength;
    else if (typeof value === 'string') bytes += value.length * 3;
    if ((this.need += bytes) > this.reservedEnd) this.extend();
  }

  /** After a transaction committed (or aborted): learns how much it grew the file. */
  end(): void {
    let growth: number;
    try {
      growth = (this.lastPage() + 1) * this.pageSize - this.txnStart;
    } catch {
      return; // the environment closed: the transaction's own error, if any, is the one to report
    }
    // A large transaction (a restore) raises the margin for the next ones, not forever.
    this.largestGrowth = Math.max(growth, this.largestGrowth / 2);
  }

  /** Bytes held from the file's start (0 before the first transaction). */
  get reserved(): number {
    return this.reservedEnd;
  }

  private extend(): void {
    // Ahead by what this transaction has needed so far (at least MIN_BYTES), so that a large
    // transaction extends a few times, and the next one like it not at all.
    const target = this.need + Math.max(FileReserve.MIN_BYTES, this.need - this.txnStart);
    // From the start the first time: a file copied sparse, or cut by an ftruncate, may have holes below the last page.
    const from = this.reservedEnd;
    allocate(this.file, from, target - from);
    this.reservedEnd = target;
  }
}

/** fallocate(1) with FALLOC_FL_KEEP_SIZE; throws an Error whose message names ENOSPC when the disk is full. */
function allocate(file: string, offset: number, length: number): void {
  const r = spawnSync('fallocate', ['--keep-size', '--offset', String(offset), '--length', String(length), file], { encoding: 'utf8' });
  if (r.error) throw new Error(`fallocate of ${file} could not run: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) {
    const msg = (r.stderr || `exit code ${r.status}`).trim();
    throw new Error(/No space/i.test(msg) ? `ENOSPC: no space left to hold ${length} bytes of ${file} for LMDB (${msg})` : `fallocate of ${file} failed: ${msg}`);
  }
}

const support = new Map<string, string | null>();

/** statfs f_type of filesystems that keep an allocated block the file's own when it is rewritten. */
const IN_PLACE_FILESYSTEMS = new Map<number, string>([[0xef53, 'ext2/3/4'], [0x58465342, 'XFS'], [0x01021994, 'tmpfs']]);

/**
 * Null when blocks of files in `dir` can be held with fallocate(1) (what FileReserve needs), else
 * why not (a filesystem that is not known to rewrite in place, no fallocate binary, or no
 * fallocate support). Checked once per directory and thread.
 */
export function fileReserveUnsupported(dir: string): string | null {
  let r = support.get(dir);
  if (r !== undefined) return r;
  const type = fs.statfsSync(dir).type;
  if (!IN_PLACE_FILESYSTEMS.has(type)) {
    r = `its filesystem (statfs type 0x${type.toString(16)}) is not one where held blocks are rewritten in place: ${[...IN_PLACE_FILESYSTEMS.values()].join(', ')}`;
    support.set(dir, r);
    return r;
  }
  const probe = path.join(dir, `.fallocate-probe-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    fs.writeFileSync(probe, '');
    allocate(probe, 0, 4096);
    r = null;
  } catch (e) {
    // A full disk is not a missing capability: the store opens with MDB_WRITEMAP and its first commit waits for space.
    r = /ENOSPC/.test((e as Error).message) ? null : (e as Error).message;
  } finally {
    fs.rmSync(probe, { force: true });
  }
  support.set(dir, r);
  return r;
}

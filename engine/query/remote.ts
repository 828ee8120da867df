import { Packr } from 'msgpackr';
import type { PartitionMeta, StoreKey } from '../state/shard-store.js';
import { QueryUnavailable, type PartitionReader, type ScanRange } from './query.js';

/**
 * Reading another instance's partitions for a query (scaled out). The queries are synchronous
 * functions of the partitions' stored partials, so a query runs in passes: a pass reads what is
 * already fetched and records what it missed; the misses are fetched from the owners over HTTP
 * (POST /internal/scan, MessagePack), and the query runs again, until a pass misses nothing. The
 * partials fetched are the stored values themselves (whole HDR histograms, every product's
 * counts, user sets), so top-K, percentiles and distinct counts merge exactly as on one instance.
 */
export interface ScanRequest {
  p: number;
  op: 'range' | 'keys' | 'get';
  arg: unknown;
}

export const scanCodec = new Packr({ useRecords: false, moreTypes: true });

export class RemotePartition implements PartitionReader {
  constructor(
    readonly partition: number,
    private readonly cache: Map<string, unknown>,
    private readonly missing: ScanRequest[],
  ) {}

  private ask(op: ScanRequest['op'], arg: unknown): { hit: boolean; value: unknown } {
    const k = JSON.stringify([op, arg]);
    if (this.cache.has(k)) return { hit: true, value: this.cache.get(k) };
    this.missing.push({ p: this.partition, op, arg });
    return { hit: false, value: undefined };
  }

  state = {
    getRange: (range: ScanRange): Iterable<{ key: unknown; value: unknown }> => {
      const r = this.ask('range', range);
      return r.hit ? (r.value as Array<[unknown, unknown]>).map(([key, value]) => ({ key, value })) : [];
    },
    getKeys: (range: ScanRange): Iterable<unknown> => {
      const r = this.ask('keys', range);
      return r.hit ? (r.value as unknown[]) : [];
    },
    get: (key: StoreKey): unknown => this.ask('get', key).value,
  };

  readMeta(partition: number): PartitionMeta | undefined {
    return this.ask('get', [partition, '~meta']).value as PartitionMeta | undefined;
  }

  static store(cache: Map<string, unknown>, req: ScanRequest, result: unknown): void {
    cache.set(JSON.stringify([req.op, req.arg]), result);
  }
}

export interface Routing {
  /** Partitions this instance owns (read from its own stores). */
  local: number[];
  /** Partition -> query URL of its owner, for the others. */
  owners: Record<number, string>;
  accessToken?: string;
}

const MAX_PASSES = 8;

/**
 * Runs a synchronous query over every partition, fetching other owners' partials as needed.
 * Throws QueryUnavailable when an owner is unknown, unreachable or refuses (it no longer owns the
 * partition): the caller answers 503 with Retry-After, never a number missing a partition.
 */
export async function fanOut<T>(partitions: number, routing: Routing, run: (remote: Map<number, RemotePartition>) => T, timeoutMs = 5000): Promise<T> {
  const caches = new Map<number, Map<string, unknown>>();
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const missing: ScanRequest[] = [];
    const remote = new Map<number, RemotePartition>();
    const local = new Set(routing.local);
    for (let p = 0; p < partitions; p++) {
      if (local.has(p)) continue;
      if (!routing.owners[p]) throw new QueryUnavailable(`partition ${p} has no known owner right now (a rebalance is under way); retry in a few seconds`);
      let c = caches.get(p);
      if (!c) caches.set(p, (c = new Map()));
      remote.set(p, new RemotePartition(p, c, missing));
    }
    const result = run(remote);
    if (missing.length === 0) return result;
    const byUrl = new Map<string, ScanRequest[]>();
    for (const m of missing) {
      const url = routing.owners[m.p];
      let list = byUrl.get(url);
      if (!list) byUrl.set(url, (list = []));
      list.push(m);
    }
    await Promise.all([...byUrl].map(async ([url, reqs]) => {
      let res: Response;
      try {
        res = await fetch(`${url}/internal/scan`, {
          method: 'POST',
          body: scanCodec.pack(reqs),
          headers: { 'content-type': 'application/msgpack', ...(routing.accessToken ? { authorization: `Bearer ${routing.accessToken}` } : {}) },
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (cause) {
        throw new QueryUnavailable(`the owner of partitions ${[...new Set(reqs.map((r) => r.p))].join(',')} (${url}) did not answer: ${(cause as Error).message}; retry in a few seconds`, { cause });
      }
      if (!res.ok) throw new QueryUnavailable(`the owner of partitions ${[...new Set(reqs.map((r) => r.p))].join(',')} (${url}) answered ${res.status}: ${await res.text().catch(() => '')}`);
      const results = scanCodec.unpack(new Uint8Array(await res.arrayBuffer())) as unknown[];
      reqs.forEach((r, i) => RemotePartition.store(caches.get(r.p)!, r, results[i]));
    }));
  }
  throw new QueryUnavailable(`the query needed more than ${MAX_PASSES} rounds of reads from other instances; retry`);
}

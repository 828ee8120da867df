import * as hdr from 'hdr-histogram-js';
import type { PartitionMeta, StoreKey } from './shard-store.js';
import { ChangelogBatchBuilder, encodeKey } from './changelog-codec.js';

/**
 * Scaled out, the live dashboard of every instance covers every partition. Its input is a small
 * projection of each partition's committed state, written by the partition's owner to the
 * compacted `<prefix>dashboard-partials` topic (partition p = state partition p) in the same Kafka
 * transaction as the partition's changelog records, so it is exactly as committed as the state:
 *
 * - active users per minute: the distinct-user counts of the partition (not the user sets: a user
 *   lives in one partition, so the global distinct count is the sum of the partitions' counts);
 * - revenue, events and errors per platform, error-rate windows: the stored partials as they are;
 * - load time: one HDR histogram per minute, the partition's pages merged (the dashboard shows
 *   percentiles per minute over all pages);
 * - alerts, alert statuses (acknowledge / resolve) and the partition's progress (stream time and
 *   exactly-once counters), last in each transaction: a reader applies a partition's records only
 *   when it reaches that record, so it never shows half a commit.
 *
 * Keys are the state keys relative to the partition (JSON, as in the changelog), values
 * MessagePack; retention deletes become tombstones. Every instance reads this topic
 * (engine/kafka/live-partials.ts) instead of the changelog, which carries ~30x more (user sets,
 * sessions, baselines).
 */
/** State key prefix of alert statuses (acknowledge / resolve), kept with the alert's partition when scaled out. */
export const ALERT_STATUS = 'alert-status';

export const LIVE_PIPELINES = new Set(['active_users', 'revenue', 'platform_events', 'error_rate', 'alerts', ALERT_STATUS]);

/** The projected key of a partition's load-time histogram of a minute (all its pages merged). */
export const LATENCY_PAGE = '*all';

export interface LiveMeta {
  streamTime: number;
  counters: PartitionMeta['counters'];
}

/** The dashboard value of a stored value (active users: counts instead of user sets). */
export function projectValue(pipeline: string, value: unknown): unknown {
  if (pipeline !== 'active_users' || !('u' in (value as object))) return value; // stored as counts since member chunks
  const v = value as { u: string[]; p: Record<string, string[]> };
  return { n: v.u.length, p: Object.fromEntries(Object.entries(v.p).map(([k, list]) => [k, list.length])) };
}

/**
 * Adds the dashboard projection of one commit of `partition` to `out`: changed and deleted keys
 * (absolute store keys), then the partition's meta. `performanceMinute` reads the partition's
 * committed load-time histograms of a minute (after the commit).
 */
export function projectCommit(
  out: ChangelogBatchBuilder,
  partition: number,
  changes: Array<[StoreKey, unknown]>,
  meta: PartitionMeta,
  performanceMinute: (windowStart: number) => Iterable<string>,
): void {
  const minutes = new Set<number>();
  for (const [k, v] of changes) {
    const pipeline = k[1] as string;
    if (pipeline === 'performance') {
      minutes.add(k[2] as number);
      continue;
    }
    if (!LIVE_PIPELINES.has(pipeline)) continue;
    if (pipeline === 'active_users' && k.length > 4) continue; // member chunks: the value holds the counts
    out.add(partition, encodeKey(k.slice(1)), v === undefined ? undefined : projectValue(pipeline, v));
  }
  for (const ws of minutes) {
    let merged: hdr.Histogram | null = null;
    for (const encoded of performanceMinute(ws)) {
      const h = hdr.decodeFromCompressedBase64(encoded, 32, false) as hdr.Histogram;
      if (merged) merged.add(h);
      else merged = h;
    }
    out.add(partition, encodeKey(['performance', ws, LATENCY_PAGE]), merged ? hdr.encodeIntoCompressedBase64(merged) : undefined);
  }
  out.addMeta(partition, { streamTime: meta.streamTime, counters: meta.counters } as PartitionMeta);
}

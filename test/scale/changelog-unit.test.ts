import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { CHANGELOG_STRIDE, ChangelogBatchBuilder, META_KEY, decodeKey, decodeValue, encodeKey, metaFingerprint } from '../../engine/state/changelog-codec.js';
import { Engine, MemorySink, EmbeddedSource } from '../../engine/index.js';
import { RemotePartition, type ScanRequest } from '../../engine/query/remote.js';

describe('changelog records (unit)', () => {
  it('a commit batch holds each partition\'s records followed by its meta; values round-trip, deletes are tombstones', () => {
    const b = new ChangelogBatchBuilder();
    const hist = new Uint8Array([1, 2, 3, 250]);
    b.add(3, encodeKey(['revenue', 1_764_460_800_000, 'GOLD']), { usd: 12.5, count: 2, byCurrency: { EUR: 12.5 }, byTier: {} });
    b.add(3, encodeKey(['performance', 60_000, 'web|/cart']), { h: hist, n: 4 });
    b.add(3, encodeKey(['sessions', 'closed', 'u1', 5]), undefined);
    b.addMeta(3, { offsets: { 1: 41, 3: 7 }, streamTime: 99, counters: { events: 10, deadLetters: 1, late: { revenue: 2 } } });
    b.addMeta(5, { offsets: {}, streamTime: 0, counters: { events: 0, deadLetters: 0, late: {} } });
    const batch = b.build();
    expect(batch.partitions).toEqual([3, 5]);
    const records = [];
    for (let i = 0; i < batch.index.length; i += CHANGELOG_STRIDE) {
      const [p, ks, kl, vs, vl] = Array.from(batch.index.subarray(i, i + CHANGELOG_STRIDE));
      records.push({ p, key: new TextDecoder().decode(batch.data.subarray(ks, ks + kl)), value: vl < 0 ? null : decodeValue(batch.data.subarray(vs, vs + vl)) });
    }
    expect(records.map((r) => [r.p, r.key])).toEqual([[3, '["revenue",1764460800000,"GOLD"]'], [3, '["performance",60000,"web|/cart"]'], [3, '["sessions","closed","u1",5]'], [3, META_KEY], [5, META_KEY]]);
    expect(records[1].value).toEqual({ h: hist, n: 4 });
    expect(records[1].value && (records[1].value as { h: unknown }).h).toBeInstanceOf(Uint8Array);
    expect(records[2].value).toBeNull();
    expect(decodeKey(records[0].key)).toEqual(['revenue', 1_764_460_800_000, 'GOLD']);
  });

  it('meta fingerprints ignore key order and tell different progress apart', () => {
    const a = { offsets: { 1: 5, 2: 9 }, streamTime: 7, counters: { events: 3, deadLetters: 0, late: { x: 1, y: 2 } } };
    const b = { offsets: { 2: 9, 1: 5 }, streamTime: 7, counters: { events: 3, deadLetters: 0, late: { y: 2, x: 1 } } };
    expect(metaFingerprint(a)).toBe(metaFingerprint(b));
    expect(metaFingerprint(a)).not.toBe(metaFingerprint({ ...a, offsets: { 1: 6, 2: 9 } }));
    expect(metaFingerprint(undefined)).toBe('');
  });

  it('a remote partition records what a query pass missed and serves it once fetched', () => {
    const cache = new Map<string, unknown>();
    const missing: ScanRequest[] = [];
    const r = new RemotePartition(4, cache, missing);
    expect([...r.state.getRange({ start: [4, 'revenue', 0], end: [4, 'revenue', 10] })]).toEqual([]);
    expect(r.readMeta(4)).toBeUndefined();
    expect(missing).toEqual([{ p: 4, op: 'range', arg: { start: [4, 'revenue', 0], end: [4, 'revenue', 10] } }, { p: 4, op: 'get', arg: [4, '~meta'] }]);
    RemotePartition.store(cache, missing[0], [[[4, 'revenue', 5, 'GOLD'], { usd: 1 }]]);
    RemotePartition.store(cache, missing[1], { offsets: {}, streamTime: 3 });
    const again: ScanRequest[] = [];
    const r2 = new RemotePartition(4, cache, again);
    expect([...r2.state.getRange({ start: [4, 'revenue', 0], end: [4, 'revenue', 10] })]).toEqual([{ key: [4, 'revenue', 5, 'GOLD'], value: { usd: 1 } }]);
    expect(r2.readMeta(4)).toEqual({ offsets: {}, streamTime: 3 });
    expect(again).toEqual([]);
  });

  it('options.changelog and the changelog writer go together; the CLI refuses --changelog without the Kafka source', async () => {
    const source = new EmbeddedSource({ partitions: 2, rate: 1000, totalEvents: 0 });
    await expect(Engine.start({ dataDir: '/nonexistent-never-created', changelog: true }, source, new MemorySink())).rejects.toMatchObject({ code: 'ERR_ENGINE_CONFIG', message: expect.stringContaining('options.changelog') });
    const r = spawnSync(process.execPath, [path.resolve('dist/engine/main.js'), '--changelog', '--port', '0', '--data-dir', '/tmp/rta-never'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toContain('--changelog needs --source kafka');
  });
});

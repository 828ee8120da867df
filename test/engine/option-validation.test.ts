import { describe, expect, it } from 'vitest';
import { ConfigError, parseEngineConfig } from '../../engine/index.js';

describe('engine option validation', () => {
  it('defaults are valid and workers default to cores - 1 (at least 1)', () => {
    const c = parseEngineConfig({});
    expect(c.workers).toBeGreaterThanOrEqual(1);
    expect(c.graceMs).toBe(30_000);
    expect(c.commitIntervalMs).toBe(1000);
    expect(c.retentionMs).toBe(24 * 3600_000);
  });

  it('shards default to 8, or to the partition count when that is lower; given, they are kept, and refused above the partition count', () => {
    expect(parseEngineConfig({}).shards).toBe(8);
    expect(parseEngineConfig({ partitions: 3 }).shards).toBe(3);
    expect(parseEngineConfig({ partitions: 16 }).shards).toBe(8);
    expect(parseEngineConfig({ partitions: 8, shards: 4 }).shards).toBe(4);
    expect(parseEngineConfig({ partitions: 8, shards: 8 }).shards).toBe(8);
    // More than the partitions: shards that could never hold one.
    expect(() => parseEngineConfig({ partitions: 4, shards: 6 })).toThrow(expect.objectContaining({ code: 'ERR_ENGINE_CONFIG', message: expect.stringMatching(/options\.shards: 6 is more than options\.partitions \(4\).*at most 4 shards/) }));
  });

  it.each([
    [{ workers: 0 }, 'options.workers'],
    [{ partitions: 1.5 }, 'options.partitions'],
    [{ graceMs: -1 }, 'options.graceMs'],
    [{ commitIntervalMs: 1 }, 'options.commitIntervalMs'],
    [{ alerts: { errorRate: 2 } }, 'options.alerts.errorRate'],
    [{ webhookUrl: 'not a url' }, 'options.webhookUrl'],
    [{ changelog: 'yes' }, 'options.changelog'],
  ])('%j is rejected naming %s', (opts, name) => {
    expect(() => parseEngineConfig(opts as never)).toThrowError(ConfigError);
    expect(() => parseEngineConfig(opts as never)).toThrowError(name);
  });

  it('unknown options are errors, not ignored', () => {
    expect(() => parseEngineConfig({ wokers: 2 } as never)).toThrowError(/wokers|Unrecognized/);
  });
});

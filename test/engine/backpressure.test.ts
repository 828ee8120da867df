import { describe, expect, it } from 'vitest';
import { sourceMustPause } from '../../engine/dispatch/dispatcher.js';

const shards = (...inFlight: number[]) => inFlight.map((n) => ({ inFlight: n, recovering: null, failed: false }));

describe('backpressure: when the dispatcher pauses the source', () => {
  it('bounds the slabs in flight over all shards: 12 per shard on average', () => {
    expect(sourceMustPause(shards(11, 12, 12, 12), 12)).toBe(false);
    expect(sourceMustPause(shards(12, 12, 12, 12), 12)).toBe(true);
    expect(sourceMustPause(shards(30, 17, 0, 0), 12)).toBe(false);
    expect(sourceMustPause(shards(30, 18, 0, 0), 12)).toBe(true);
  });

  it('lets one committing shard queue up to four times its share while the others still flow, no more', () => {
    // A per-shard bound of 12 paused everyone here (one slow shard held back the other worker).
    expect(sourceMustPause(shards(47, 0, 0, 0), 12)).toBe(false);
    expect(sourceMustPause(shards(48, 0, 0, 0), 12)).toBe(true);
  });

  it('pauses while a shard recovers or has failed', () => {
    expect(sourceMustPause([{ inFlight: 0, recovering: Promise.resolve(), failed: false }, ...shards(0)], 12)).toBe(true);
    expect(sourceMustPause([{ inFlight: 0, recovering: null, failed: true }, ...shards(0)], 12)).toBe(true);
  });
});

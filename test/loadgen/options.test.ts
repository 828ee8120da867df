import { describe, expect, it } from 'vitest';
import { defaultThreads, parseLoadgenOptions } from '../../loadgen/options.js';

describe('loadgen options', () => {
  it('takes flags over LOADGEN_* environment over defaults', () => {
    const env = { LOADGEN_THROUGHPUT: '50000', LOADGEN_DURATION: '2m', LOADGEN_THREADS: '3', LOADGEN_PRODUCER_PROPS: 'acks=1 linger.ms=20', LOADGEN_USERS: '7' };
    const o = parseLoadgenOptions(['--throughput', '-1', '--producer-props', 'linger.ms=5'], env);
    expect(o.throughput).toBe(-1);
    expect(o.durationMs).toBe(120_000);
    expect(o.numRecords).toBe(Infinity);
    expect(o.threads).toBe(3);
    expect(o.users).toBe(7);
    expect(o.producerProps).toEqual({ acks: '1', 'linger.ms': '5' });
    expect(parseLoadgenOptions([], {})).toMatchObject({ throughput: 10_000, numRecords: 1_000_000, threads: 1, target: 'kafka', timestamps: 'model', reference: true });
    expect(parseLoadgenOptions(['--no-reference'], {}).reference).toBe(false);
  });

  it('rejects bad values and unknown flags, naming the flag', () => {
    expect(() => parseLoadgenOptions(['--throughput', '0'], {})).toThrow(/--throughput must be a positive number or -1/);
    expect(() => parseLoadgenOptions(['--duration', 'soon'], {})).toThrow(/--duration must look like/);
    expect(() => parseLoadgenOptions(['--threads', '0'], {})).toThrow(/--threads must be an integer >= 1/);
    expect(() => parseLoadgenOptions(['--target', 'redis'], {})).toThrow(/--target/);
    expect(() => parseLoadgenOptions(['--bogus'], {})).toThrow(/unknown option '--bogus'/);
  });

  it('uses one thread for low rates and more for high ones, never more than the cores', () => {
    expect(defaultThreads(10_000, 8)).toBe(1);
    expect(defaultThreads(200_000, 8)).toBe(3);
    expect(defaultThreads(1_000_000, 2)).toBe(2);
    expect(defaultThreads(-1, 1)).toBe(1);
  });
});

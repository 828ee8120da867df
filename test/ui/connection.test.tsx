import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Dashboard, LiveConnection, backoffDelay, type ConnectionStatus, type ServerMessage, type SocketLike } from '../../ui/src/live/index.js';
import { MIN, T0, delta, snapshot, tiles } from './fixtures.js';

/** A WebSocket stand-in the test drives: open, deliver messages, close. */
class FakeSocket implements SocketLike {
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  sent: string[] = [];
  closed = false;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(data);
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.({});
  }
  deliver(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code = 1006) {
    this.onerror?.({});
    this.onclose?.({ code });
  }
}

let sockets: FakeSocket[];
const createSocket = (url: string) => {
  const s = new FakeSocket(url);
  sockets.push(s);
  return s;
};
const last = () => sockets[sockets.length - 1];

beforeEach(() => {
  sockets = [];
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});
afterEach(() => vi.useRealTimers());

describe('backoff', () => {
  it('doubles from the initial delay up to the cap, with bounded jitter', () => {
    const o = { initialMs: 500, maxMs: 15_000, factor: 2, jitter: 0.2 };
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(n, o, () => 0.5))).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    expect(backoffDelay(2, o, () => 0)).toBe(1600);
    expect(backoffDelay(2, o, () => 0.999999)).toBe(2400);
  });
});

describe('LiveConnection', () => {
  function connect() {
    const statuses: ConnectionStatus[] = [];
    const messages: ServerMessage[] = [];
    const c = new LiveConnection({ url: 'ws://x/dashboard-ws', createSocket, random: () => 0.5, onMessage: (m) => messages.push(m), onStatus: (s) => statuses.push(s) });
    c.start();
    return { c, statuses, messages };
  }

  it('reconnects with growing delays until a snapshot arrives, then starts over from the initial delay', () => {
    const { c, messages } = connect();
    expect(c.status.state).toBe('connecting');
    last().open();
    last().deliver(snapshot());
    expect(c.status).toMatchObject({ state: 'live', attempt: 0, snapshots: 1 });

    last().drop();
    expect(c.status).toMatchObject({ state: 'reconnecting', attempt: 1, nextRetryAt: T0 + 500 });
    vi.advanceTimersByTime(499);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
    // The server accepts, then goes away before a snapshot: the delay keeps growing.
    last().open();
    last().drop();
    expect(c.status.attempt).toBe(2);
    vi.advanceTimersByTime(999);
    expect(sockets).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(3);
    last().drop();
    vi.advanceTimersByTime(2000);
    expect(sockets).toHaveLength(4);
    // Back: the snapshot is the resync, and the next failure waits the initial delay again.
    last().open();
    last().deliver(snapshot({ streamTime: T0 + 9 * MIN }));
    expect(c.status).toMatchObject({ state: 'live', attempt: 0, snapshots: 2, lastError: null });
    expect(messages.filter((m) => m.type === 'SNAPSHOT')).toHaveLength(2);
    last().drop();
    vi.advanceTimersByTime(500);
    expect(sockets).toHaveLength(5);
    c.stop();
  });

  it('stop closes the socket and schedules nothing more', () => {
    const { c } = connect();
    const s = last();
    c.stop();
    expect(s.closed).toBe(true);
    s.drop();
    vi.advanceTimersByTime(60_000);
    expect(sockets).toHaveLength(1);
    expect(c.status.state).toBe('stopped');
  });

  it('retry now skips the wait', () => {
    const { c } = connect();
    last().drop();
    c.retryNow();
    expect(sockets).toHaveLength(2);
    c.stop();
  });

  it('requests resolve with their RESPONSE by requestId, ERRORs reject, and a close fails what is pending', async () => {
    const { c, messages } = connect();
    last().deliver(snapshot());
    const p1 = c.request<{ userId: string }>('GET_USER_ANALYTICS', { userId: 'user-1' });
    const p2 = c.request('GET_ALERT_DETAILS', { alertId: 'nope' });
    const [r1, r2] = last().sent.map((t) => JSON.parse(t));
    expect(r1).toMatchObject({ type: 'GET_USER_ANALYTICS', userId: 'user-1' });
    last().deliver({ type: 'ERROR', requestId: r2.requestId, code: 'ERR_NOT_FOUND', message: 'alert nope does not exist' });
    last().deliver({ type: 'RESPONSE', requestId: r1.requestId, data: { userId: 'user-1' } });
    await expect(p1).resolves.toEqual({ userId: 'user-1' });
    await expect(p2).rejects.toThrow(/ERR_NOT_FOUND/);
    const p3 = c.request('GET_REVENUE_BREAKDOWN');
    last().drop();
    await expect(p3).rejects.toThrow(/closed/);
    // Answers are not passed on as stream messages.
    expect(messages.map((m) => m.type)).toEqual(['SNAPSHOT']);
    c.stop();
  });
});

describe('precompressed deltas (binary raw DEFLATE frames)', () => {
  it('are inflated and applied in arrival order, before a text message that came after them', async () => {
    const messages: ServerMessage[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const c = new LiveConnection({
      url: 'ws://x', createSocket, onMessage: (m) => messages.push(m),
      // The first inflate is slow: the text message behind it must still wait its turn.
      inflate: async (data) => {
        await gate;
        return inflateRawSync(data as Buffer).toString('utf8');
      },
    });
    c.start();
    last().deliver(snapshot());
    last().onmessage!({ data: deflateRawSync(JSON.stringify(delta({ streamTime: 1 }))) });
    last().deliver(delta({ streamTime: 2 }));
    expect(messages.map((m) => m.type)).toEqual(['SNAPSHOT']);
    release();
    await vi.waitFor(() => expect(messages).toHaveLength(3));
    expect(messages.map((m) => (m as { streamTime: number }).streamTime)).toEqual([T0 + 3 * MIN, 1, 2]);
    c.stop();
  });
});

describe('Dashboard: live state over a reconnect', () => {
  it('applies deltas to the snapshot, and after a reconnect resyncs from the new snapshot', async () => {
    const list = vi.fn(async () => ({ total: 5, bySeverity: { HIGH: 5 }, alerts: [] }));
    const d = new Dashboard({ url: 'ws://x', createSocket, random: () => 0.5 }, { list, setStatus: vi.fn() }, 60_000);
    let renders = 0;
    d.subscribe(() => renders++);
    d.start();
    last().deliver(snapshot());
    last().deliver(delta({ tiles: tiles({ activeUsersNow: 555 }), activeUsers: [{ windowStart: T0 + 4 * MIN, windowEnd: T0 + 5 * MIN, users: 555, byPlatform: {} }] }));
    expect(d.state!.tiles.activeUsersNow).toBe(555);
    expect(d.state!.activeUsers.at(-1)!.users).toBe(555);
    expect(renders).toBeGreaterThanOrEqual(2);

    last().drop();
    expect(d.status.state).toBe('reconnecting');
    // Data from before the drop stays visible meanwhile.
    expect(d.state!.tiles.activeUsersNow).toBe(555);
    vi.advanceTimersByTime(500);
    // The restarted server's snapshot replaces everything, including series the old state had.
    last().deliver(snapshot({ tiles: tiles({ activeUsersNow: 1 }), activeUsers: [{ windowStart: T0 + 8 * MIN, windowEnd: T0 + 9 * MIN, users: 1, byPlatform: {} }] }));
    expect(d.status).toMatchObject({ state: 'live', snapshots: 2 });
    expect(d.state!.tiles.activeUsersNow).toBe(1);
    expect(d.state!.activeUsers.map((w) => w.users)).toEqual([1]);
    // Each snapshot also refreshes the alert list from REST.
    await vi.waitFor(() => expect(list).toHaveBeenCalledTimes(2));
    d.stop();
  });

  it('a delta before any snapshot is ignored (nothing to apply it to)', () => {
    const d = new Dashboard({ url: 'ws://x', createSocket }, { list: async () => ({ total: 0, bySeverity: {}, alerts: [] }), setStatus: vi.fn() });
    d.start();
    last().deliver(delta());
    expect(d.state).toBeNull();
    d.stop();
  });
});

// transports.js — the four ways the page receives its feed, behind one
// interface: new T(sink); t.start(); t.stop(); t.send(msg) (a promise of
// the stored message's id, or a rejection to retry later). The sink holds
// the cursor: every transport starts from sink.cursor() and hands events to
// sink.deliver(ev), which drops those at or below the cursor, so a switch
// or a reconnect loses nothing and shows nothing twice.
import { api, stats, ApiError } from './api.js';

// What a transport's traffic is counted in: its sink's own meter (the lab
// page runs four at once), else the page's.
const meterOf = (sink) => sink.meter || stats;

const BACKOFF_MS = [250, 500, 1000, 2000, 5000];
function backoff(attempt) {
  const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  return base * (0.5 + Math.random() * 0.5);          // jitter, as bin/chat
}

function postMessage(msg) {
  return api('POST', '/messages', { room: 'general', body: msg.body, client_msg_id: msg.cmid })
    .then((r) => r.id);
}

// Polling: GET /events?after=cursor&wait=W, again and again. wait=0 is the
// short poll (one request a second), wait=25 the long poll.
class Poll {
  constructor(sink, wait, pause) {
    this.sink = sink; this.wait = wait; this.pause = pause; this.stopped = false;
  }
  async start() {
    this.ctl = new AbortController();
    let fails = 0, quick = true;    // the first request after a start or a failure does not wait:
    while (!this.stopped) {         // its answer tells that we are connected
      try {
        const wait = quick ? 0 : this.wait;
        const r = await api('GET', `/events?after=${this.sink.cursor()}&wait=${wait}`, undefined,
                            this.ctl.signal, meterOf(this.sink));
        fails = 0;
        quick = false;
        this.sink.state('connected');
        for (const ev of r.events) this.sink.deliver(ev);
        if (this.pause) await this.sleep(this.pause);
      } catch (e) {
        if (this.stopped) return;
        if (e.status === 401) return this.sink.ended();
        this.sink.state('reconnecting');
        quick = true;
        await this.sleep(backoff(fails++));
      }
    }
  }
  sleep(ms) {
    return new Promise((res) => { this.timer = setTimeout(res, ms); });
  }
  stop() { this.stopped = true; clearTimeout(this.timer); if (this.ctl) this.ctl.abort(); }
  send(msg) { return postMessage(msg); }
}

export class ShortPoll extends Poll { constructor(sink) { super(sink, 0, 1000); } }
export class LongPoll extends Poll { constructor(sink) { super(sink, 25, 0); } }

// WebSocket: the hello carries an empty token (the handshake's HttpOnly
// cookie stands for it) and the cursor; sends go on the socket and are
// answered by an ack with the stored id.
export class WebSocketTransport {
  constructor(sink) { this.sink = sink; this.stopped = false; this.fails = 0; this.acks = new Map(); }
  start() {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/ws';
    const ws = this.ws = new WebSocket(url, 'chat.v1');
    meterOf(this.sink).requests++;
    ws.onopen = () => ws.send(JSON.stringify({ op: 'hello', token: '', after: this.sink.cursor() }));
    ws.onmessage = (m) => this.onFrame(m.data);
    ws.onclose = (c) => this.onClose(c);
  }
  onFrame(text) {
    meterOf(this.sink).bytes += text.length;
    const f = JSON.parse(text);
    if (f.op === 'ready') { this.fails = 0; this.sink.state('connected'); }
    else if (f.op === 'event') this.sink.deliver(f.event);
    else if (f.op === 'ack') this.settle(f.client_msg_id, null, f.id);
    else if (f.op === 'error' && f.client_msg_id)
      this.settle(f.client_msg_id, new ApiError(0, f.code, f.message));
  }
  settle(cmid, err, id) {
    const p = this.acks.get(cmid);
    if (!p) return;
    this.acks.delete(cmid);
    if (err) p.reject(err); else p.resolve(id);
  }
  onClose(c) {
    for (const cmid of [...this.acks.keys()]) this.settle(cmid, new ApiError(0, 'network', 'closed'));
    if (this.stopped) return;
    if (c.code === 4401) return this.sink.ended();
    this.sink.state('reconnecting');
    this.timer = setTimeout(() => { if (!this.stopped) this.start(); }, backoff(this.fails++));
  }
  stop() { this.stopped = true; clearTimeout(this.timer); if (this.ws) this.ws.close(1000); }
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN)
      return Promise.reject(new ApiError(0, 'network', 'not connected'));
    return new Promise((resolve, reject) => {
      this.acks.set(msg.cmid, { resolve, reject });
      this.ws.send(JSON.stringify({ op: 'send', room: 'general', body: msg.body, client_msg_id: msg.cmid }));
    });
  }
}

// Server-Sent Events: the browser's EventSource, with the cookie; it
// reconnects by itself with Last-Event-ID. When it gives up (an answer
// other than 200), a new one starts from the cursor after a backoff.
export class SseTransport {
  constructor(sink) { this.sink = sink; this.stopped = false; this.fails = 0; }
  start() {
    const es = this.es = new EventSource(`/api/v1/stream?after=${this.sink.cursor()}`);
    const meter = meterOf(this.sink);
    meter.requests++;
    es.addEventListener('ready', () => { this.fails = 0; this.sink.state('connected'); });
    const onEvent = (m) => { meter.bytes += m.data.length; this.sink.deliver(JSON.parse(m.data)); };
    es.addEventListener('chat', onEvent);
    es.addEventListener('alert', onEvent);
    es.addEventListener('end', () => { this.stop(); this.sink.ended(); });
    es.onerror = () => {
      if (this.stopped) return;
      this.sink.state('reconnecting');
      if (es.readyState === EventSource.CLOSED)     // refused: ended, or the server's trouble?
        api('GET', '/account').then(() => this.retry(), (e) => (e.status === 401 ? this.sink.ended()
                                                                                  : this.retry()));
      else
        meter.requests++;           // the browser reconnects by itself
    };
  }
  retry() {
    if (!this.stopped)
      this.timer = setTimeout(() => { if (!this.stopped) this.start(); }, backoff(this.fails++));
  }
  stop() { this.stopped = true; clearTimeout(this.timer); if (this.es) this.es.close(); }
  send(msg) { return postMessage(msg); }
}

export const TRANSPORTS = { short: ShortPoll, long: LongPoll, ws: WebSocketTransport, sse: SseTransport };

// lab.js — the transport lab: the logged-in user's feed received over all
// four transports at once, side by side, each with its own cursor, its own
// counters (requests, bytes, events, latency) and a latency chart drawn on
// a canvas; a generator sends chat messages at a chosen rate so the
// difference shows. Latency is the time from the server's commit (the
// event's ts) to its arrival here.
import { api, newMsgId } from './api.js';
import { TRANSPORTS } from './transports.js';

const $ = (id) => document.getElementById(id);
const NAMES = { ws: 'WebSocket', sse: 'SSE', long: 'long poll', short: 'short poll' };
const COLORS = { ws: '#2a7', sse: '#27c', long: '#c80', short: '#a33' };
const POINTS = 300;
const lanes = {};
const startedAt = Date.now();

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function makeLane(kind) {
  const lane = { kind, cursor: 0, meter: { requests: 0, bytes: 0, events: 0 }, lat: [], state: 'connecting',
                 seen: new Set(), twice: 0 };
  const box = el('section', 'lane');
  box.dataset.kind = kind;
  box.append(el('h2', null, NAMES[kind]));
  lane.stateEl = el('span', 'state', 'connecting');
  box.firstChild.append(' ', lane.stateEl);
  const dl = el('dl');
  lane.cells = {};
  for (const k of ['requests', 'bytes', 'events', 'p50', 'p95', 'max']) {
    dl.append(el('dt', null, k === 'bytes' ? 'bytes in' : k === 'requests' ? 'requests' : k === 'events' ? 'events'
                                 : 'latency ' + k));
    lane.cells[k] = el('dd', 'stat-' + k, '–');
    dl.append(lane.cells[k]);
  }
  box.append(dl);
  lane.canvas = el('canvas');
  lane.canvas.width = 300;
  lane.canvas.height = 140;
  box.append(lane.canvas);
  $('lab').append(box);
  lane.sink = {
    meter: lane.meter,
    cursor: () => lane.cursor,
    deliver(ev) {
      if (ev.id <= lane.cursor) return;
      if (lane.seen.has(ev.id)) lane.twice++;
      lane.seen.add(ev.id);
      lane.cursor = ev.id;
      lane.meter.events++;
      if (ev.ts >= startedAt) {
        lane.lat.push(Math.max(0, Date.now() - ev.ts));
        if (lane.lat.length > POINTS) lane.lat.shift();
      }
    },
    state(s) { lane.state = s; lane.stateEl.textContent = s; lane.stateEl.className = 'state ' + s; },
    ended() { lane.sink.state('ended'); },
  };
  lane.transport = new TRANSPORTS[kind](lane.sink);
  return lane;
}

function pct(a, p) {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function draw(lane, top) {
  const c = lane.canvas, g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = '#ccd';
  g.fillStyle = '#889';
  g.font = '10px sans-serif';
  for (const f of [0, 0.5, 1]) {       // grid: 0, half and the top of the scale
    const y = c.height - 12 - f * (c.height - 20);
    g.beginPath(); g.moveTo(28, y); g.lineTo(c.width, y); g.stroke();
    g.fillText(Math.round(f * top) + '', 0, y + 3);
  }
  g.fillStyle = COLORS[lane.kind];
  const step = (c.width - 30) / POINTS;
  lane.lat.forEach((ms, i) => {
    const h = Math.min(1, ms / top) * (c.height - 20);
    g.fillRect(30 + i * step, c.height - 12 - h, Math.max(1, step - 0.5), Math.max(1, h));
  });
  g.fillStyle = '#889';
  g.fillText('ms, last ' + POINTS + ' events', 30, c.height - 1);
}

function render() {
  // one scale for all four charts, so their heights compare
  const top = Math.max(50, ...Object.values(lanes).map((l) => pct(l.lat, 0.99) || 0));
  for (const lane of Object.values(lanes)) {
    const m = lane.meter, ms = (v) => (v === null ? '–' : v + ' ms');
    lane.cells.requests.textContent = m.requests;
    lane.cells.bytes.textContent = m.bytes;
    lane.cells.events.textContent = m.events;
    lane.cells.p50.textContent = ms(pct(lane.lat, 0.5));
    lane.cells.p95.textContent = ms(pct(lane.lat, 0.95));
    lane.cells.max.textContent = ms(lane.lat.length ? Math.max(...lane.lat) : null);
    draw(lane, top);
  }
}

async function generate(e) {
  e.preventDefault();
  const n = Number($('gen-count').value), rate = Number($('gen-rate').value);
  let issued = 0, sent = 0, failed = 0;
  $('gen-state').textContent = 'sending…';
  await new Promise((done) => {
    const t = setInterval(() => {
      if (issued >= n) return clearInterval(t);
      const i = ++issued;
      api('POST', '/messages', { room: 'general', body: `lab ${i}/${n}`, client_msg_id: newMsgId() })
        .then(() => { sent++; }, () => { failed++; })
        .then(() => { if (sent + failed === n) done(); });
    }, 1000 / rate);
  });
  $('gen-state').textContent = `${sent} sent` + (failed ? `, ${failed} failed` : '');
}

async function init() {
  let account;
  try {
    account = await api('GET', '/account');
  } catch {
    $('lab-login').hidden = false;
    $('gen-form').hidden = true;
    return;
  }
  $('who').textContent = account.user;
  // all four start from the same cursor: the latest event, so they compare on what comes next
  let after = 0;
  for (;;) {
    const r = await api('GET', `/events?after=${after}&wait=0&limit=1000`);
    after = r.next;
    if (r.events.length < 1000) break;
  }
  for (const kind of ['ws', 'sse', 'long', 'short']) {
    lanes[kind] = makeLane(kind);
    lanes[kind].cursor = after;
    lanes[kind].transport.start();
  }
  $('gen-form').addEventListener('submit', generate);
  setInterval(render, 250);
  window.chatLab = { lanes };                  // for the browser tests
}

init();

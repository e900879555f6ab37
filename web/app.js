// app.js — the page: login, the chat, the bank and the live panel. It owns
// the cursor (the highest event id shown; an event at or below it is
// dropped, so nothing is shown twice, whatever the transport does) and the
// outbox (messages not yet stored, sent again with their first
// client_msg_id after a failure or a transport switch, which the server
// deduplicates). User text is only ever inserted with textContent.
import { api, stats, newMsgId } from './api.js';
import { TRANSPORTS } from './transports.js';

const $ = (id) => document.getElementById(id);
const app = {
  user: null, cursor: 0, transport: null, kind: 'ws',
  outbox: new Map(),            // cmid -> { body, li, sentAt }
  latencies: [],                // ms, last 100 live events
  startedAt: Date.now(),
};

// ---- the sink every transport delivers to ----
const sink = {
  cursor: () => app.cursor,
  deliver(ev) {
    if (ev.id <= app.cursor) return;
    app.cursor = ev.id;
    stats.events++;
    if (ev.ts >= app.startedAt) record(Date.now() - ev.ts);
    if (ev.type === 'chat') showChat(ev);
    else if (ev.type === 'alert') showAlert(ev);
    renderStats();
  },
  state(s) {
    $('state').textContent = s;
    $('state').className = 'state ' + s;
    if (s === 'connected') flushOutbox();
  },
  ended() { loggedOut('your session has ended'); },
};

function record(ms) {
  app.latencies.push(Math.max(0, ms));
  if (app.latencies.length > 100) app.latencies.shift();
}

function percentile(p) {
  if (!app.latencies.length) return '–';
  const a = [...app.latencies].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(p * a.length))] + ' ms';
}

function renderStats() {
  $('stat-requests').textContent = stats.requests;
  $('stat-bytes').textContent = stats.bytes;
  $('stat-events').textContent = stats.events;
  $('stat-p50').textContent = percentile(0.5);
  $('stat-p95').textContent = percentile(0.95);
  $('stat-cursor').textContent = app.cursor;
}

function line(cls, parts) {
  const li = document.createElement('li');
  li.className = cls;
  for (const [c, text] of parts) {
    const span = document.createElement('span');
    span.className = c;
    span.textContent = text;
    li.append(span);
  }
  return li;
}

function append(li) {
  const list = $('messages');
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  if (atEnd) list.scrollTop = list.scrollHeight;
}

function showChat(ev) {
  const time = new Date(ev.ts).toLocaleTimeString();
  const li = line('chat', [['time', time], ['from', ev.from], ['body', ev.body]]);
  li.dataset.id = ev.id;
  // Our own message was shown as "sending": it is replaced by the event.
  for (const [cmid, m] of app.outbox)
    if (m.li && m.id === ev.id) { m.li.remove(); app.outbox.delete(cmid); }
  append(li);
}

function showAlert(ev) {
  const li = line('alert', [['time', new Date(ev.ts).toLocaleTimeString()], ['body', ev.body]]);
  li.dataset.id = ev.id;
  append(li);
  toast(ev.body);
  notify(ev.body);
  refreshBalance();
}

// Alerts also as desktop notifications, once the user allowed them (the
// permission is asked only from a click, as browsers require).
function notify(text) {
  if ('Notification' in window && Notification.permission === 'granted')
    new Notification('chat', { body: text, tag: 'chat-alert-' + Date.now() });
}

function offerNotifications() {
  const b = $('notify');
  b.hidden = !('Notification' in window) || Notification.permission !== 'default';
  b.onclick = () => Notification.requestPermission().then(offerNotifications);
}

function toast(text) {
  const div = document.createElement('div');
  div.className = 'toast';
  div.textContent = text;
  $('toasts').append(div);
  setTimeout(() => div.remove(), 6000);
}

// ---- sending: the outbox ----
function send(body) {
  const cmid = newMsgId();
  const li = line('chat sending', [['from', app.user], ['body', body]]);
  append(li);
  app.outbox.set(cmid, { body, li, sentAt: performance.now() });
  trySend(cmid);
}

function trySend(cmid) {
  const m = app.outbox.get(cmid);
  if (!m || m.inFlight || !app.transport) return;
  m.inFlight = true;
  app.transport.send({ cmid, body: m.body }).then((id) => {
    m.inFlight = false;
    m.id = id;
    if (id <= app.cursor) { m.li.remove(); app.outbox.delete(cmid); }  // the event came first
  }, () => {
    m.inFlight = false;
    setTimeout(() => trySend(cmid), 1000);
  });
}

function flushOutbox() {
  for (const [cmid, m] of app.outbox) if (m.id === undefined) trySend(cmid);
}

// ---- transports ----
function useTransport(kind) {
  if (app.transport) app.transport.stop();
  app.kind = kind;
  $('transport').value = kind;
  $('live-transport').textContent = $('transport').selectedOptions[0].textContent;
  sink.state('connecting');
  app.transport = new TRANSPORTS[kind](sink);
  app.transport.start();
  flushOutbox();
}

// ---- bank ----
async function refreshBalance() {
  try {
    const a = await api('GET', '/account');
    $('balance').textContent = (a.balance_cents / 100).toFixed(2);
  } catch { /* shown again at the next alert */ }
}

function cents(text) {
  const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(text.trim());
  return m ? Number(m[1]) * 100 + Number((m[2] || '0').padEnd(2, '0')) : NaN;
}

async function transfer(e) {
  e.preventDefault();
  $('transfer-error').textContent = '';
  const amount = cents($('amount').value);
  try {
    await api('POST', '/transfers', { to: $('to').value.trim(), amount_cents: amount,
                                      idempotency_key: newMsgId() });
    $('amount').value = '';
  } catch (err) {
    $('transfer-error').textContent = err.message;
  }
}

// ---- login ----
function loggedIn(user) {
  app.user = user;
  localStorage.setItem('chat.loggedIn', '1');
  $('who').textContent = user;
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  $('logout').hidden = false;
  refreshBalance();
  useTransport(app.kind);
}

function loggedOut(why) {
  localStorage.removeItem('chat.loggedIn');
  if (app.transport) app.transport.stop();
  app.transport = null;
  app.user = null;
  $('login-view').hidden = false;
  $('chat-view').hidden = true;
  $('logout').hidden = true;
  sink.state('offline');
  $('login-error').textContent = why || '';
}

async function credentials(path, extra) {
  $('login-error').textContent = '';
  const user = $('user').value.trim(), password = $('password').value;
  try {
    const r = await api('POST', path, { user, password, ...extra });
    return r;
  } catch (err) {
    $('login-error').textContent = err.message;
    return null;
  }
}

async function login(e) {
  e.preventDefault();
  const r = await credentials('/login', { cookie: true });
  if (r) loggedIn(r.user);
}

async function register() {
  if (await credentials('/register', {}) && (await credentials('/login', { cookie: true })))
    loggedIn($('user').value.trim());
}

async function logout() {
  try { await api('POST', '/logout'); } catch { /* ended anyway */ }
  loggedOut('');
}

function init() {
  const q = new URLSearchParams(location.search).get('transport');
  if (q && TRANSPORTS[q]) app.kind = q;
  $('transport').value = app.kind;
  $('login-form').addEventListener('submit', login);
  $('register').addEventListener('click', register);
  $('logout').addEventListener('click', logout);
  $('transport').addEventListener('change', (e) => { if (app.user) useTransport(e.target.value); });
  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const body = $('body').value;
    if (!body) return;
    $('body').value = '';
    send(body);
  });
  $('transfer-form').addEventListener('submit', transfer);
  setInterval(renderStats, 1000);
  offerNotifications();
  // A session cookie from an earlier visit: straight into the chat. The
  // page cannot read its HttpOnly cookie, so it remembers that it logged
  // in (no needless 401 in the console on a first visit).
  if (localStorage.getItem('chat.loggedIn'))
    api('GET', '/account').then((a) => loggedIn(a.user), () => loggedOut(''));
  else
    loggedOut('');
  window.chatApp = { app, useTransport };      // for the browser tests
}

init();

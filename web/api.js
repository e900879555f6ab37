// api.js — the HTTP API from the page: JSON in and out, the session in an
// HttpOnly cookie (the page never sees the token), and the byte and request
// counts of the live panel (one meter per transport on the lab page). Errors are thrown as ApiError with the server's
// code, or "network" when no answer came.
export const stats = { requests: 0, bytes: 0, events: 0 };

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export async function api(method, path, body, signal, meter = stats) {
  const init = { method, signal, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    meter.requests++;
    res = await fetch('/api/v1' + path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'no answer from the server');
  }
  const text = await res.text();
  meter.bytes += text.length;
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || 'http_' + res.status, err.message,
                       Number(res.headers.get('Retry-After')) || 0);
  }
  return data;
}

// A client message id as bin/chat makes them: 12 hex digits of the time,
// then 20 random ones (ids that grow with time keep the server's index compact).
export function newMsgId() {
  const rnd = crypto.getRandomValues(new Uint8Array(10));
  return Date.now().toString(16).padStart(12, '0') +
         Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('');
}

// The API: the token (docs/api.md, "The dashboard and the token"), JSON calls with
// it, and the live event stream read with fetch() (EventSource cannot send headers).

const TOKEN_KEY = 'openloom.token';
let unauthorizedHandler = () => {};

/** Moves `#token=…` from the address bar into sessionStorage. */
export function adoptTokenFromFragment() {
  const hash = location.hash.replace(/^#/, '');
  if (!hash) return;
  const params = new URLSearchParams(hash);
  if (!params.has('token')) return;
  setToken(params.get('token') || '');
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value.trim());
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}

/** Called with the error on every 401. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** An API refusal: `{error, detail}` and the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
  /** What the user reads: the server's own words. */
  get text() {
    return this.code && this.detail ? `${this.detail} (${this.code})` : this.detail || this.code;
  }
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** `api('POST', '/api/tasks', body)`: the parsed JSON, or throws an ApiError. */
export async function api(method, path, body) {
  const init = { method, headers: headers(), cache: 'no-store', credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the OpenLoom server (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      (data && data.error) || `http_${response.status}`,
      (data && data.detail) || text.slice(0, 300) || response.statusText,
    );
    if (response.status === 401) unauthorizedHandler(error);
    throw error;
  }
  return data;
}

/**
 * The live event stream. `handlers`: `snapshot(data)`, `task(data)`, `state(name,
 * detail)` with name one of connecting, live, retrying, unauthorized, stopped.
 * Reconnects with backoff (honouring the server's `retry:`), sending Last-Event-ID.
 */
export function openEvents(handlers) {
  let lastId = '';
  let retryMs = 2000;
  let attempt = 0;
  let controller = null;
  let stopped = false;
  let timer = 0;
  let watchdog = 0;
  let generation = 0;
  // Heartbeats come every 15 s; silence for 45 s means a dead connection.
  const SILENCE_MS = 45000;

  function feel() {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => controller && controller.abort(), SILENCE_MS);
  }

  async function connect() {
    clearTimeout(timer);
    if (stopped) return;
    const mine = ++generation;
    if (controller) controller.abort();
    controller = new AbortController();
    handlers.state('connecting');
    const extra = { Accept: 'text/event-stream' };
    if (lastId) extra['Last-Event-ID'] = lastId;
    try {
      const response = await fetch('/api/events', { headers: headers(extra), signal: controller.signal, cache: 'no-store' });
      if (response.status === 401) {
        handlers.state('unauthorized');
        unauthorizedHandler(new ApiError(401, 'unauthorized', 'the API token is missing or wrong'));
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      attempt = 0;
      handlers.state('live');
      feel();
      await read(response.body.getReader(), mine);
      if (mine !== generation) return;
      if (!stopped) handlers.state('retrying', 'the server closed the stream');
    } catch (e) {
      if (stopped || mine !== generation) return;
      handlers.state('retrying', e.name === 'AbortError' ? 'no heartbeat' : e.message);
    } finally {
      if (mine === generation) clearTimeout(watchdog);
    }
    schedule();
  }

  function schedule() {
    if (stopped) return;
    const delay = Math.min(30000, retryMs * 2 ** Math.min(attempt, 4)) * (0.8 + Math.random() * 0.4);
    attempt += 1;
    handlers.state('retrying', `reconnecting in ${Math.round(delay / 1000)}s`, Date.now() + delay);
    timer = setTimeout(connect, delay);
  }

  async function read(reader, mine) {
    const decoder = new TextDecoder();
    let buffer = '';
    let event = '';
    let data = [];
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done || mine !== generation) return;
      feel();
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (id !== null) lastId = id;
          if (data.length) dispatch(event || 'message', data.join('\n'));
          event = '';
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id') id = val;
        else if (field === 'retry' && /^\d+$/.test(val)) retryMs = Number(val);
      }
    }
  }

  function dispatch(name, text) {
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      return;
    }
    if (name === 'snapshot') handlers.snapshot(payload);
    else if (name === 'task') handlers.task(payload);
  }

  connect();
  return {
    /** Reconnects now (after a new token, say). */
    restart() {
      stopped = false;
      attempt = 0;
      clearTimeout(timer);
      timer = setTimeout(connect, 0);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (controller) controller.abort();
      handlers.state('stopped');
    },
  };
}

// DOM helpers and formatting. Everything that comes from the API (agent messages,
// diffs, summaries) becomes text nodes: nothing here parses HTML.

/** `h('div', {class: 'x', onclick: f}, 'text', child)`: an element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'class') {
        el.className = value;
      } else if (key === 'text') {
        el.textContent = String(value);
      } else if (key === 'dataset') {
        Object.assign(el.dataset, value);
      } else if (key in el && typeof value !== 'string') {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces `el`'s children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (id) => document.getElementById(id);

/** Milliseconds since the epoch, or NaN. */
export function ms(value) {
  if (value === null || value === undefined || value === '') return NaN;
  if (typeof value === 'number') return value < 1e12 ? value * 1000 : value;
  return Date.parse(value);
}

/** "12s ago", "in 3m", "—". */
export function ago(value, now = Date.now()) {
  const t = ms(value);
  if (Number.isNaN(t)) return '—';
  const d = Math.round((now - t) / 1000);
  const future = d < 0;
  const s = Math.abs(d);
  let text;
  if (s < 5) return future ? 'now' : 'just now';
  if (s < 60) text = `${s}s`;
  else if (s < 3600) text = `${Math.floor(s / 60)}m`;
  else if (s < 86400) text = `${Math.floor(s / 3600)}h`;
  else text = `${Math.floor(s / 86400)}d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A `<time>` whose text ticks (see `tick`). */
export function timeAgo(value) {
  const t = ms(value);
  if (Number.isNaN(t)) return h('span', { class: 'muted', text: '—' });
  const iso = new Date(t).toISOString();
  return h('time', { datetime: iso, title: new Date(t).toLocaleString(), dataset: { ago: iso }, text: ago(iso) });
}

/** Updates every ticking time on the page. */
export function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-ago]')) {
    const text = ago(el.dataset.ago, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

export function clock(value) {
  const t = ms(value);
  if (Number.isNaN(t)) return '—';
  const d = new Date(t);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

export function num(n) {
  const v = Number(n) || 0;
  return v.toLocaleString('en-US');
}

export function compact(n) {
  const v = Number(n) || 0;
  if (v >= 1e9) return `${(v / 1e9).toFixed(1)}B`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return num(v);
}

export function cost(n) {
  const v = Number(n) || 0;
  return v > 0 && v < 0.01 ? `$${v.toFixed(4)}` : `$${v.toFixed(2)}`;
}

export function pct(x) {
  const v = Number(x) || 0;
  return `${Math.round(v * 100)}%`;
}

export function minutes(seconds) {
  const s = Number(seconds) || 0;
  if (s === 0) return 'once';
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

/** A status badge: `running`, `failed`, … */
export function badge(status) {
  const s = String(status || 'unknown');
  return h('span', { class: `badge st-${s.replace(/[^a-z_]/g, '')}`, text: s });
}

/** A progress bar with its text, e.g. 1/3. */
export function progressBar(done, total, fraction) {
  const f = total > 0 ? done / total : Number(fraction) || 0;
  const bar = h('span', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(Math.round(f * 100)) },
    h('span', { class: 'bar-fill' }));
  bar.firstChild.style.width = `${Math.max(0, Math.min(100, f * 100))}%`;
  return h('span', { class: 'progress' }, bar, h('span', { class: 'mono small', text: total > 0 ? `${done}/${total}` : pct(f) }));
}

/** A table from column titles and rows of cells; `onRow(row)` makes rows open things. */
export function table(columns, rows, opts = {}) {
  const head = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.cls, text: c.title }))));
  const body = h('tbody');
  for (const row of rows) {
    const tr = h('tr', { class: opts.onRow ? 'clickable' : undefined, dataset: row.data });
    for (const [i, cell] of row.cells.entries()) {
      tr.appendChild(h('td', { class: columns[i]?.cls }, cell));
    }
    if (opts.onRow) {
      tr.addEventListener('click', (e) => {
        if (e.target.closest('button, a, input, select, textarea, summary')) return;
        opts.onRow(row);
      });
    }
    body.appendChild(tr);
  }
  return h('table', { class: `tbl ${opts.cls || ''}` }, head, body);
}

/** An empty state: what is missing and what to do about it. */
export function empty(title, hint) {
  return h('div', { class: 'empty' }, h('strong', { text: title }), hint ? h('span', { class: 'muted', text: hint }) : null);
}

/** A segmented control (radiogroup); arrow keys move the choice. */
export function segmented(container, options, current, onChange) {
  fill(container);
  const buttons = options.map(([value, label]) => {
    const b = h('button', {
      type: 'button', role: 'radio', 'aria-checked': String(value === current),
      tabindex: value === current ? '0' : '-1', dataset: { value: String(value) }, text: label,
      onclick: () => choose(value, true),
    });
    return b;
  });
  function choose(value, focus) {
    for (const b of buttons) {
      const on = b.dataset.value === String(value);
      b.setAttribute('aria-checked', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    onChange(value);
  }
  container.addEventListener('keydown', (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const step = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : e.key === 'ArrowLeft' || e.key === 'ArrowUp' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const next = options[(i + step + options.length) % options.length][0];
    choose(next, true);
  });
  append(container, buttons);
  return { set: (value) => choose(value, false) };
}

/** A tablist with arrow-key navigation; returns the selected value via `onChange`. */
export function tabs(container, options, current, onChange) {
  fill(container);
  const buttons = options.map(([value, label]) => h('button', {
    type: 'button', role: 'tab', 'aria-selected': String(value === current), tabindex: value === current ? '0' : '-1',
    dataset: { value }, text: label, onclick: () => select(value, false),
  }));
  function select(value, focus) {
    for (const b of buttons) {
      const on = b.dataset.value === value;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    }
    onChange(value);
  }
  container.onkeydown = (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    select(options[(i + step + options.length) % options.length][0], true);
  };
  append(container, buttons);
}

/** A button that asks once more before doing something destructive. */
export function confirmButton(label, confirmLabel, action, cls = 'danger') {
  let armed = false;
  let timer = 0;
  const b = h('button', { type: 'button', class: cls, text: label });
  b.addEventListener('click', () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      b.classList.add('armed');
      timer = setTimeout(() => { armed = false; b.textContent = label; b.classList.remove('armed'); }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    b.textContent = label;
    b.classList.remove('armed');
    action(b);
  });
  return b;
}

/** Runs `fn` at most once per `wait` ms, trailing. */
export function debounce(fn, wait) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

export function shortPath(path) {
  const p = String(path || '');
  const parts = p.split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : p || '—';
}

/**
 * The `/status` page: HTML, CSS and hand-written JavaScript in one string, nothing loaded from elsewhere (no CDN,
 * no library). It polls `/status.json` once a second and draws, from the server's rolling window (`History.ts`):
 *
 * - per project and per target, four small plots over the last minutes — operations/s (and refusals), p99
 *   latency, errors/s, in flight vs the limit (and queued) — as inline SVG;
 * - per breaker, a timeline of its state, one cell a second;
 * - the folded event list (a repeated event is one line with a count), the live connections, tiers and idle
 *   projects.
 *
 * The layout fits 1280 px without cutting anything off: two columns of cards, tables at 100 % with long cells
 * wrapping. Plots stretch to their card (`preserveAspectRatio="none"` with non-scaling strokes); their numbers are
 * HTML around them, so text never stretches.
 *
 * @since 0.1.0
 */

const style = `
  :root { --ink: #1d2430; --muted: #6b7280; --line: #e6e8ec; --card: #fff; --bg: #f5f6f8;
    --ok: #2563eb; --refused: #d97706; --err: #dc2626; --lat: #7c3aed; --flight: #059669; --queued: #64748b; }
  * { box-sizing: border-box; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 1.25rem 1.5rem 2rem; color: var(--ink); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
  h1 { font-size: 1.35rem; margin: 0; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .6rem; }
  h2 small { font-weight: 400; color: var(--muted); margin-left: .5rem; }
  #meta { color: var(--muted); }
  .legend { display: flex; gap: .9rem; flex-wrap: wrap; color: var(--muted); font-size: .8rem; margin: -.2rem 0 .6rem; }
  .legend i { display: inline-block; width: .9rem; height: .2rem; vertical-align: middle; margin-right: .3rem; border-radius: 1px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 34rem), 1fr)); gap: .9rem; }
  .cards.compact { grid-template-columns: repeat(auto-fill, minmax(min(100%, 24rem), 1fr)); }
  .cards.compact .plot-box { height: 2.8rem; }
  .card-head code { font-size: .8rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
  .card { background: var(--card); border-radius: .5rem; box-shadow: 0 1px 2px #0002; padding: .7rem .9rem .6rem; min-width: 0; }
  .card-head { display: flex; align-items: center; gap: .5rem; min-width: 0; margin-bottom: .4rem; }
  .card-head b { font-size: 1rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0; }
  .card-head .now { margin-left: auto; color: var(--muted); font-size: .8rem; white-space: nowrap; }
  .badge { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: .75rem; font-weight: 600; background: #eef0f4; color: #374151; white-space: nowrap; }
  .plots { display: grid; grid-template-columns: 1fr 1fr; gap: .55rem .9rem; }
  .plot { min-width: 0; }
  .plot-head { display: flex; justify-content: space-between; gap: .5rem; font-size: .75rem; color: var(--muted); }
  .plot-head > span { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .plot-head > span:last-child { color: var(--ink); font-variant-numeric: tabular-nums; flex: none; }
  .plot-box { position: relative; height: 3.4rem; border-bottom: 1px solid var(--line); background: linear-gradient(#fafbfc, #fff); }
  .plot-box svg { position: absolute; inset: 0; width: 100%; height: 100%; overflow: visible; }
  .plot-box .scale { position: absolute; top: 0; left: .2rem; font-size: .65rem; color: var(--muted); background: #fffc; padding: 0 .15rem; }
  .timeline { margin-top: .6rem; display: grid; grid-template-columns: 5.2rem 1fr; gap: .2rem .5rem; align-items: center; font-size: .75rem; color: var(--muted); }
  .timeline svg { width: 100%; height: .7rem; display: block; border-radius: 2px; }
  .axis { display: flex; justify-content: space-between; grid-column: 2; font-size: .65rem; color: var(--muted); }
  rect.c { fill: #86efac; } rect.h { fill: #fcd34d; } rect.o { fill: #f87171; } rect.n { fill: #eef0f4; }
  table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px #0002; width: 100%; border-radius: .5rem; overflow: hidden; }
  th, td { padding: .32rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
  th { background: #eef0f4; font-weight: 600; font-size: .8rem; white-space: nowrap; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.wrap { overflow-wrap: anywhere; }
  .state { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: .75rem; font-weight: 600; white-space: nowrap; }
  .closed { background: #d8f3dc; color: #1b5e20; } .open { background: #ffd6d6; color: #9b1c1c; }
  .half-open { background: #fff1c2; color: #7a5b00; } .muted { color: var(--muted); }
  .count { display: inline-block; min-width: 2.2rem; padding: 0 .4rem; border-radius: .6rem; background: #fde68a; color: #78350f; font-weight: 700; font-size: .75rem; text-align: center; }
  .dot { display: inline-block; width: .55rem; height: .55rem; border-radius: 50%; margin-right: .35rem; background: #9ca3af; }
  .dot.bad { background: var(--err); } .dot.warn { background: var(--refused); } .dot.good { background: #16a34a; }
  .split { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: 1rem; align-items: start; }
  .chips { display: flex; flex-wrap: wrap; gap: .35rem; }
  .empty { color: var(--muted); padding: .6rem 0; }
`

const body = `
<header><h1>tenantpool</h1><div id="meta">loading…</div></header>
<h2>Projects <small>the last minutes, one point a second</small></h2>
<div class="legend">
  <span><i style="background:var(--ok)"></i>operations/s</span><span><i style="background:var(--refused)"></i>refused/s</span>
  <span><i style="background:var(--err)"></i>errors/s</span><span><i style="background:var(--lat)"></i>p99 latency</span>
  <span><i style="background:var(--flight)"></i>in flight</span><span><i style="background:var(--queued)"></i>queued</span>
  <span><i style="background:none;border-top:2px dashed var(--err)"></i>limit</span>
  <span>breakers: <i style="background:#86efac"></i>closed <i style="background:#fcd34d"></i>half-open <i style="background:#f87171"></i>open <i style="background:#eef0f4;box-shadow:0 0 0 1px #d1d5db"></i>not live</span>
</div>
<div id="project-plots" class="cards"></div>
<h2>Targets <small>databases as the projects share them</small></h2>
<div id="target-plots" class="cards compact"></div>
<h2>Recent events <small>repeats folded into one line with a count</small></h2>
<table id="events"><thead><tr><th>Time</th><th>Event</th><th class="num">Count</th><th>Engine</th><th>Project</th><th>Detail</th></tr></thead><tbody></tbody></table>
<h2>Live connections</h2>
<table id="projects"><thead><tr><th>Project</th><th>Tier</th><th>Engine</th><th>Target</th><th>Breaker</th><th>Target breaker</th><th class="num">Active</th><th class="num">Queued</th><th>Pool <span class="muted">size / avail. / pending</span></th><th class="num">Queries</th><th class="num">Errors</th></tr></thead><tbody></tbody></table>
<div class="split">
  <div><h2>Tiers</h2>
  <table id="tiers"><thead><tr><th>Tier</th><th class="num">Min pool</th><th class="num">Max pool</th><th class="num">Max concurrent</th><th class="num">Timeout</th><th>Priority</th></tr></thead><tbody></tbody></table></div>
  <div><h2>Idle projects</h2>
  <table id="idle"><thead><tr><th>Project</th><th>Tier</th></tr></thead><tbody></tbody></table></div>
</div>
`

// The page's JavaScript (plain ES2020, no template literals: this file holds it in one).
const script = `
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const state = (s) => '<span class="state ' + esc(s) + '">' + esc(s) + '</span>';
const rows = (id, html, cols) => { document.querySelector('#' + id + ' tbody').innerHTML = html || '<tr><td class="muted" colspan="' + cols + '">none</td></tr>'; };
const num = (n) => n.toLocaleString('en-US');
// Compact numbers for plot labels: 0.35, 12, 1.2k.
const short = (n) => n >= 10000 ? Math.round(n / 1000) + 'k' : n >= 1000 ? (n / 1000).toFixed(1) + 'k' : n >= 10 ? String(Math.round(n)) : String(Math.round(n * 100) / 100);
const ms = (v) => v === null || v === undefined ? '–' : v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + ' s' : short(v) + ' ms';
const last = (xs) => xs.length === 0 ? null : xs[xs.length - 1];
const sum = (xs, n) => xs.slice(-n).reduce((a, b) => a + (b ?? 0), 0);
// A 1-2-5 ceiling, so scales read as round numbers.
const nice = (v) => { if (!(v > 0)) return 1; const p = Math.pow(10, Math.floor(Math.log10(v))); for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p; return 10 * p; };

// One SVG plot over the window: x is the second (the newest at the right), y is 0..max. Strokes keep their width
// when the SVG stretches to its box.
function svgPlot(W, max, layers) {
  const H = 100, y = (v) => (H - (Math.min(v, max) / max) * (H - 4)).toFixed(1);
  let out = '<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none" class="plot-svg">';
  for (const l of layers) {
    if (l.limit !== undefined) { out += '<line x1="0" x2="' + W + '" y1="' + y(l.limit) + '" y2="' + y(l.limit) + '" stroke="var(--err)" stroke-width="1.5" stroke-dasharray="5 4" vector-effect="non-scaling-stroke" class="limit"/>'; continue; }
    const off = W - l.values.length;
    let d = '', dots = '', pen = false, first = -1, lastX = 0;
    l.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      const x = off + i + 0.5;
      // A point with no neighbour is a zero-length segment with a wide round cap: a dot, visible on its own.
      const alone = !pen && (l.values[i + 1] === null || l.values[i + 1] === undefined);
      d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y(v); pen = true;
      if (alone) dots += 'M' + x.toFixed(1) + ' ' + y(v) + 'l0.001 0';
      if (first < 0) first = x; lastX = x;
    });
    if (d === '') continue;
    // A series that stayed at zero is drawn faint: a red line along the bottom should not look like trouble.
    const faint = !l.values.some((v) => v > 0);
    if (l.fill && first >= 0 && !l.values.some((v) => v === null)) out += '<path d="' + d + 'L' + lastX.toFixed(1) + ' ' + H + 'L' + first.toFixed(1) + ' ' + H + 'Z" fill="' + l.color + '" fill-opacity=".14" stroke="none"/>';
    out += '<path d="' + d + '" fill="none" stroke="' + l.color + '" stroke-width="' + (l.width || 1.6) + '" stroke-linejoin="round" stroke-linecap="round"' + (l.dash ? ' stroke-dasharray="3 3"' : '') + (faint ? ' stroke-opacity=".3"' : '') + ' vector-effect="non-scaling-stroke"/>';
    if (dots !== '') out += '<path d="' + dots + '" fill="none" stroke="' + l.color + '" stroke-width="5" stroke-linecap="round" vector-effect="non-scaling-stroke" class="dot-points"/>';
  }
  return out + '</svg>';
}

// A titled plot: the latest value beside the title, the scale's top in the corner.
function plot(W, title, now, layers, unit, limit) {
  let peak = 0;
  for (const l of layers) for (const v of l.values) if (v !== null && v > peak) peak = v;
  // The limit joins the scale when it is near the data; far above it would flatten the line, so it is only named.
  const onScale = limit !== null && limit !== undefined && limit <= 4 * Math.max(peak, 1);
  const max = nice(Math.max(peak, onScale ? limit : 0) * (onScale ? 1.1 : 1.15));
  const all = onScale ? layers.concat([{ limit: limit }]) : layers;
  const scale = (unit === 'ms' ? ms(max) : short(max)) + (limit === null || limit === undefined ? '' : ' · limit ' + num(limit) + (onScale ? '' : ', off the scale'));
  return '<div class="plot"><div class="plot-head"><span>' + title + '</span><span>' + now + '</span></div>' +
    '<div class="plot-box"><span class="scale">' + esc(scale) + '</span>' + svgPlot(W, max, all) + '</div></div>';
}

// A breaker's states as runs of colour, one cell a second, aligned with the plots.
function timeline(W, states) {
  const off = W - states.length;
  let out = '<svg viewBox="0 0 ' + W + ' 1" preserveAspectRatio="none"><rect class="n" x="0" y="0" width="' + W + '" height="1"/>';
  for (let i = 0; i < states.length;) {
    let j = i; while (j < states.length && states[j] === states[i]) j++;
    const cls = states[i] === '-' ? 'n' : states[i];
    out += '<rect class="' + cls + '" x="' + (off + i) + '" y="0" width="' + (j - i) + '" height="1"><title>' + ({ c: 'closed', h: 'half-open', o: 'open', '-': 'not live' })[states[i]] + ' for ' + (j - i) + ' s</title></rect>';
    i = j;
  }
  return out + '</svg>';
}

function card(W, t, head, kind) {
  const n5 = Math.min(5, t.ops.length);
  const rate = (xs) => n5 === 0 ? 0 : sum(xs, n5) / n5;
  const plots = [
    plot(W, 'ops/s', short(rate(t.ops)) + (rate(t.rejected) > 0 ? ' <span style="color:var(--refused)">+' + short(rate(t.rejected)) + ' refused</span>' : ''),
      [{ values: t.ops, color: 'var(--ok)', fill: true }, { values: t.rejected, color: 'var(--refused)' }]),
    plot(W, 'p99 latency', ms(last(t.p99.filter((v) => v !== null))), [{ values: t.p99, color: 'var(--lat)' }], 'ms'),
    plot(W, 'errors/s', short(rate(t.errors)), [{ values: t.errors, color: 'var(--err)', fill: true }]),
    plot(W, 'in flight', num(last(t.inFlight) ?? 0) + (last(t.queued) ? ' +' + num(last(t.queued)) + ' queued' : ''),
      [{ values: t.inFlight, color: 'var(--flight)', fill: true }, { values: t.queued, color: 'var(--queued)', dash: true }], undefined, t.limit)
  ];
  const lines = t.breakers.map((b) => '<span>' + esc(b.name) + '</span>' + timeline(W, b.states)).join('');
  const span = W < 120 ? W + ' s' : Math.round(W / 60) + ' min';
  return '<div class="card" data-' + kind + '="' + esc(t.label) + '">' + head + '<div class="plots">' + plots.join('') + '</div>' +
    '<div class="timeline">' + lines + '<div class="axis"><span>−' + span + '</span><span>now</span></div></div></div>';
}

const breakerNow = (t) => t.breakers.map((b) => { const s = b.states[b.states.length - 1]; return s === 'o' ? state('open') : s === 'h' ? state('half-open') : ''; }).join(' ');

const engineOrder = { redis: 0, postgres: 1, mongodb: 2 };
const live = (t) => t.breakers.some((b) => b.states[b.states.length - 1] !== '-');

function renderHistory(h) {
  const W = h.windowSeconds;
  const idle = (t) => live(t) ? '' : '<span class="now">not live now</span>';
  const projects = h.projects.map((t) => card(W, t, '<div class="card-head"><b>' + esc(t.label) + '</b><span class="badge">' + esc(t.tier) + '</span>' +
    breakerNow(t) + idle(t) + '</div>', 'project'));
  // Targets by engine, then label; the label loses its scheme (the badge says it), the whole of it is the tooltip.
  const targets = h.targets.slice().sort((a, b) => (engineOrder[a.engine] ?? 9) - (engineOrder[b.engine] ?? 9) || (a.label < b.label ? -1 : 1))
    .map((t) => card(W, t, '<div class="card-head"><span class="badge">' + esc(t.engine) + '</span><code title="' + esc(t.label) + '">' +
      esc(t.label.replace(/^[a-z]+:[/][/]/, '')) + '</code>' + breakerNow(t) + idle(t) + '</div>', 'target'));
  document.getElementById('project-plots').innerHTML = projects.join('') || '<div class="empty">no project has been live in the window</div>';
  document.getElementById('target-plots').innerHTML = targets.join('') || '<div class="empty">no target has been live in the window</div>';
}

const eventClass = (name) => name === 'circuit-open' ? 'bad' : name === 'overloaded' || name === 'circuit-half-open' ? 'warn' : name === 'circuit-close' ? 'good' : '';
const clock = (iso) => new Date(iso).toLocaleTimeString();
// A target label may break after its user and after its port, not in the middle of a host name.
const breakable = (label) => esc(label).replace(/([@]|:[0-9]+[/])/g, '$1<wbr>');

function render(s) {
  document.getElementById('meta').textContent = 'updated ' + clock(s.generatedAt) + ' · live projects ' + s.stats.liveProjects + ' · targets ' + s.stats.liveTargets + ' · in flight ' + s.stats.inFlight;
  renderHistory(s.history);
  rows('events', s.events.map((e) => '<tr><td>' + esc(clock(e.first) === clock(e.last) ? clock(e.last) : clock(e.first) + '–' + clock(e.last)) + '</td>' +
    '<td><span class="dot ' + eventClass(e.name) + '"></span>' + esc(e.name) + '</td><td class="num">' + (e.count > 1 ? '<span class="count">×' + num(e.count) + '</span>' : '') + '</td>' +
    '<td>' + esc(e.engine) + '</td><td>' + esc(e.projectId) + '</td><td class="muted wrap">' + esc(e.detail) + '</td></tr>').join(''), 6);
  rows('projects', s.projects.flatMap((p) => p.engines.map((e, i) => '<tr>' +
    (i === 0 ? '<td rowspan="' + p.engines.length + '"><b>' + esc(p.id) + '</b></td><td rowspan="' + p.engines.length + '">' + esc(p.tier) + '</td>' : '') +
    '<td>' + esc(e.engine) + '</td><td class="muted">' + breakable(e.target) + '</td><td>' + state(e.breaker) + '</td><td>' + state(e.targetBreaker) + '</td>' +
    '<td class="num">' + e.active + '</td><td class="num">' + e.queued + '</td><td>' + (e.pool ? esc(e.pool.size + ' / ' + e.pool.available + ' / ' + e.pool.pending) : '–') + '</td>' +
    '<td class="num">' + num(e.queryCount) + '</td><td class="num">' + num(e.errorCount) + '</td></tr>')).join(''), 11);
  rows('idle', s.idle.map((p) => '<tr><td>' + esc(p.id) + '</td><td>' + esc(p.tier) + '</td></tr>').join(''), 2);
  rows('tiers', Object.entries(s.tiers).map(([n, t]) => '<tr><td>' + esc(n) + '</td><td class="num">' + t.minPool + '</td><td class="num">' + t.maxPool + '</td><td class="num">' + t.maxConcurrent +
    '</td><td class="num">' + (t.timeoutMillis / 1000) + ' s</td><td>' + esc(t.priority) + '</td></tr>').join(''), 6);
}

async function refresh() {
  try {
    const r = await fetch('/status.json', { cache: 'no-store' });
    render(await r.json());
  } catch (err) {
    document.getElementById('meta').textContent = 'status unavailable: ' + err;
  }
}
refresh();
setInterval(refresh, 1000);
`

/**
 * The page.
 *
 * @category constants
 * @since 0.1.0
 */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tenantpool status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
${body}
<script>${script}</script>
</body>
</html>
`

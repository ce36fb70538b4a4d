// vidcap annotate: the page. Plain JavaScript over the server's JSON API
// (src/annotate/server.rs documents it); no build step, nothing loaded from elsewhere.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video');

  // The first load carries ?token=…; the answer set a cookie, and the header below covers
  // browsers that refuse it. The token leaves the address bar (and the history).
  const token = new URLSearchParams(location.search).get('token');
  if (token) history.replaceState(null, '', location.pathname);

  let list = null; // GET /api/clips
  let clip = null; // GET /api/clips/N of the clip on screen
  let suggestion = null; // GET /api/clips/N/suggestion of that clip
  let dirty = false; // edits not saved yet
  let generation = 0; // answers for a clip no longer on screen are dropped
  let stopAt = null; // "play window" pauses here

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers['X-Vidcap-Token'] = token;
    const response = await fetch(path, Object.assign({}, options, {
      headers, credentials: 'same-origin', cache: 'no-store',
    }));
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function message(text, kind) {
    const m = $('message');
    m.textContent = text;
    m.className = kind || '';
  }

  function span(className, text) {
    const s = document.createElement('span');
    s.className = className;
    s.textContent = text;
    return s;
  }

  function number(input) {
    const v = input.value.trim();
    if (v === '') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : NaN;
  }

  const seconds = (t) => String(Math.round(t * 1000) / 1000);

  // ---- the list ------------------------------------------------------------------------

  async function refreshList() {
    list = await api('/api/clips');
    renderList();
  }

  function renderList() {
    $('out-file').textContent = list.out;
    $('progress-bar').max = Math.max(1, list.total);
    $('progress-bar').value = list.captioned;
    $('progress-text').textContent = `${list.captioned} of ${list.total} captioned`;
    let order;
    if (list.order === 'familiarity') {
      order = 'least familiar first';
      if (list.analysing) order += ` (${list.analysed} of ${list.total} clips scored so far)`;
    } else if (list.model) {
      order = `file order (${list.model} has no familiarity summary)`;
    } else {
      order = 'file order (no model)';
    }
    $('order-note').textContent = `order: ${order}`;
    const pane = $('list-pane');
    const scroll = pane.scrollTop;
    $('clip-list').replaceChildren(...list.clips.map((c) => {
      const li = document.createElement('li');
      li.dataset.index = c.index;
      li.title = c.video + (c.error ? `\n${c.error}` : '');
      if (clip && clip.index === c.index) li.classList.add('current');
      if (c.captioned) li.classList.add('captioned');
      if (c.error) li.classList.add('failed');
      const fam = c.familiarity == null ? '' : c.familiarity.toFixed(2);
      li.append(
        span('mark', c.captioned ? '✓' : ''),
        span('name', c.name),
        span(c.familiar === false ? 'fam unfamiliar' : 'fam', fam),
      );
      if (c.split) li.append(span('fam', c.split));
      li.addEventListener('click', () => go(c.index));
      return li;
    }));
    pane.scrollTop = scroll;
    if (clip) {
      const at = list.clips.findIndex((c) => c.index === clip.index);
      if (at >= 0) $('clip-position').textContent = `${at + 1} / ${list.total}`;
    }
  }

  function markCurrent() {
    for (const li of $('clip-list').children) {
      const current = clip && Number(li.dataset.index) === clip.index;
      li.classList.toggle('current', current);
      if (current) li.scrollIntoView({ block: 'nearest' });
    }
  }

  // ---- one clip ------------------------------------------------------------------------

  function go(index) {
    if (index == null || (clip && index === clip.index)) return;
    if (dirty && !confirm('This clip has changes that are not saved. Leave it anyway?')) return;
    openClip(index);
  }

  async function openClip(index) {
    const mine = ++generation;
    let detail;
    try {
      detail = await api(`/api/clips/${index}`);
    } catch (e) {
      message(e.message, 'error');
      return;
    }
    if (mine !== generation) return;
    clip = detail;
    suggestion = null;
    dirty = false;
    stopAt = null;
    $('editor').hidden = false;
    $('clip-position').textContent = `${clip.position} / ${clip.total}`;
    $('clip-name').textContent = clip.video;
    $('video-note').hidden = true;
    video.src = clip.media;
    $('start').value = clip.start != null ? seconds(clip.start) : '0';
    const end = clip.end != null ? clip.end : clip.duration;
    $('end').value = end != null ? seconds(end) : '';
    $('duration').textContent = clip.duration != null ? `video: ${clip.duration.toFixed(2)} s` : '';
    setCaptions(clip.captions.length ? clip.captions : ['']);
    $('split').value = clip.split || clip.suggested_split;
    $('split-note').textContent = clip.split
      ? ''
      : 'suggested: drawn from the seed (80 % train, 10 % val, 10 % test), train until a clip is';
    if (clip.error) message(clip.error, 'error');
    else message(clip.captioned ? 'captioned earlier: edit and save to change it' : '');
    markCurrent();
    loadSuggestion(index, null, mine);
  }

  function setCaptions(captions) {
    $('captions').replaceChildren();
    for (const text of captions) addCaption(text);
  }

  function captionBoxes() {
    return [...document.querySelectorAll('#captions textarea')];
  }

  function addCaption(text, focus) {
    const row = document.createElement('div');
    row.className = 'caption-row';
    const box = document.createElement('textarea');
    box.rows = 2;
    box.value = text || '';
    box.placeholder = 'what happens in the window, in one sentence';
    box.addEventListener('input', () => {
      dirty = true;
      box.classList.remove('suggested');
    });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '×';
    remove.title = 'remove this caption';
    remove.addEventListener('click', () => {
      row.remove();
      dirty = true;
      if (!captionBoxes().length) addCaption('');
    });
    row.append(box, remove);
    $('captions').append(row);
    if (focus) box.focus();
    return box;
  }

  async function loadSuggestion(index, range, mine) {
    const text = $('suggestion-text');
    text.className = 'muted';
    text.textContent = list && list.model ? 'the model is looking at the clip…' : 'no model (--model none): no suggestions';
    $('familiarity').hidden = true;
    $('use-suggestion').disabled = true;
    $('strip').hidden = true;
    $('strip-note').textContent = 'sampling frames…';
    const query = range ? `?start=${range.start}&end=${range.end}` : '';
    let s;
    for (;;) {
      try {
        s = await api(`/api/clips/${index}/suggestion${query}`);
        break;
      } catch (e) {
        if (mine !== generation) return;
        if (e.status === 504) continue; // the worker was busy: ask again
        text.textContent = e.message;
        $('strip-note').textContent = '';
        return;
      }
    }
    if (mine !== generation) return;
    suggestion = s;
    if (s.error) {
      text.className = 'error';
      text.textContent = s.error;
      $('strip-note').textContent = '';
      return;
    }
    if (s.strip) {
      $('strip').src = s.strip;
      $('strip').hidden = false;
      $('strip-note').textContent =
        `${s.frames.length} frames sampled over ${s.start.toFixed(2)}–${s.end.toFixed(2)} s: click one to go there`;
    } else {
      $('strip-note').textContent = 'no frame strip';
    }
    if (s.caption == null) {
      if (!s.model) text.textContent = 'no model (--model none): no suggestions';
      return;
    }
    text.className = '';
    text.textContent = s.caption;
    $('use-suggestion').disabled = false;
    if (s.familiarity != null) {
      const badge = $('familiarity');
      badge.hidden = false;
      badge.className = s.familiar ? 'badge' : 'badge unfamiliar';
      badge.textContent = s.familiar
        ? `familiarity ${s.familiarity.toFixed(2)}`
        : `familiarity ${s.familiarity.toFixed(2)}: unlike the model's training clips, a good one to caption`;
    }
    // Pre-fill the caption of a clip not captioned yet, unless the user began typing.
    const boxes = captionBoxes();
    if (!clip.captioned && !dirty && boxes.length && boxes.every((b) => b.value.trim() === '')) {
      boxes[0].value = s.caption;
      boxes[0].classList.add('suggested');
    }
  }

  async function save(andNext) {
    if (!clip) return;
    const body = {
      captions: captionBoxes().map((b) => b.value.trim()).filter((t) => t !== ''),
      split: $('split').value,
      start: number($('start')),
      end: number($('end')),
    };
    if (Number.isNaN(body.start) || Number.isNaN(body.end)) {
      message('not saved: the window\'s start and end are numbers of seconds', 'error');
      return;
    }
    // The whole video needs no window in the record.
    if (body.start !== null && body.start <= 0) body.start = null;
    if (body.end !== null && clip.duration != null && body.end >= clip.duration - 0.01) body.end = null;
    let saved;
    try {
      saved = await api(clip.save, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (e) {
      message(`not saved: ${e.message}`, 'error');
      return;
    }
    dirty = false;
    clip.captioned = true;
    clip.captions = saved.record.captions;
    clip.split = saved.record.split;
    clip.start = saved.record.start ?? null;
    clip.end = saved.record.end ?? null;
    for (const b of captionBoxes()) b.classList.remove('suggested');
    const name = clip.name;
    try { await refreshList(); } catch (e) { /* the save itself went through */ }
    let text = `${name} saved at ${new Date().toLocaleTimeString()}: ${saved.captioned} of ${saved.total} captioned`;
    if (andNext) {
      if (saved.next_uncaptioned != null) await openClip(saved.next_uncaptioned);
      else text += ' (all of them)';
    }
    if (!clip.error) message(text, 'ok');
  }

  // ---- the player ----------------------------------------------------------------------

  function seek(t) {
    if (!Number.isFinite(t)) return;
    video.currentTime = Math.max(0, t);
  }

  function togglePlay() {
    if (video.paused) video.play().catch(() => {});
    else video.pause();
  }

  function setEdge(which) {
    $(which).value = seconds(video.currentTime);
    dirty = true;
  }

  video.addEventListener('loadedmetadata', () => {
    if ($('end').value === '' && Number.isFinite(video.duration)) $('end').value = seconds(video.duration);
  });
  video.addEventListener('error', () => {
    const note = $('video-note');
    const codec = suggestion && suggestion.codec ? ` (${suggestion.codec})` : '';
    note.textContent = `This browser cannot play this file${codec}; the frames below show the clip, and the window can be typed in.`;
    note.hidden = false;
  });
  video.addEventListener('timeupdate', () => {
    if (stopAt != null && video.currentTime >= stopAt) {
      video.pause();
      stopAt = null;
    }
  });

  $('strip').addEventListener('click', (ev) => {
    if (!suggestion || !suggestion.frames.length) return;
    const n = suggestion.frames.length;
    const columns = Math.min(suggestion.columns, n);
    const rows = Math.ceil(n / columns);
    const box = ev.currentTarget.getBoundingClientRect();
    const col = Math.min(columns - 1, Math.floor(((ev.clientX - box.left) / box.width) * columns));
    const row = Math.min(rows - 1, Math.floor(((ev.clientY - box.top) / box.height) * rows));
    seek(suggestion.frames[Math.min(n - 1, row * columns + col)]);
  });

  // ---- buttons and keys ----------------------------------------------------------------

  $('set-start').addEventListener('click', () => setEdge('start'));
  $('set-end').addEventListener('click', () => setEdge('end'));
  for (const id of ['start', 'end']) $(id).addEventListener('input', () => { dirty = true; });
  $('split').addEventListener('change', () => { dirty = true; });
  $('play-window').addEventListener('click', () => {
    const start = number($('start'));
    const end = number($('end'));
    stopAt = Number.isFinite(end) ? end : null;
    seek(Number.isFinite(start) ? start : 0);
    video.play().catch(() => {});
  });
  $('use-suggestion').addEventListener('click', () => {
    if (!suggestion || suggestion.caption == null) return;
    const empty = captionBoxes().find((b) => b.value.trim() === '');
    const box = empty || addCaption('');
    box.value = suggestion.caption;
    dirty = true;
  });
  $('suggest-window').addEventListener('click', () => {
    if (!clip) return;
    const start = number($('start'));
    const end = number($('end'));
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) {
      message('the window needs a start before its end', 'error');
      return;
    }
    loadSuggestion(clip.index, { start, end }, generation);
  });
  $('add-caption').addEventListener('click', () => addCaption('', true));
  $('save').addEventListener('click', () => save(false));
  $('save-next').addEventListener('click', () => save(true));
  $('previous').addEventListener('click', () => clip && go(clip.previous));
  $('following').addEventListener('click', () => clip && go(clip.following));

  document.addEventListener('keydown', (ev) => {
    const command = ev.ctrlKey || ev.metaKey;
    if (command && ev.key === 'Enter') {
      ev.preventDefault();
      save(true);
      return;
    }
    if (command && (ev.key === 's' || ev.key === 'S')) {
      ev.preventDefault();
      save(false);
      return;
    }
    if (ev.altKey && ev.key === 'ArrowUp') {
      ev.preventDefault();
      if (clip) go(clip.previous);
      return;
    }
    if (ev.altKey && ev.key === 'ArrowDown') {
      ev.preventDefault();
      if (clip) go(clip.following);
      return;
    }
    const typing = ev.target instanceof Element && ev.target.matches('textarea, input, select');
    const plain = !typing && !command && !ev.altKey && ev.target !== video;
    const key = (code) => ev.code === code && (plain || (ev.altKey && !command));
    let handled = true;
    if (key('KeyK') || (plain && ev.code === 'Space')) togglePlay();
    else if (key('KeyJ')) seek(video.currentTime - 2);
    else if (key('KeyL')) seek(video.currentTime + 2);
    else if (key('BracketLeft')) setEdge('start');
    else if (key('BracketRight')) setEdge('end');
    else if (plain && ev.code === 'KeyN') go(clip && clip.following);
    else if (plain && ev.code === 'KeyP') go(clip && clip.previous);
    else handled = false;
    if (handled) ev.preventDefault();
  });

  window.addEventListener('beforeunload', (ev) => {
    if (dirty) ev.preventDefault();
  });

  async function init() {
    try {
      await refreshList();
    } catch (e) {
      message(e.message, 'error');
      $('editor').hidden = false;
      return;
    }
    if (!list.total) {
      $('empty').hidden = false;
      return;
    }
    await openClip(list.resume != null ? list.resume : list.clips[0].index);
    setInterval(() => {
      if (list && list.analysing) refreshList().catch(() => {});
    }, 2000);
  }

  init();
})();

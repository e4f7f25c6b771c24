// The latent scrubber (app/scrub.py): sliders that pick images decoded ahead, in the browser.
const STATE = new WeakMap();
// A released pointer sends its z at once; keys (each press is a "change") send once they have
// rested this long, so that holding an arrow key is one server rerun, not one per step.
const KEYS_SETTLE_MS = 400;

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector('.scrub');
  let s = STATE.get(root);
  if (!s) {
    s = build(root, data);
    STATE.set(root, s);
  }
  s.setStateValue = setStateValue;
  s.canvas.setAttribute('data-renders', String(++s.renders));  // one per server rerun that reaches the page
  Object.assign(s, { label: data.label, span: data.span, step: data.step, count: data.count, side: data.side });
  const key = data.z.join(',');
  const echo = s.sent.indexOf(key);
  if (echo >= 0) {  // the server recentred on a point these sliders sent: they may be further on already
    s.sent.splice(0, echo + 1);
  } else if (s.served !== key) {  // a point set by the server (first draw, map click, reset) moves the sliders
    s.sent = [];
    s.z = data.z.slice();
    s.inputs.forEach(({ input }, i) => { input.value = String(s.z[i]); });
  }
  s.served = key;
  draw(s);
  if (data.sheet !== s.sheetUrl) load(s, data.sheet, data.z.slice());
}

function build(root, data) {
  const s = { frame: 0, renders: 0, last: 0, served: null, sent: [], sends: 0, pointer: false, timer: null,
              sheet: null, sheetUrl: null, centre: data.z.slice(), z: data.z.slice(), loading: 0 };
  const figure = document.createElement('figure');
  s.canvas = document.createElement('canvas');
  s.canvas.width = s.canvas.height = data.side * data.scale;
  s.canvas.setAttribute('role', 'img');
  s.caption = document.createElement('figcaption');
  figure.append(s.canvas, s.caption);
  const sliders = document.createElement('div');
  sliders.className = 'sliders';
  sliders.setAttribute('role', 'group');
  sliders.setAttribute('aria-label', 'Latent coordinates');
  s.inputs = data.z.map((v, i) => {
    const label = document.createElement('label');
    const shown = document.createElement('span');
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', min: -data.span, max: data.span, step: data.step, value: String(v) });
    input.setAttribute('aria-label', 'z' + i);
    input.addEventListener('input', () => {
      s.z[i] = Number(input.value); s.last = i;
      draw(s);
    });
    input.addEventListener('pointerdown', () => { s.pointer = true; });
    input.addEventListener('change', () => {
      clearTimeout(s.timer);
      if (s.pointer) {
        s.pointer = false;
        send(s);
      } else {
        s.timer = setTimeout(() => send(s), KEYS_SETTLE_MS);
      }
    });
    label.append(shown, input);
    sliders.append(label);
    return { input, shown };
  });
  root.classList.toggle('many', data.z.length > 2);
  root.append(figure, sliders);
  return s;
}

// A new sheet takes over (with its centre) once the browser has decoded it; until then the old
// one keeps answering the sliders, and a newer sheet arriving meanwhile wins.
function load(s, url, centre) {
  const ticket = ++s.loading;
  s.sheetUrl = url;
  const image = new Image();
  image.src = url;
  image.decode().then(() => {
    if (ticket !== s.loading) return;
    s.sheet = image;
    s.centre = centre;
    draw(s);
  }, () => {});
}

function send(s) {
  s.timer = null;
  s.sent.push(s.z.join(','));
  s.canvas.setAttribute('data-sent', String(++s.sends));
  s.setStateValue('z', s.z.slice());
}

// "z = (0.50, 0.00)" for two dimensions; for more, the ones that are not 0.
function where(z) {
  if (z.length <= 2) return 'at z = (' + z.map((v) => v.toFixed(2)).join(', ') + ')';
  const moved = z.map((v, i) => [v, i]).filter(([v]) => v !== 0).map(([v, i]) => 'z' + i + ' = ' + v.toFixed(2));
  if (!moved.length) return 'at the origin (every z = 0)';
  return 'at ' + moved.join(', ') + (moved.length < z.length ? '; every other dimension 0' : '');
}

function draw(s) {
  s.inputs.forEach(({ shown }, i) => { shown.textContent = 'z' + i + ' = ' + s.z[i].toFixed(2); });
  s.caption.textContent = 'A decoded ' + s.label + ' ' + where(s.z);
  s.canvas.setAttribute('aria-label', s.caption.textContent);
  if (!s.sheet) return;
  const moved = s.z.map((v, i) => Math.abs(v - s.centre[i]) > 1e-6 ? i : -1).filter((i) => i >= 0);
  const axis = moved.length ? (moved.includes(s.last) ? s.last : moved[0]) : 0;
  const pos = Math.round((s.z[axis] + s.span) / s.step);
  const ctx = s.canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(s.sheet, pos * s.side, axis * s.side, s.side, s.side, 0, 0, s.canvas.width, s.canvas.height);
  s.canvas.setAttribute('data-exact', String(moved.length <= 1));
  s.canvas.setAttribute('data-frame', String(++s.frame));
}

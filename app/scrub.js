// The latent scrubber (app/scrub.py): sliders that pick pre-decoded images in the browser.
const STATE = new WeakMap();
// A released pointer sends its z at once; keys (each press is a "change") send once they have
// rested this long, so that holding an arrow key is one server rerun, not one per step.
const KEYS_SETTLE_MS = 400;

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector('.scrub');
  let s = STATE.get(root);
  if (!s) {
    s = { frame: 0, last: 0, served: null, sent: [], sends: 0, pointer: false, timer: null };
    const sliders = document.createElement('div');
    sliders.className = 'sliders';
    s.inputs = data.z.map((v, i) => {
      const label = document.createElement('label');
      const shown = document.createElement('span');
      const input = document.createElement('input');
      Object.assign(input, { type: 'range', min: -data.span, max: data.span, step: data.step });
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
    const figure = document.createElement('figure');
    s.canvas = document.createElement('canvas');
    s.canvas.width = s.canvas.height = data.side * data.scale;
    s.canvas.setAttribute('role', 'img');
    s.caption = document.createElement('figcaption');
    figure.append(s.canvas, s.caption);
    s.small = document.createElement('canvas');
    s.small.width = s.small.height = data.side;
    root.append(sliders, figure);
    STATE.set(root, s);
  }
  s.setStateValue = setStateValue;
  const raw = atob(data.strips);
  s.strips = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  Object.assign(s, { centre: data.z, label: data.label, side: data.side, span: data.span, step: data.step,
                     count: data.count });
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
}

function send(s) {
  s.timer = null;
  s.sent.push(s.z.join(','));
  s.canvas.setAttribute('data-sent', String(++s.sends));
  s.setStateValue('z', s.z.slice());
}

function draw(s) {
  s.inputs.forEach(({ shown }, i) => { shown.textContent = 'z' + i + ' = ' + s.z[i].toFixed(2); });
  const moved = s.z.map((v, i) => Math.abs(v - s.centre[i]) > 1e-6 ? i : -1).filter((i) => i >= 0);
  const axis = moved.length ? (moved.includes(s.last) ? s.last : moved[0]) : 0;
  const pos = Math.round((s.z[axis] + s.span) / s.step);
  const n = s.side * s.side;
  const offset = (axis * s.count + pos) * n;
  const image = new ImageData(s.side, s.side);
  for (let p = 0; p < n; p++) {
    const v = s.strips[offset + p];
    image.data[4 * p] = image.data[4 * p + 1] = image.data[4 * p + 2] = v;
    image.data[4 * p + 3] = 255;
  }
  s.small.getContext('2d').putImageData(image, 0, 0);
  const ctx = s.canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(s.small, 0, 0, s.canvas.width, s.canvas.height);
  s.caption.textContent = 'A decoded ' + s.label + ' at z = (' + s.z.map((v) => v.toFixed(2)).join(', ') + ')';
  s.canvas.setAttribute('aria-label', s.caption.textContent);
  s.canvas.setAttribute('data-exact', String(moved.length <= 1));
  s.canvas.setAttribute('data-frame', String(++s.frame));
}

// BlurHash decoding (https://blurha.sh), the algorithm of the reference implementation: the
// average colour plus a few cosine waves per axis, painted small and scaled up by CSS.

const BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

function base83(text) {
  let value = 0;
  for (const char of text) {
    const digit = BASE83.indexOf(char);
    if (digit < 0) throw new Error(`not a BlurHash character: ${JSON.stringify(char)}`);
    value = value * 83 + digit;
  }
  return value;
}

const toLinear = (v) => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
const signPow = (v, e) => Math.sign(v) * Math.abs(v) ** e;

function toSrgb(value) {
  const v = Math.max(0, Math.min(1, value));
  return v <= 0.0031308 ? Math.trunc(v * 12.92 * 255 + 0.5)
    : Math.trunc((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5);
}

// The hash's colour components: [[r, g, b] in linear light], the average first.
function components(hash) {
  if (typeof hash !== "string" || hash.length < 6) throw new Error("not a BlurHash");
  const size = base83(hash[0]);
  const nx = (size % 9) + 1;
  const ny = Math.floor(size / 9) + 1;
  if (hash.length !== 4 + 2 * nx * ny) throw new Error("BlurHash length does not match its size");
  const maximum = (base83(hash[1]) + 1) / 166;
  const dc = base83(hash.slice(2, 6));
  const colors = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
  for (let k = 1; k < nx * ny; k++) {
    const ac = base83(hash.slice(4 + 2 * k, 6 + 2 * k));
    colors.push([Math.floor(ac / 361), Math.floor(ac / 19) % 19, ac % 19]
      .map((q) => signPow((q - 9) / 9, 2) * maximum));
  }
  return { nx, ny, colors };
}

// RGBA pixels of the hash decoded at width × height; throws on a malformed hash.
export function decode(hash, width, height) {
  const { nx, ny, colors } = components(hash);
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const rgb = [0, 0, 0];
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
          const color = colors[i + j * nx];
          for (let c = 0; c < 3; c++) rgb[c] += color[c] * basis;
        }
      }
      pixels.set([...rgb.map(toSrgb), 255], 4 * (x + y * width));
    }
  }
  return pixels;
}

// A small canvas painted with the hash (CSS stretches it), or null when the hash is unusable.
export function blurCanvas(hash, aspect = 4 / 3) {
  const width = 32;
  const height = Math.max(1, Math.min(64, Math.round(width / (aspect || 4 / 3))));
  let pixels;
  try { pixels = decode(hash, width, height); } catch { return null; }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.setAttribute("aria-hidden", "true");
  canvas.getContext("2d").putImageData(new ImageData(pixels, width, height), 0, 0);
  return canvas;
}

// neumip viewer: one or two exported materials (renderer/export.py) on the project's plane and
// sphere scenes, a directional light, orbit and zoom, split screen or side by side. Plain WebGL2,
// no dependencies. The page reads /config.json from the server (`neumip-view`): the material
// folders' URLs and the project's scenes. With ?test=1 it renders one frame of linear radiance
// into a float framebuffer and posts it to the server (tests/test_viewer.py).

import { VERTEX_SHADER, WEIGHTS_WIDTH, fragmentShader } from "./shaders.js";

const params = new URLSearchParams(location.search);
const TEST = params.get("test") === "1";

// -- reporting ---------------------------------------------------------------------------------
function post(kind, body) {
  return fetch("/__report", { method: "POST", headers: { "Content-Type": "application/json" },
                              body: JSON.stringify({ kind, ...body }) }).catch(() => {});
}
const origError = console.error.bind(console);
console.error = (...args) => { origError(...args); post("console", { level: "error", text: args.join(" ") }); };
window.addEventListener("error", (e) => post("console", { level: "error", text: `${e.message} (${e.filename}:${e.lineno})` }));
window.addEventListener("unhandledrejection", (e) => post("console", { level: "error", text: String(e.reason) }));

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = false;
  post("page_error", { text: message });
}

// -- export folders ------------------------------------------------------------------------------
class ExportError extends Error {}

function halfToFloat(h) {
  const s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}

async function fetchBytes(url, expected, what) {
  const r = await fetch(url);
  if (!r.ok) throw new ExportError(`${what}: ${url} is missing (HTTP ${r.status})`);
  const buf = await r.arrayBuffer();
  if (buf.byteLength !== expected) {
    throw new ExportError(`${what}: ${url} has ${buf.byteLength} bytes, the manifest says ${expected} (cut short or replaced)`);
  }
  return buf;
}

async function loadExport(base, label) {
  const r = await fetch(base + "manifest.json");
  if (!r.ok) throw new ExportError(`${label}: no manifest.json (not an export folder; make one with neumip-export)`);
  let m;
  try { m = JSON.parse(await r.text()); } catch (e) { throw new ExportError(`${label}: manifest.json is not valid JSON (${e.message})`); }
  if (m.format !== "neumip-export" || m.format_version !== 1) {
    throw new ExportError(`${label}: manifest format ${m.format} version ${m.format_version}; this viewer reads neumip-export version 1`);
  }
  const files = {};
  for (const e of [...Object.values(m.textures || {}), ...Object.values(m.networks || {})]) {
    files[e.file] = await fetchBytes(base + e.file, e.bytes, label);
  }
  return { manifest: m, files, label };
}

// -- GL resources --------------------------------------------------------------------------------
function compile(gl, type, src) {
  const s = gl.createShader(type);
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) {
    throw new Error(`shader does not compile: ${gl.getShaderInfoLog(s)}`);
  }
  return s;
}

function program(gl, fsrc) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fsrc));
  gl.bindAttribLocation(p, 0, "a_pos");
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`shader does not link: ${gl.getProgramInfoLog(p)}`);
  return p;
}

// A texture's channel groups as RGBA textures, each pyramid level a mip level (trilinear, wrapped).
function pyramidTextures(gl, entry, buf, label) {
  const levels = entry.levels, texs = [];
  let pos = 0;
  const type = { float16: gl.HALF_FLOAT, uint8: gl.UNSIGNED_BYTE, float32: gl.FLOAT }[entry.dtype];
  const internal = { float16: gl.RGBA16F, uint8: gl.RGBA8, float32: gl.RGBA32F }[entry.dtype];
  const Arr = { float16: Uint16Array, uint8: Uint8Array, float32: Float32Array }[entry.dtype];
  if (entry.dtype === "float32" && !gl.getExtension("OES_texture_float_linear")) {
    throw new ExportError(`${label}: fp32 textures need OES_texture_float_linear, which this browser lacks; export with precision=fp16`);
  }
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  for (let g = 0; g < entry.groups; g++) {
    const t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, t);
    levels.forEach(([h, w], k) => {
      const n = h * w * 4;
      const data = new Arr(buf, pos * Arr.BYTES_PER_ELEMENT, n);
      gl.texImage2D(gl.TEXTURE_2D, k, internal, w, h, 0, gl.RGBA, type, data);
      pos += n;
    });
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_BASE_LEVEL, 0);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAX_LEVEL, levels.length - 1);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, levels.length > 1 ? gl.LINEAR_MIPMAP_LINEAR : gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.REPEAT);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.REPEAT);
    texs.push(t);
  }
  return texs;
}

function weightTexture(gl, entry, buf) {
  const n = entry.count;
  const src = entry.dtype === "float16" ? Array.from(new Uint16Array(buf), halfToFloat) : new Float32Array(buf);
  const texels = Math.ceil(n / 4), w = Math.min(texels, WEIGHTS_WIDTH), h = Math.ceil(texels / WEIGHTS_WIDTH);
  const data = new Float32Array(w * h * 4);
  data.set(src);
  const t = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, t);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, w, h, 0, gl.RGBA, gl.FLOAT, data);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  return t;
}

class MaterialProgram {
  constructor(gl, loaded) {
    const m = loaded.manifest;
    this.manifest = m;
    this.label = loaded.label;
    this.program = program(gl, fragmentShader(m));
    this.units = [];  // [uniform name, texture]
    const names = { latent: "lat", offset: "off", svbrdf: "sv", lobe: "lobe", horizon: "hor" };
    for (const [name, entry] of Object.entries(m.textures || {})) {
      const texs = pyramidTextures(gl, entry, loaded.files[entry.file], loaded.label);
      texs.forEach((t, g) => this.units.push([`u_${names[name]}${g}`, t]));
    }
    const nets = { decoder: "dec", offset: "off" };
    for (const [name, entry] of Object.entries(m.networks || {})) {
      this.units.push([`u_${nets[name]}_w`, weightTexture(gl, entry, loaded.files[entry.file])]);
    }
    this.quant = [];
    for (const [name, entry] of Object.entries(m.textures || {})) {
      if (entry.dtype !== "uint8") continue;
      const pad = (v) => { const a = new Float32Array(entry.groups * 4); a.set(v); return a; };
      this.quant.push([`u_${names[name]}_bias`, pad(entry.bias)], [`u_${names[name]}_scale`, pad(entry.scale)]);
    }
  }

  bind(gl) {
    gl.useProgram(this.program);
    this.units.forEach(([name, t], unit) => {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.uniform1i(gl.getUniformLocation(this.program, name), unit);
    });
    for (const [name, v] of this.quant) gl.uniform4fv(gl.getUniformLocation(this.program, name), v);
  }
}

// -- camera and scene (renderer/camera.py, renderer/scene_config.py) -----------------------------
const sub = (a, b) => a.map((x, i) => x - b[i]);
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => { const l = Math.hypot(...a); return a.map((x) => x / l); };

function cameraBasis(eye, target, up) {
  const fwd = norm(sub(target, eye));
  const right = norm(cross(fwd, up));
  const down = cross(fwd, right);
  return { fwd, right, down };
}

function setUniforms(gl, prog, st, view) {
  const u = (n) => gl.getUniformLocation(prog, n);
  const sc = st.scene;
  const { fwd, right, down } = cameraBasis(st.eye, st.target, sc.up);
  gl.uniform2f(u("u_view_origin"), view.x, view.y);
  gl.uniform2f(u("u_view_size"), view.w, view.h);
  gl.uniform3fv(u("u_eye"), st.eye);
  gl.uniform3fv(u("u_fwd"), fwd);
  gl.uniform3fv(u("u_right"), right);
  gl.uniform3fv(u("u_down"), down);
  gl.uniform1f(u("u_scale"), 2 * Math.tan((sc.fov_y * Math.PI) / 360) / view.h);
  gl.uniform1i(u("u_shape"), sc.shape === "plane" ? 0 : 1);
  gl.uniform1f(u("u_texture_size"), sc.texture_size);
  gl.uniform3fv(u("u_center"), sc.center);
  gl.uniform1f(u("u_radius"), sc.radius);
  gl.uniform1f(u("u_tiles"), sc.tiles);
  gl.uniform3fv(u("u_light"), st.light);
  gl.uniform1f(u("u_irradiance"), st.irradiance);
  gl.uniform1f(u("u_lod_bias"), st.lodBias);
  gl.uniform1i(u("u_lod_mode"), { max: 0, mean: 1, aniso: 2 }[st.lodMode]);
  gl.uniform1i(u("u_max_aniso"), st.maxAniso);
  gl.uniform1i(u("u_output"), st.linear ? 0 : 1);
  gl.uniform1f(u("u_exposure"), Math.pow(2, st.exposure));
  gl.uniform1i(u("u_frame_variant"), st.frameVariant);
}

function drawViews(gl, mats, st, width, height) {
  gl.viewport(0, 0, width, height);
  gl.clearColor(0, 0, 0, 1);
  gl.clear(gl.COLOR_BUFFER_BIT);
  const views = [];
  if (mats.length === 1) {
    views.push([mats[0], { x: 0, y: 0, w: width, h: height }, null]);
  } else if (st.layout === "side") {
    const half = Math.floor(width / 2);
    views.push([mats[0], { x: 0, y: 0, w: half, h: height }, null]);
    views.push([mats[1], { x: half, y: 0, w: width - half, h: height }, null]);
  } else {  // split: one camera, the left of the split line shows A, the right B
    const cut = Math.round(st.split * width);
    views.push([mats[0], { x: 0, y: 0, w: width, h: height }, [0, cut]]);
    views.push([mats[1], { x: 0, y: 0, w: width, h: height }, [cut, width - cut]]);
  }
  gl.enable(gl.SCISSOR_TEST);
  for (const [mat, view, cut] of views) {
    const [sx, sw] = cut || [view.x, view.w];
    if (sw <= 0) continue;
    gl.scissor(sx, 0, sw, height);
    gl.viewport(view.x, view.y, view.w, view.h);
    mat.bind(gl);
    setUniforms(gl, mat.program, st, view);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
  }
  gl.disable(gl.SCISSOR_TEST);
}

// -- the page -------------------------------------------------------------------------------------
function initialState(config) {
  const name = params.get("scene") || "plane";
  const scene = config.scenes[name];
  if (!scene) throw new Error(`unknown scene ${name}; known: ${Object.keys(config.scenes).join(", ")}`);
  const num = (k, d) => (params.has(k) ? Number(params.get(k)) : d);
  const vec = (k, d) => (params.has(k) ? params.get(k).split(",").map(Number) : d);
  return {
    sceneName: name, scene,
    eye: vec("eye", scene.eye), target: vec("target", scene.target),
    light: vec("light", scene.light_direction), irradiance: num("irradiance", scene.irradiance),
    exposure: num("exposure", 0), lodBias: num("lod_bias", 0), lodMode: params.get("lod_mode") || "max",
    maxAniso: num("max_aniso", 16), layout: params.get("layout") || "split", split: num("split", 0.5),
    frameVariant: { renderer: 0, swap_uv: 1, mirror_v: 2 }[params.get("frame") || "renderer"],
    linear: false,
  };
}

async function testFrame(gl, mats, st) {
  // One frame of linear radiance per material (float framebuffer), posted to the server.
  if (!gl.getExtension("EXT_color_buffer_float")) throw new Error("EXT_color_buffer_float is missing");
  const w = Number(params.get("width") || 256), h = Number(params.get("height") || 256);
  const fb = gl.createFramebuffer(), tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, w, h, 0, gl.RGBA, gl.FLOAT, null);
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
  st.linear = true;
  const repeats = Number(params.get("repeats") || 1);
  for (let i = 0; i < mats.length; i++) {
    const times = [];
    let pixels;
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      drawViews(gl, [mats[i]], st, w, h);
      pixels = new Float32Array(w * h * 4);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.FLOAT, pixels);  // waits for the frame
      times.push(performance.now() - t0);
    }
    let bin = "";
    const bytes = new Uint8Array(pixels.buffer);
    for (let k = 0; k < bytes.length; k += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(k, k + 0x8000));
    await post("frame", { index: i, label: mats[i].label, width: w, height: h, ms: times, rgba_f32_base64: btoa(bin) });
  }
  await post("done", {});
}

function setupControls(canvas, mats, st, draw) {
  const el = (id) => document.getElementById(id);
  const bindRange = (id, key, fmt) => {
    const input = el(id), out = el(id + "_value");
    input.value = st[key];
    const show = () => { if (out) out.textContent = fmt(st[key]); };
    show();
    input.addEventListener("input", () => { st[key] = Number(input.value); show(); draw(); });
  };
  bindRange("exposure", "exposure", (v) => `${v.toFixed(1)} EV`);
  bindRange("lod_bias", "lodBias", (v) => v.toFixed(2));
  bindRange("irradiance", "irradiance", (v) => v.toFixed(2));
  bindRange("split", "split", (v) => `${Math.round(v * 100)}%`);
  // light as azimuth / elevation around the world's up (y)
  const l = norm(st.light);
  st.lightEl = Math.asin(l[1]) * 180 / Math.PI;
  st.lightAz = Math.atan2(l[0], l[2]) * 180 / Math.PI;
  const setLight = () => {
    const el_ = st.lightEl * Math.PI / 180, az = st.lightAz * Math.PI / 180;
    st.light = [Math.cos(el_) * Math.sin(az), Math.sin(el_), Math.cos(el_) * Math.cos(az)];
  };
  bindRange("light_az", "lightAz", (v) => `${v.toFixed(0)}°`);
  bindRange("light_el", "lightEl", (v) => `${v.toFixed(0)}°`);
  for (const id of ["light_az", "light_el"]) el(id).addEventListener("input", () => { setLight(); draw(); });
  el("lod_mode").value = st.lodMode;
  el("lod_mode").addEventListener("change", (e) => { st.lodMode = e.target.value; draw(); });
  el("layout").value = st.layout;
  el("layout").addEventListener("change", (e) => { st.layout = e.target.value; draw(); });
  el("scene").value = st.sceneName;
  el("scene").addEventListener("change", (e) => {
    const p = new URLSearchParams(location.search);
    p.set("scene", e.target.value);
    location.search = p.toString();
  });
  // orbit around the target with the mouse, zoom with the wheel
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag[0], dy = e.clientY - drag[1];
    drag = [e.clientX, e.clientY];
    const off = sub(st.eye, st.target);
    const r = Math.hypot(...off);
    let az = Math.atan2(off[0], off[2]) - dx * 0.005;
    let el_ = Math.asin(off[1] / r) + dy * 0.005;
    el_ = Math.max(-1.5, Math.min(1.5, el_));
    st.eye = [st.target[0] + r * Math.cos(el_) * Math.sin(az), st.target[1] + r * Math.sin(el_),
              st.target[2] + r * Math.cos(el_) * Math.cos(az)];
    draw();
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const f = Math.exp(e.deltaY * 0.001);
    st.eye = st.target.map((t, i) => t + (st.eye[i] - t) * f);
    draw();
  }, { passive: false });
  el("labels").textContent = mats.length === 2
    ? `${mats[0].label} | ${mats[1].label}` : mats[0].label;
}

async function main() {
  const canvas = document.getElementById("view");
  const gl = canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: TEST });
  if (!gl) { showError("This browser has no WebGL2."); return; }
  let config;
  try {
    config = await (await fetch("/config.json")).json();
  } catch (e) { showError(`cannot read /config.json from the server (${e.message})`); return; }
  const mats = [];
  try {
    for (const m of config.materials) mats.push(new MaterialProgram(gl, await loadExport(m.url, m.label)));
  } catch (e) {
    showError(e instanceof ExportError ? e.message : `cannot load the material: ${e.message}`);
    return;
  }
  const vao = gl.createVertexArray();
  gl.bindVertexArray(vao);
  const vb = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, vb);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 3, -1, -1, 3]), gl.STATIC_DRAW);
  gl.enableVertexAttribArray(0);
  gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
  let st;
  try { st = initialState(config); } catch (e) { showError(e.message); return; }
  if (TEST) { await testFrame(gl, mats, st); return; }
  let pending = false;
  const times = [];
  const overlay = () => {  // where each material is, named on the canvas
    const two = mats.length === 2, w = canvas.clientWidth;
    const cut = st.layout === "side" ? w / 2 : st.split * w;
    const divider = document.getElementById("divider"), a = document.getElementById("tag_a"),
      b = document.getElementById("tag_b");
    divider.hidden = !two;
    divider.style.left = `${cut}px`;
    a.hidden = false;
    a.textContent = mats[0].label;
    a.style.left = "8px";
    b.hidden = !two;
    if (two) { b.textContent = mats[1].label; b.style.left = ""; b.style.right = "8px"; }
  };
  const draw = () => {
    overlay();
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const t0 = performance.now();
      drawViews(gl, mats, st, canvas.width, canvas.height);
      gl.finish();
      times.push(performance.now() - t0);
      if (times.length > 20) times.shift();
      const ms = times.reduce((a, b) => a + b, 0) / times.length;
      // performance.now() stands still under a virtual clock (a headless screenshot): say so
      document.getElementById("ms").textContent = ms > 0.05
        ? `${ms.toFixed(1)} ms/frame (${canvas.width}x${canvas.height})` : `${canvas.width}x${canvas.height}`;
    });
  };
  const resize = () => {
    const r = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(r.width));
    canvas.height = Math.max(1, Math.round(r.height));
    draw();
  };
  setupControls(canvas, mats, st, draw);
  window.addEventListener("resize", resize);
  resize();
  post("ready", {});
}

main().catch((e) => showError(`viewer error: ${e.message}`));

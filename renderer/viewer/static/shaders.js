// The viewer's fragment shaders, generated per material from its export manifest
// (renderer/export.py). Every function here is a port of the project renderer's torch code, named
// after it, so that a frame of the viewer and a frame of `renderer.render` are the same numbers:
//   camera rays and their differentials  renderer/camera.py PinholeCamera.rays
//   plane and sphere hits, tangent frame  renderer/geometry.py GroundPlane, Sphere, Hit.frame
//   footprint -> lod, anisotropic probes  renderer/render.py footprint_to_lod, anisotropic_probes
//   NeuMIP query                          neumip/model.py (offset, latent lookup, decoder)
//   SVBRDF shading                        renderer/baselines/material.py, btf_data/brdf.py
// Textures are read with the GPU's own trilinear filtering (each pyramid level a mip level).

export const WEIGHTS_WIDTH = 1024; // texels per row of an MLP's weight texture (RGBA32F)

export const VERTEX_SHADER = `#version 300 es
in vec2 a_pos;
void main() { gl_Position = vec4(a_pos, 0.0, 1.0); }
`;

const COMMON = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;

uniform vec2 u_view_origin;   // lower-left pixel of this view in the canvas
uniform vec2 u_view_size;     // the view's width and height in pixels
uniform vec3 u_eye, u_fwd, u_right, u_down;
uniform float u_scale;        // 2 tan(fov_y / 2) / height: image-plane units per pixel
uniform int u_shape;          // 0 plane, 1 sphere
uniform float u_texture_size; // plane: world size of one copy of the material
uniform vec3 u_center;        // sphere
uniform float u_radius, u_tiles;
uniform vec3 u_light;         // towards the light, world space (normalised here)
uniform float u_irradiance;
uniform float u_lod_bias;
uniform int u_lod_mode;       // 0 max, 1 mean, 2 aniso
uniform int u_max_aniso;
uniform int u_output;         // 0 linear radiance (tests), 1 exposure + sRGB (display)
uniform float u_exposure;
uniform int u_frame_variant;  // 0 the renderer's tangent frame; 1 u and v swapped; 2 v mirrored (tests)
out vec4 out_color;

const float EPS = 1e-6;
const float PI = 3.14159265358979;

struct Hit { bool valid; float t; vec3 p; vec3 n; vec2 uv; vec3 dpdu; vec3 dpdv; };

Hit intersect_plane(vec3 o, vec3 d) {
  Hit h;
  float dy = d.y;
  float safe = abs(dy) < EPS ? -EPS : dy;
  h.t = (0.0 - o.y) / safe;
  h.valid = h.t > EPS && dy < -EPS;
  h.p = o + h.t * d;
  float s = u_texture_size;
  h.uv = vec2(h.p.x / s, -h.p.z / s);
  h.n = vec3(0.0, 1.0, 0.0);
  h.dpdu = vec3(s, 0.0, 0.0);
  h.dpdv = vec3(0.0, 0.0, -s);
  return h;
}

Hit intersect_sphere(vec3 o, vec3 d) {
  Hit h;
  vec3 oc = o - u_center;
  float b = dot(oc, d);
  float disc = b * b - (dot(oc, oc) - u_radius * u_radius);
  float sq = sqrt(max(disc, 0.0));
  float t0 = -b - sq, t1 = -b + sq;
  h.t = t0 > EPS ? t0 : t1;
  h.valid = disc > 0.0 && h.t > EPS;
  h.p = o + h.t * d;
  h.n = (h.p - u_center) / u_radius;
  float theta = acos(clamp(h.n.y, -1.0, 1.0));
  float phi = atan(h.n.z, h.n.x);
  float k = u_tiles / (2.0 * PI);
  h.uv = vec2(phi * k, theta * k);
  float st = max(sin(theta), 1e-4);
  vec3 dpdphi = u_radius * vec3(-st * sin(phi), 0.0, st * cos(phi));
  vec3 dpdth = u_radius * vec3(cos(theta) * cos(phi), -sin(theta), cos(theta) * sin(phi));
  h.dpdu = dpdphi / k;
  h.dpdv = dpdth / k;
  return h;
}

// duv/dx, duv/dy of a pinhole camera's rays at their hits (renderer/geometry.py uv_derivatives)
void uv_derivatives(Hit h, vec3 d, vec3 ddx, vec3 ddy, out vec2 duvdx, out vec2 duvdy) {
  float dn = dot(d, h.n);
  dn = abs(dn) < EPS ? -EPS : dn;
  float a11 = dot(h.dpdu, h.dpdu), a12 = dot(h.dpdu, h.dpdv), a22 = dot(h.dpdv, h.dpdv);
  float det = max(a11 * a22 - a12 * a12, 1e-20);
  vec3 dp = h.t * (ddx - dot(ddx, h.n) / dn * d);
  float b1 = dot(h.dpdu, dp), b2 = dot(h.dpdv, dp);
  duvdx = vec2((a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det);
  dp = h.t * (ddy - dot(ddy, h.n) / dn * d);
  b1 = dot(h.dpdu, dp); b2 = dot(h.dpdv, dp);
  duvdy = vec2((a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det);
}

vec3 srgb(vec3 c) {
  c = clamp(c, 0.0, 1.0);
  return mix(12.92 * c, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, c));
}
`;

const MAIN = `
void main() {
  // image pixel (x + 0.5, y + 0.5) of this view, y growing downwards as the renderer's camera
  vec2 frag = gl_FragCoord.xy - u_view_origin;
  float px = frag.x;
  float py = u_view_size.y - frag.y;
  float sx = (px - u_view_size.x / 2.0) * u_scale;
  float sy = (py - u_view_size.y / 2.0) * u_scale;
  vec3 raw = u_fwd + sx * u_right + sy * u_down;
  float len = length(raw);
  vec3 d = raw / len;
  vec3 ddx = (u_scale * u_right - d * dot(d, u_scale * u_right)) / len;
  vec3 ddy = (u_scale * u_down - d * dot(d, u_scale * u_down)) / len;
  Hit h;
  if (u_shape == 0) h = intersect_plane(u_eye, d); else h = intersect_sphere(u_eye, d);
  vec3 t = h.dpdu - h.n * dot(h.dpdu, h.n);
  t = t / max(length(t), EPS);
  vec3 b = cross(h.n, t);
  vec2 duvdx, duvdy;
  uv_derivatives(h, d, ddx, ddy, duvdx, duvdy);
  vec2 uv = h.uv;
  if (u_frame_variant == 1) { uv = uv.yx; duvdx = duvdx.yx; duvdy = duvdy.yx; }
  if (u_frame_variant == 2) { uv.y = -uv.y; duvdx.y = -duvdx.y; duvdy.y = -duvdy.y; }
  vec3 wo_w = -d;
  vec3 wi_w = normalize(u_light);
  vec3 wo = vec3(dot(wo_w, t), dot(wo_w, b), dot(wo_w, h.n));
  vec3 wi = vec3(dot(wi_w, t), dot(wi_w, b), dot(wi_w, h.n));
  vec3 radiance = vec3(0.0);
  if (h.valid && wo.z > 0.0 && wi.z > 0.0) {
    float res = float(RESOLUTION);
    float fx = length(duvdx) * res, fy = length(duvdy) * res;
    vec3 rgb;
    if (u_lod_mode != 2) {
      float size = u_lod_mode == 0 ? max(fx, fy) : sqrt(fx * fy);
      float lod = clamp(log2(max(size, 1e-12)) + u_lod_bias, 0.0, float(N_LEVELS - 1));
      rgb = material(uv, wi, wo, lod);
    } else {  // renderer/render.py anisotropic_probes
      bool x_major = fx >= fy;
      vec2 axis = x_major ? duvdx : duvdy;
      float major = max(fx, fy), minor = min(fx, fy);
      int count = int(clamp(ceil(major / max(minor, 1e-12)), 1.0, float(u_max_aniso)));
      float width = max(minor, major / float(u_max_aniso));
      float lod = clamp(log2(max(width, 1e-12)) + u_lod_bias, 0.0, float(N_LEVELS - 1));
      rgb = vec3(0.0);
      for (int i = 0; i < 64; i++) {
        if (i >= count) break;
        float s = (float(i) + 0.5) / float(count) - 0.5;
        rgb += material(uv + s * axis, wi, wo, lod);
      }
      rgb /= float(count);
    }
    radiance = rgb * (wi.z * u_irradiance);
  }
  out_color = u_output == 0 ? vec4(radiance, 1.0) : vec4(srgb(u_exposure * radiance), 1.0);
}
`;

// -- materials -----------------------------------------------------------------------------------
function texName(tex, g) { return `u_${tex}${g}`; }

// GLSL that reads every channel group of a texture at (uv, lod) into vec4 array `dst`,
// dequantised (int8: bias + scale * value).
function readTexture(tex, entry, dst, uvExpr, lodExpr) {
  let s = "";
  for (let g = 0; g < entry.groups; g++) {
    s += `  ${dst}[${g}] = textureLod(${texName(tex, g)}, ${uvExpr}, ${lodExpr});\n`;
    if (entry.dtype === "uint8") s += `  ${dst}[${g}] = u_${tex}_bias[${g}] + u_${tex}_scale[${g}] * ${dst}[${g}];\n`;
  }
  return s;
}

function textureUniforms(tex, entry) {
  let s = "";
  for (let g = 0; g < entry.groups; g++) s += `uniform sampler2D ${texName(tex, g)};\n`;
  if (entry.dtype === "uint8") s += `uniform vec4 u_${tex}_bias[${entry.groups}];\nuniform vec4 u_${tex}_scale[${entry.groups}];\n`;
  return s;
}

// An MLP in the torch backend's flat layout (neumip/mlp_backends.py): bias-free layers, row-major
// [out, in], the input padded to in_pad with the constant 1, ReLU between layers, output rows
// beyond n_out unused. Weights: an RGBA32F texture, 4 numbers per texel in the file's order.
function mlpFunction(name, net) {
  const in4 = net.in_pad / 4, w4 = net.width / 4, out4 = Math.ceil(net.n_out / 4);
  let offs = 0;
  const layerBase = [];
  layerBase.push(offs); offs += net.width * net.in_pad;
  for (let l = 1; l < net.hidden_layers; l++) { layerBase.push(offs); offs += net.width * net.width; }
  layerBase.push(offs);
  const fetch = `texelFetch(u_${name}_w, ivec2(i % ${WEIGHTS_WIDTH}, i / ${WEIGHTS_WIDTH}), 0)`;
  let s = `uniform sampler2D u_${name}_w;\n`;
  s += `vec4 ${name}_fetch(int i) { return ${fetch}; }\n`;
  s += `void ${name}_mlp(in vec4 x[${in4}], out vec4 y[${out4}]) {\n  vec4 h[${w4}];\n  vec4 g[${w4}];\n`;
  // layer 0
  s += `  for (int o = 0; o < ${w4}; o++) {\n    vec4 acc;\n    for (int k = 0; k < 4; k++) {\n` +
       `      int row = ${layerBase[0] / 4} + (o * 4 + k) * ${in4};\n      float a = 0.0;\n` +
       `      for (int c = 0; c < ${in4}; c++) a += dot(${name}_fetch(row + c), x[c]);\n` +
       `      acc[k] = a;\n    }\n    h[o] = max(acc, 0.0);\n  }\n`;
  for (let l = 1; l < net.hidden_layers; l++) {
    s += `  for (int o = 0; o < ${w4}; o++) {\n    vec4 acc;\n    for (int k = 0; k < 4; k++) {\n` +
         `      int row = ${layerBase[l] / 4} + (o * 4 + k) * ${w4};\n      float a = 0.0;\n` +
         `      for (int c = 0; c < ${w4}; c++) a += dot(${name}_fetch(row + c), h[c]);\n` +
         `      acc[k] = a;\n    }\n    g[o] = max(acc, 0.0);\n  }\n` +
         `  for (int o = 0; o < ${w4}; o++) h[o] = g[o];\n`;
  }
  const last = layerBase[net.hidden_layers] / 4;
  s += `  for (int o = 0; o < ${out4}; o++) {\n    vec4 acc = vec4(0.0);\n    for (int k = 0; k < 4; k++) {\n` +
       `      if (o * 4 + k >= ${net.n_out}) break;\n` +
       `      int row = ${last} + (o * 4 + k) * ${w4};\n      float a = 0.0;\n` +
       `      for (int c = 0; c < ${w4}; c++) a += dot(${name}_fetch(row + c), h[c]);\n` +
       `      acc[k] = a;\n    }\n    y[o] = acc;\n  }\n}\n`;
  return s;
}

// neumip/direction_encoding.py equidistant: (theta / (pi/2)) (cos phi, sin phi)
const EQUIDISTANT = `
vec2 equidistant(vec3 w) {
  float s = length(w.xy);
  float theta = atan(s, w.z);
  float scale = s > 1e-7 ? theta / max(s, 1e-7) : 1.0;
  return w.xy * scale / (0.5 * PI);
}
`;

// neumip/direction_encoding.py, as GLSL returning the encoding's numbers in a float array
const ENCODINGS = {
  xy: { width: 2, code: `void encode(vec3 w, out float e[2]) { e[0] = w.x; e[1] = w.y; }\n` },
  equi: { width: 2, code: EQUIDISTANT + `
void encode(vec3 w, out float e[2]) { vec2 q = equidistant(w); e[0] = q.x; e[1] = q.y; }
` },
  equi_tan: { width: 4, code: EQUIDISTANT + `
void encode(vec3 w, out float e[4]) {
  vec2 q = equidistant(w);
  float s = length(w.xy);
  float t = s / max(w.z, 1e-6);
  vec2 f = w.xy / max(s, 1e-7) * (t / (1.0 + t));
  e[0] = q.x; e[1] = q.y; e[2] = f.x; e[3] = f.y;
}
` },
  sh3: { width: 16, code: `
void encode(vec3 w, out float e[16]) {
  float x = w.x, y = w.y, z = w.z, xx = x * x, yy = y * y, zz = z * z;
  const float C0 = 0.28209479177387814, C1 = 0.4886025119029199;
  const float C20 = 1.0925484305920792, C21 = 0.31539156525252005, C22 = 0.5462742152960396;
  const float C30 = 0.5900435899266435, C31 = 2.890611442640554, C32 = 0.4570457994644658;
  const float C33 = 0.3731763325901154;
  e[0] = C0; e[1] = -C1 * y; e[2] = C1 * z; e[3] = -C1 * x;
  e[4] = C20 * x * y; e[5] = -C20 * y * z; e[6] = C21 * (3.0 * zz - 1.0); e[7] = -C20 * x * z;
  e[8] = C22 * (xx - yy);
  e[9] = -C30 * y * (3.0 * xx - yy); e[10] = C31 * x * y * z; e[11] = -C32 * y * (5.0 * zz - 1.0);
  e[12] = C33 * z * (5.0 * zz - 3.0); e[13] = -C32 * x * (5.0 * zz - 1.0);
  e[14] = 0.5 * C31 * z * (xx - yy); e[15] = -C30 * x * (xx - 3.0 * yy);
}
` },
};

// neumip/horizon.py HorizonFeatures: K learned horizons and a softness, soft visibility of a direction
function horizonCode(K) {
  return `
float soft_visibility(float hz[${K}], float tau, vec3 w) {
  float phi = atan(w.y, w.x);
  float x = mod(phi, 2.0 * PI) / (2.0 * PI) * float(${K});
  int i0 = min(int(floor(x)), ${K - 1});
  float t = x - float(i0);
  int i1 = (i0 + 1) % ${K};
  float h = hz[i0] + (hz[i1] - hz[i0]) * t;
  float elev = asin(clamp(w.z, -1.0, 1.0));
  return 1.0 / (1.0 + exp(-(elev - h) / tau));
}
`;
}

// neumip/grazing.py: directions beyond the training grid (the manifest's "grazing", or null)
function grazingCode(g) {
  return `
const float MIN_COS_WI = ${g.min_cos_wi.toPrecision(9)};
const float MIN_COS_WO = ${g.min_cos_wo.toPrecision(9)};
const float BEND_COS = ${g.bend_cos.toPrecision(9)};
vec3 limit_elevation(vec3 w, float c) {
  if (!(w.z < c)) return w;
  return vec3(w.xy / max(length(w.xy), 1e-12) * sqrt(1.0 - c * c), c);
}
vec3 bend_above(vec3 w, vec3 n, bool beyond) {
  float d = dot(w, n);
  if (!(beyond && d < BEND_COS)) return w;
  return normalize(w + (BEND_COS - d) * n);
}
`;
}

// neumip/lobe_pyramid.py lobe_params + shade_raw: the analytic lobe of model=hybrid; directions
// flagged beyond the training grid bent above its shading horizon (neumip/grazing.py)
const LOBE_CODE = `
vec3 lobe_shade(float raw[10], vec3 wi, vec3 wo, bool beyond_i, bool beyond_o) {
  vec3 albedo = 1.0 / (1.0 + exp(-vec3(raw[0], raw[1], raw[2])));
  vec3 n = normalize(vec3(raw[3], raw[4], 1.0));
#ifdef GRAZING
  wi = bend_above(wi, n, beyond_i);
  wo = bend_above(wo, n, beyond_o);
#endif
  float m0 = raw[5], m1 = raw[6], m2 = raw[7];
  vec3 sig = vec3(m0 * m0 + m2 * m2, m1 * m1 + m2 * m2, (m0 + m1) * m2) + vec3(1e-6, 1e-6, 0.0);
  float metallic = 1.0 / (1.0 + exp(-raw[8]));
  float specular = 0.16 / (1.0 + exp(-raw[9]));
  vec3 wi_l = to_local_frame(wi, n), wo_l = to_local_frame(wo, n);
  return microfacet_brdf(wi_l, wo_l, albedo, sig, metallic, specular) * (max(wi_l.z, 0.0) / wi.z);
}
`;

function neumipMaterial(m) {
  const cfg = m.model, lat = m.textures.latent, dec = m.networks.decoder;
  const enc = ENCODINGS[cfg.direction_encoding];
  if (!enc) throw new Error(`direction encoding ${cfg.direction_encoding} is not in this viewer`);
  const lobe = m.textures.lobe, hor = m.textures.horizon;
  if (cfg.decoder === "lobe_residual" && !lobe) throw new Error("a lobe_residual decoder needs the lobe texture");
  if (!["yuv_log", "lobe_residual"].includes(cfg.decoder)) throw new Error(`decoder ${cfg.decoder} is not in this viewer`);
  const g = m.grazing;
  let s = textureUniforms("lat", lat) + mlpFunction("dec", dec) + enc.code;
  if (g) s += "\n#define GRAZING\n" + grazingCode(g);
  if (m.textures.offset) s += textureUniforms("off", m.textures.offset) + mlpFunction("off", m.networks.offset);
  if (lobe) s += textureUniforms("lobe", lobe) + SVBRDF_SHADING + LOBE_CODE;
  if (hor) s += textureUniforms("hor", hor) + horizonCode(cfg.horizon_azimuths);
  const C = lat.channels;
  s += `vec3 material(vec2 uv, vec3 wi, vec3 wo, float lod) {\n`;
  // the learned parts read directions beyond the grid at its lowest elevation; the lobe the true ones
  s += g ? `  vec3 wi_n = limit_elevation(wi, MIN_COS_WI), wo_n = limit_elevation(wo, MIN_COS_WO);\n`
         : `  vec3 wi_n = wi, wo_n = wo;\n`;
  if (m.textures.offset) {  // neumip/neural_offset.py: uv + r wo.xy / max(wo.z, min_cos)
    const off = m.textures.offset, net = m.networks.offset;
    s += `  vec4 ol[${off.groups}];\n` + readTexture("off", off, "ol", "uv", "0.0");
    s += `  vec4 ox[${net.in_pad / 4}];\n  float of[${net.in_pad}];\n`;
    s += `  for (int i = 0; i < ${net.in_pad}; i++) of[i] = 1.0;\n`;
    for (let c = 0; c < off.channels; c++) s += `  of[${c}] = ol[${c >> 2}][${c & 3}];\n`;
    s += `  of[${off.channels}] = wo_n.x;\n  of[${off.channels + 1}] = wo_n.y;\n`;
    s += `  for (int i = 0; i < ${net.in_pad / 4}; i++) ox[i] = vec4(of[4 * i], of[4 * i + 1], of[4 * i + 2], of[4 * i + 3]);\n`;
    s += `  vec4 oy[${Math.ceil(net.n_out / 4)}];\n  off_mlp(ox, oy);\n`;
    s += `  float r = ${cfg.depth_scale.toFixed(9)} * oy[0].x;\n`;
    s += `  uv = uv + r * wo_n.xy / max(wo_n.z, ${cfg.min_cos.toFixed(9)});\n`;
  }
  s += `  vec4 lv[${lat.groups}];\n` + readTexture("lat", lat, "lv", "uv", "lod");
  s += `  float f[${dec.in_pad}];\n  for (int i = 0; i < ${dec.in_pad}; i++) f[i] = 1.0;\n`;
  for (let c = 0; c < C; c++) s += `  f[${c}] = lv[${c >> 2}][${c & 3}];\n`;
  let at = C;  // the decoder's input: latent, [v(wi), v(wo)], enc(wi), enc(wo), [log1p(lobe)]
  if (hor) {
    const K = cfg.horizon_azimuths;
    s += `  vec4 hv[${hor.groups}];\n` + readTexture("hor", hor, "hv", "uv", "lod");
    s += `  float hz[${K}];\n`;
    for (let k = 0; k < K; k++) s += `  hz[${k}] = 0.5 * PI / (1.0 + exp(-hv[${k >> 2}][${k & 3}]));\n`;
    s += `  float tau = 0.1 * exp(hv[${K >> 2}][${K & 3}]);\n`;
    s += `  f[${at}] = soft_visibility(hz, tau, wi_n);\n  f[${at + 1}] = soft_visibility(hz, tau, wo_n);\n`;
    at += 2;
  }
  s += `  float ei[${enc.width}];\n  float eo[${enc.width}];\n  encode(wi_n, ei);\n  encode(wo_n, eo);\n`;
  s += `  for (int i = 0; i < ${enc.width}; i++) { f[${at} + i] = ei[i]; f[${at + enc.width} + i] = eo[i]; }\n`;
  at += 2 * enc.width;
  if (lobe) {
    s += `  vec4 lb[${lobe.groups}];\n` + readTexture("lobe", lobe, "lb", "uv", "lod");
    s += `  float raw[10];\n`;
    for (let c = 0; c < 10; c++) s += `  raw[${c}] = lb[${c >> 2}][${c & 3}];\n`;
    s += g ? `  vec3 base = lobe_shade(raw, wi, wo, wi.z < MIN_COS_WI, wo.z < MIN_COS_WO);\n`
           : `  vec3 base = lobe_shade(raw, wi, wo, false, false);\n`;
    s += `  vec3 lb1 = log(1.0 + max(base, 0.0));\n`;
    s += `  f[${at}] = lb1.x;\n  f[${at + 1}] = lb1.y;\n  f[${at + 2}] = lb1.z;\n`;
  }
  s += `  vec4 x[${dec.in_pad / 4}];\n`;
  s += `  for (int i = 0; i < ${dec.in_pad / 4}; i++) x[i] = vec4(f[4 * i], f[4 * i + 1], f[4 * i + 2], f[4 * i + 3]);\n`;
  s += `  vec4 y[${Math.ceil(dec.n_out / 4)}];\n  dec_mlp(x, y);\n`;
  s += `  vec3 t = vec3(y[0].x, y[0].y, y[0].z);\n`;
  s += `  vec3 lin = vec3(t.x + 1.13983 * t.z, t.x - 0.39465 * t.y - 0.58060 * t.z, t.x + 2.03211 * t.y);\n`;
  if (cfg.decoder === "lobe_residual") {
    // neumip/decoder.py LobeResidualDecoder: base 2 sigmoid(v) + expm1(YUV->RGB(t)), >= 0
    s += `  vec3 v = vec3(y[0].w, y[1].x, y[1].y);\n`;
    s += `  vec3 rgb = base * (2.0 / (1.0 + exp(-v))) + (exp(lin) - 1.0);\n`;
  } else {
    // neumip/decoder.py YUVLogDecoder.head: expm1(YUV->RGB(t)) (x (0.1 + sigmoid(m))), >= 0
    s += `  vec3 rgb = exp(lin) - 1.0;\n`;
    if (cfg.shadow_mask) s += `  vec3 m = vec3(y[0].w, y[1].x, y[1].y);\n  rgb *= 0.1 + 1.0 / (1.0 + exp(-m));\n`;
  }
  s += `  return max(rgb, 0.0);\n}\n`;
  return s;
}

// renderer/baselines/pyramid.py from_moments + clamp_covariance; btf_data/brdf.py; btf_data/btf_render.py shade
const SVBRDF_SHADING = `
const float MIN_NORMAL_Z = 1e-3;
const float MIN_VARIANCE = 1e-6;
vec3 normalize_up(vec3 v) {
  v = v / max(length(v), 1e-12);
  v.z = max(v.z, MIN_NORMAL_Z);
  return v / length(v);
}
vec3 clamp_covariance(vec3 cov, float min_eig) {
  float a = cov.x, b = cov.y, c = cov.z;
  float mean = 0.5 * (a + b);
  float half_ = sqrt((0.5 * (a - b)) * (0.5 * (a - b)) + c * c + 1e-30);
  float l1 = max(mean + half_, min_eig), l2 = max(mean - half_, min_eig);
  float cos2 = (0.5 * (a - b)) / half_, sin2 = c / half_;
  float mid = 0.5 * (l1 + l2), dif = 0.5 * (l1 - l2);
  return vec3(mid + dif * cos2, mid - dif * cos2, dif * sin2);
}
vec3 to_local_frame(vec3 v, vec3 n) {
  float k = 1.0 / max(1.0 + n.z, 1e-6);
  return vec3((1.0 - n.x * n.x * k) * v.x - n.x * n.y * k * v.y - n.x * v.z,
              -n.x * n.y * k * v.x + (1.0 - n.y * n.y * k) * v.y - n.y * v.z,
              n.x * v.x + n.y * v.y + n.z * v.z);
}
float ggx_ndf(vec3 h, vec3 sig) {
  float det = max(sig.x * sig.y - sig.z * sig.z, 1e-12);
  float hz = max(h.z, 1e-6);
  float sx = -h.x / hz, sy = -h.y / hz;
  float quad = (sig.y * sx * sx - 2.0 * sig.z * sx * sy + sig.x * sy * sy) / det;
  return 1.0 / (PI * sqrt(det) * hz * hz * hz * hz * (1.0 + quad) * (1.0 + quad));
}
float smith_lambda(vec3 w, vec3 sig) {
  float proj = sig.x * w.x * w.x + 2.0 * sig.z * w.x * w.y + sig.y * w.y * w.y;
  float wz = max(w.z, 1e-6);
  return 0.5 * (sqrt(1.0 + proj / (wz * wz)) - 1.0);
}
vec3 microfacet_brdf(vec3 wi, vec3 wo, vec3 albedo, vec3 sig, float metallic, float specular) {
  if (!(wi.z > 0.0 && wo.z > 0.0)) return vec3(0.0);
  vec3 h = wi + wo;
  h = h / max(length(h), 1e-12);
  vec3 f0 = specular * (1.0 - metallic) + albedo * metallic;
  float d = ggx_ndf(h, sig);
  float g = 1.0 / (1.0 + smith_lambda(wi, sig) + smith_lambda(wo, sig));
  float m = 1.0 - clamp(dot(wi, h), 0.0, 1.0);
  vec3 f90 = min(50.0 * f0, vec3(1.0));
  vec3 f = f0 + (f90 - f0) * (m * m * m * m * m);
  float cos_i = max(wi.z, 1e-6), cos_o = max(wo.z, 1e-6);
  return albedo * (1.0 - metallic) / PI + f * (d * g / (4.0 * cos_i * cos_o));
}
`;

function svbrdfMaterial(m) {
  const tex = m.textures.svbrdf;
  let s = textureUniforms("sv", tex) + SVBRDF_SHADING;
  s += `vec3 material(vec2 uv, vec3 wi, vec3 wo, float lod) {\n  vec4 v[${tex.groups}];\n`;
  s += readTexture("sv", tex, "v", "uv", "lod");
  s += `  float bx = v[0].x, by = v[0].y, mxx = v[0].z, myy = v[0].w, mxy = v[1].x;\n`;
  s += `  vec3 n = normalize_up(vec3(bx, by, 1.0));\n`;
  s += `  vec3 sig = 2.0 * clamp_covariance(vec3(mxx - bx * bx, myy - by * by, mxy - bx * by), MIN_VARIANCE);\n`;
  s += `  vec3 albedo = vec3(v[1].y, v[1].z, v[1].w);\n  float metallic = v[2].x, specular = v[2].y;\n`;
  s += `  vec3 wi_l = to_local_frame(wi, n), wo_l = to_local_frame(wo, n);\n`;
  s += `  vec3 f = microfacet_brdf(wi_l, wo_l, albedo, sig, metallic, specular);\n`;
  s += `  return f * (max(wi_l.z, 0.0) / wi.z);\n}\n`;
  return s;
}

function constantMaterial(m) {
  const [r, g, b] = m.rgb.map((x) => x.toFixed(9));
  return `vec3 material(vec2 uv, vec3 wi, vec3 wo, float lod) { return vec3(${r}, ${g}, ${b}); }\n`;
}

const MATERIALS = { neumip: neumipMaterial, svbrdf: svbrdfMaterial, constant: constantMaterial };

export function fragmentShader(manifest) {
  const make = MATERIALS[manifest.kind];
  if (!make) throw new Error(`material kind ${manifest.kind} is not in this viewer`);
  const defs = `#define RESOLUTION ${manifest.resolution}\n#define N_LEVELS ${manifest.n_levels}\n`;
  const [version, ...rest] = COMMON.split("\n");
  return [version, defs + rest.join("\n"), make(manifest), MAIN].join("\n");
}

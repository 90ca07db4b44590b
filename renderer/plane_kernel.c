/* The ground plane's pixel queries in one pass per pixel: the native twin of
 * renderer/render.py's plane_queries (same closed form, same order of operations where it
 * matters; its tests hold all three, this, the torch closed form and the general ray path, to
 * each other). Built on first use by plumbing/native_build.py; plain C99 + OpenMP.
 *
 * Why: in torch the closed form is some forty elementwise operations over each chunk, each a
 * pass over memory (about 55 ms of a 1080p frame on 2 cores); here every pixel's numbers stay in
 * registers and only the outputs are written (issue 22).
 *
 * cam: eye (3), forward (3), right (3), down (3), then scale (world units of the image plane per
 * pixel at unit distance), width, height. plane: height, texture size. light: kind (0
 * directional: vec = unit direction towards the light, value = irradiance; 1 point: vec =
 * position, value = intensity). Outputs (n rows each): valid (uint8), uv (2), wo (3), wi (3),
 * irradiance (1), and when duvdx is not NULL the footprint duvdx (2), duvdy (2). */
#include <math.h>
#include <stdint.h>

void plane_queries(const float *px, const float *py, int64_t n, const float *cam, const float *plane,
                   int light_kind, const float *light_vec, float light_value, uint8_t *valid, float *uv,
                   float *wo, float *wi, float *irradiance, float *duvdx, float *duvdy, int n_threads) {
    const float *eye = cam, *fwd = cam + 3, *right = cam + 6, *down = cam + 9;
    const float scale = cam[12], half_w = cam[13] / 2.0f, half_h = cam[14] / 2.0f;
    const float h = plane[0], s = plane[1];
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t q = 0; q < n; ++q) {
        float sx = (px[q] - half_w) * scale, sy = (py[q] - half_h) * scale;
        float raw[3];
        for (int i = 0; i < 3; ++i) raw[i] = fwd[i] + sx * right[i] + sy * down[i];
        float inv_len = 1.0f / sqrtf(raw[0] * raw[0] + raw[1] * raw[1] + raw[2] * raw[2]);
        float dx = raw[0] * inv_len, dy = raw[1] * inv_len, dz = raw[2] * inv_len;
        float safe = fabsf(dy) < 1e-6f ? -1e-6f : dy;
        float t = (h - eye[1]) / safe;
        valid[q] = t > 1e-6f && dy < -1e-6f;
        float hx = eye[0] + t * dx, hz = eye[2] + t * dz;
        uv[2 * q] = hx / s;
        uv[2 * q + 1] = -hz / s;
        wo[3 * q] = -dx;
        wo[3 * q + 1] = dz;
        wo[3 * q + 2] = -dy;
        float lx, ly, lz, e;
        if (light_kind == 0) {
            lx = light_vec[0], ly = light_vec[1], lz = light_vec[2], e = light_value;
        } else {
            float tx = light_vec[0] - hx, ty = light_vec[1] - h, tz = light_vec[2] - hz;
            float dist2 = fmaxf(tx * tx + ty * ty + tz * tz, 1e-12f), inv = 1.0f / sqrtf(dist2);
            lx = tx * inv, ly = ty * inv, lz = tz * inv, e = light_value / dist2;
        }
        wi[3 * q] = lx;
        wi[3 * q + 1] = -lz;
        wi[3 * q + 2] = ly;
        irradiance[q] = e;
        if (!duvdx) continue;
        float *out[2] = {duvdx + 2 * q, duvdy + 2 * q};
        const float *axes[2] = {right, down};
        for (int k = 0; k < 2; ++k) {
            float a0 = scale * axes[k][0], a1 = scale * axes[k][1], a2 = scale * axes[k][2];
            float along = dx * a0 + dy * a1 + dz * a2;
            float d0 = (a0 - dx * along) * inv_len, d1 = (a1 - dy * along) * inv_len;
            float d2 = (a2 - dz * along) * inv_len;
            float kk = d1 / safe;
            out[k][0] = t * (d0 - kk * dx) / s;
            out[k][1] = -t * (d2 - kk * dz) / s;
        }
    }
}

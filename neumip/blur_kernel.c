/* The latent textures' wrapped Gaussian blur (neumip/blur.py) on the CPU: a channels-last texture
 * (B, H, W, C) float32 blurred along x, then along y, by the taps g[0..2k] of offsets -k..k,
 * wrapped around the tile (a tap past the tile's width lands on its texel modulo the width, and
 * taps landing on the same texel add up, as the circulant matrices of blur.py).
 *
 * Why: blur.py multiplies each level by two dense circulant matrices, 2 x H x W x (H + W) x C
 * multiply-adds for a kernel of a few taps (sigma below 1 texel for the second half of a cpu-preset
 * run): about 3 ms of a `plus` training step, forwards and backwards (issue 22). Here a tap is
 * one multiply-add per value: along x a row of W x C values shifted by t x C (channels are
 * interleaved, so a texel shift is a flat shift), along y whole rows; plain loops the compiler
 * vectorises.
 *
 * The taps are symmetric (a Gaussian's), so the blur is its own adjoint: the backward pass is
 * the same blur of the gradient. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* row_out[0..n) += g * row_in shifted by s (row_out[i] += g row_in[(i - s) mod n]), 0 <= s < n. */
static inline void add_shifted(float *restrict row_out, const float *restrict row_in, int64_t n, int64_t s,
                               float g) {
    for (int64_t i = 0; i < s; ++i) row_out[i] += g * row_in[i - s + n];
    for (int64_t i = s; i < n; ++i) row_out[i] += g * row_in[i - s];
}

/* out = the blur of in, both (b, h, w, c) contiguous; taps g (2k + 1). Returns 0, or 2 when the
 * intermediate could not be allocated. */
int blur_wrapped_forward(const float *in, float *out, int64_t b, int64_t h, int64_t w, int64_t c,
                         const float *g, int64_t k, int n_threads) {
    const int64_t row = w * c, rows = b * h;
    float *mid = (float *)malloc((size_t)(rows * row) * sizeof(float));
    if (!mid) return 2;
#pragma omp parallel num_threads(n_threads)
    {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) { /* along x: flat shifts of t x c within the row */
            float *o = mid + r * row;
            memset(o, 0, (size_t)row * sizeof(float));
            for (int64_t t = -k; t <= k; ++t) {
                const int64_t s = ((t % w + w) % w) * c;
                add_shifted(o, in + r * row, row, s, g[t + k]);
            }
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) { /* along y: whole rows of the same texture */
            const int64_t bi = r / h, y = r % h;
            float *restrict o = out + r * row;
            memset(o, 0, (size_t)row * sizeof(float));
            for (int64_t t = -k; t <= k; ++t) {
                const float *restrict src = mid + (bi * h + ((y - t) % h + h) % h) * row;
                const float gt = g[t + k];
                for (int64_t i = 0; i < row; ++i) o[i] += gt * src[i];
            }
        }
    }
    free(mid);
    return 0;
}

/* A training batch's random queries (btf_data/sampler.py, continuous lods): n image indices,
 * uniform over n_images and returned in ascending order, and for each query a uv uniform in
 * [0, 1)^2 and a lod in [0, max_lod] drawn as the sampler's lod_sampling says.
 *
 * Why: torch's generator draws about 4 ns a number on one thread, and the lod mixture is a dozen
 * more passes: 1.5-2 ms of a training step of 65,536 queries (issue 22). Here every number comes
 * from a counter-based generator (SplitMix64's sequence from the batch's seed, at the number's
 * position), so
 * queries are drawn in parallel and the batch depends on the seed alone, not on the thread count.
 * The seed is drawn from the sampler's torch generator, whose state the checkpoints keep.
 *
 * Sorted indices: the indices are drawn independently of the uv and lod, so the sorted sequence
 * (counted per image, then written in order) paired with the queries' uv and lod is a batch of
 * the same distribution as the draws in their own order; the ground truth is then read image by
 * image (btf_data/lookup_kernel.c). Uniforms are 24-bit multiples of 2^-24 in [0, 1), as torch's
 * float32 rand. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* SplitMix64's output function (Steele, Lea and Flood 2014). */
static inline uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The k-th 64 random bits of query q (k < 4): SplitMix64's sequence from the seed, at position
 * 4 q + k, so any query's numbers are drawn without the ones before it. */
static inline uint64_t bits_of(uint64_t seed, int64_t q, int k) {
    return mix64(seed + ((uint64_t)q * 4u + (uint64_t)k + 1u) * 0x9E3779B97F4A7C15ull);
}

/* Two uniforms in [0, 1) from 64 random bits: their top and next 24 bits. */
static inline float high_uniform(uint64_t b) { return (float)(b >> 40) * (1.0f / 16777216.0f); }
static inline float low_uniform(uint64_t b) { return (float)((b >> 16) & 0xFFFFFFu) * (1.0f / 16777216.0f); }

/* lod_sampling: 0 power (max_lod u^lod_power), 1 official (NeuMIP's mixture: 10% at 0, 30% uniform
 * in [0, max_lod], 60% with P(lod > l) = 4^-l, clamped to max_lod). index (n,) int64, lod (n,)
 * and uv (n, 2) float32. Returns 0, or 2 when the per-thread counts could not be allocated. */
int draw_queries(uint64_t seed, int64_t n, int64_t n_images, float max_lod, int lod_sampling, float lod_power,
                 int64_t *index, float *lod, float *uv, int n_threads) {
    if (n_threads < 1) n_threads = 1;
    int64_t *counts = (int64_t *)calloc((size_t)(n_threads * n_images), sizeof(int64_t));
    if (!counts) return 2;
    const float log4 = logf(4.0f);
    /* n_threads parts of the queries, each counting its images into its own row of counts */
#pragma omp parallel for num_threads(n_threads) schedule(static, 1)
    for (int t = 0; t < n_threads; ++t) {
        int64_t *mine = counts + (int64_t)t * n_images;
        const int64_t q0 = n * t / n_threads, q1 = n * (t + 1) / n_threads;
        for (int64_t q = q0; q < q1; ++q) {
            /* the image: the high 64 bits of 64 random bits times n_images (each image's
             * probability within n_images / 2^64 of 1 / n_images) */
            mine[(int64_t)(((unsigned __int128)bits_of(seed, q, 0) * (uint64_t)n_images) >> 64)] += 1;
        }
        for (int64_t q = q0; q < q1; ++q) {
            const uint64_t b = bits_of(seed, q, 1);
            uv[2 * q] = high_uniform(b);
            uv[2 * q + 1] = low_uniform(b);
        }
        if (lod_sampling == 0)
            for (int64_t q = q0; q < q1; ++q) {
                const float u = high_uniform(bits_of(seed, q, 2));
                lod[q] = lod_power == 1.0f ? max_lod * u : max_lod * powf(u, lod_power);
            }
        else
            for (int64_t q = q0; q < q1; ++q) {
                const uint64_t b = bits_of(seed, q, 2);
                const float u = high_uniform(b);
                float l = 0.0f;
                if (u < 0.3f) {
                    l = low_uniform(b) * max_lod;
                } else if (u < 0.9f) { /* -log(1 - u') / log 4: 1 - u' is exact for 24-bit u', so
                                        * logf needs no log1pf (3x its time here) */
                    const float geometric = -logf(1.0f - high_uniform(bits_of(seed, q, 3))) / log4;
                    l = geometric < max_lod ? geometric : max_lod;
                }
                lod[q] = l;
            }
    }
    /* the indices in ascending order: image i repeated as often as it was drawn */
    int64_t at = 0;
    for (int64_t i = 0; i < n_images; ++i) {
        int64_t c = 0;
        for (int t = 0; t < n_threads; ++t) c += counts[(int64_t)t * n_images + i];
        for (int64_t k = 0; k < c; ++k) index[at++] = i;
    }
    free(counts);
    return 0;
}

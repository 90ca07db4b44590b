/* NeuMIP's whole query in bfloat16 on the CPU, a block of queries at a time through every stage:
 * the neural offset (its texture's bilinear lookup, its MLP, the shifted uv), the latent
 * pyramid's trilinear lookup, the decoder's MLP and the paper's head. The native twin of
 * NeuMIP._forward_batch under bf16 autocast for the models it serves (the paper's decoder with
 * the xy direction code, with or without the neural offset; no lobe, horizon or grazing limit),
 * built from the same pieces as the separate kernels (included below), in the same order of
 * operations: the same numbers, bit for bit, as the query through them one stage at a time.
 *
 * Why: run stage by stage, every stage's output makes a round trip through memory, the lookups
 * find their textures evicted by the MLPs' activations, and torch's glue between the stages (the
 * MLP inputs' direction columns, the offset's uv shift) is a dozen passes over each chunk: about
 * 60 ns of a `plus` query's 120 ns on 2 cores (issue 22). Here a block of QUERY_ROWS (96)
 * queries stays in L1.
 */
#include "../btf_data/lookup_kernel.c"
#include "decoder_kernel.c"
#include "mlp_kernel.c"

#if defined(__AVX512F__) && defined(__AVX512BF16__)

/* Queries per block: a multiple of every MLP tile's rows (24). */
#ifndef QUERY_ROWS
#define QUERY_ROWS 96
#endif

/* The latent lookup into row buf, C a constant in the specialised copies. */
#define LATENT_LOOKUP(C)                                                                         \
    forward_one(table, C, n_levels, offs, hs, ws, u, v, lod[q], 0, buf);

/* rgb (n, 3) of queries uv (n, 2), wi, wo (n, 3), lod (n,), all contiguous float32.
 * Offset (off_tex NULL: none): texture (off_h, off_w, off_c) channels-last, its MLP packed
 * (mlp_native.pack) with the first layer's bias, width and hidden layers, one output; depth_scale
 * and min_cos as NeuralOffset's. Latents: the packed pyramid table (rows, c) of n_levels levels
 * (offs, hs, ws as lookup_kernel.c). Decoder: its MLP (c + 4 inputs: the latents, wi.xy, wo.xy;
 * dec_out = 6 with the shadow mask, 3 without), yuv the YUV -> RGB matrix (3 x 3). Returns 0, or
 * 1 where a shape is not served. */
int neumip_query_bf16(const float *uv, const float *wi, const float *wo, const float *lod, int64_t n,
                      const float *off_tex, int64_t off_c, int64_t off_h, int64_t off_w,
                      const uint32_t *off_packed, const float *off_bias, int64_t off_width,
                      int64_t off_hidden, float depth_scale, float min_cos, const float *table, int64_t c,
                      int64_t n_levels, const int64_t *offs, const int64_t *hs, const int64_t *ws,
                      const uint32_t *dec_packed, const float *dec_bias, int64_t dec_width,
                      int64_t dec_hidden, int64_t dec_out, const float *yuv, int shadow_mask, float *rgb,
                      int n_threads) {
    if (off_tex && (!mlp_shape_served(off_c + 2, off_width, off_hidden, 1) || off_c > 62)) return 1;
    if (!mlp_shape_served(c + 4, dec_width, dec_hidden, dec_out) || c > 60 || dec_out != (shadow_mask ? 6 : 3))
        return 1;
    const int64_t off_offs[1] = {0}, off_hs[1] = {off_h}, off_ws[1] = {off_w};
    const __m512i *off_w_ = (const __m512i *)off_packed, *dec_w = (const __m512i *)dec_packed;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < (n + QUERY_ROWS - 1) / QUERY_ROWS; ++b) {
        uint32_t act[QUERY_ROWS * ACT_STRIDE] __attribute__((aligned(64)));
        float out[QUERY_ROWS][16], shifted[QUERY_ROWS][2], buf[MAX_IN];
        const int64_t r0 = b * QUERY_ROWS, rows = n - r0 < QUERY_ROWS ? n - r0 : QUERY_ROWS;
        memset(act, 0, sizeof act);
        /* the next block's texels, fetched while this block computes (the latents' at the
         * unshifted uv: the offset moves a query by a texel or so) */
        for (int64_t q = r0 + QUERY_ROWS; q < r0 + 2 * QUERY_ROWS && q < n; ++q) {
            if (off_tex)
                prefetch_one(off_tex, off_c, 1, off_offs, off_hs, off_ws, uv[2 * q], uv[2 * q + 1], 0.0f, 0);
            prefetch_one(table, c, n_levels, offs, hs, ws, uv[2 * q], uv[2 * q + 1], lod[q], 0);
        }
        if (off_tex) {
            /* the offset network's input: its texture's bilinear lookup, then wo.xy */
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t q = r0 + r;
                forward_one(off_tex, off_c, 1, off_offs, off_hs, off_ws, uv[2 * q], uv[2 * q + 1], 0.0f, 0, buf);
                buf[off_c] = wo[3 * q];
                buf[off_c + 1] = wo[3 * q + 1];
                row_to_act(buf, off_c + 2, act + r * ACT_STRIDE);
            }
            mlp_block(act, rows, off_c + 2, off_w_, off_bias, off_width, off_hidden, 1, &out[0][0], 16, 0);
            /* uv + r wo.xy / max(wo.z, min_cos), r = depth_scale x the network (NeuralOffset's order) */
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t q = r0 + r;
                const float depth = depth_scale * out[r][0];
                const float z = wo[3 * q + 2] < min_cos ? min_cos : wo[3 * q + 2];
                shifted[r][0] = uv[2 * q] + depth * (wo[3 * q] / z);
                shifted[r][1] = uv[2 * q + 1] + depth * (wo[3 * q + 1] / z);
            }
        } else {
            for (int64_t r = 0; r < rows; ++r) {
                shifted[r][0] = uv[2 * (r0 + r)];
                shifted[r][1] = uv[2 * (r0 + r) + 1];
            }
        }
        /* the decoder's input: the latents, wi.xy, wo.xy */
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t q = r0 + r;
            const float u = shifted[r][0], v = shifted[r][1];
            FOR_CHANNELS(c, LATENT_LOOKUP)
            buf[c] = wi[3 * q];
            buf[c + 1] = wi[3 * q + 1];
            buf[c + 2] = wo[3 * q];
            buf[c + 3] = wo[3 * q + 1];
            row_to_act(buf, c + 4, act + r * ACT_STRIDE);
        }
        mlp_block(act, rows, c + 4, dec_w, dec_bias, dec_width, dec_hidden, dec_out, &out[0][0], 16, 0);
        for (int64_t r = 0; r < rows; r += 16) {
            const int64_t left = rows - r;
            const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            head16(&out[r][0], 16, k, yuv, shadow_mask, 1, rgb + 3 * (r0 + r));
        }
    }
    return 0;
}

int neumip_query_supported(void) { return 1; }

#else /* no AVX512-BF16: the caller keeps the stages */

int neumip_query_bf16(void) { return 1; }
int neumip_query_supported(void) { return 0; }

#endif

/* A whole bias-free ReLU MLP (tiny-cuda-nn's layout: the first layer's constant-1 columns folded
 * into a bias) in bfloat16 on the CPU, every layer of a tile of rows in one pass: the native twin
 * of neumip/mlp_backends.py's TorchMLP inference path under bf16 autocast. Built on first use by
 * neumip/mlp_native.py; plain C + AVX512-BF16 intrinsics + OpenMP, no Python or torch headers.
 *
 * Why: oneDNN runs each layer over the whole chunk, so every layer's activations make a round
 * trip through memory, and the thin layers (the decoder's 6 outputs, the offset network's 9
 * inputs and 1 output) run at a fraction of the GEMM rate. Here a tile of R rows goes through
 * every layer with its activations in registers and a few hundred bytes of L1.
 *
 * Numbers: as oneDNN's bf16 linear: inputs, weights and each hidden layer's output (after the
 * ReLU) rounded to bf16 (round to nearest even), products summed in fp32. The bias and the last
 * layer's output stay fp32 (oneDNN rounds its output to bf16 too: this is the nearer to fp32).
 *
 * Weights are packed by mlp_native.py: layer l, pair p of input columns, output column j at
 * uint32 [p][j] = (W[j][2p], W[j][2p + 1]) in bf16, j padded to a multiple of 16 and the input
 * to a multiple of 2 with zeros, so that one 64-byte load holds 16 outputs' weights for two inputs
 * (what VDPBF16PS multiplies with a broadcast pair of activations). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>

/* Most 16-column blocks of a layer's output (width <= 64) and input columns (<= 64). */
#define MAX_BLOCKS 4
#define MAX_IN 64
#define ACT_STRIDE (MAX_IN / 2) /* uint32 pairs per row of a tile's activation buffer */

/* One layer over R rows: act (R rows x kp pairs of bf16, row stride ACT_STRIDE) times the packed
 * weights w (kp x JB blocks of 16 outputs) plus bias (JB x 16 floats, or NULL), into acc. */
#define LAYER(R, JB)                                                                             \
    static inline __attribute__((always_inline)) void layer_##R##_##JB(                          \
        const uint32_t *act, int64_t kp, const __m512i *w, const float *bias, __m512 acc[R][JB]) { \
        for (int jb = 0; jb < JB; ++jb) {                                                         \
            __m512 b0 = bias ? _mm512_loadu_ps(bias + 16 * jb) : _mm512_setzero_ps();             \
            for (int r = 0; r < R; ++r) acc[r][jb] = b0;                                          \
        }                                                                                         \
        for (int64_t p = 0; p < kp; ++p) {                                                        \
            __m512i wv[JB];                                                                       \
            for (int jb = 0; jb < JB; ++jb) wv[jb] = _mm512_loadu_si512(w + p * JB + jb);          \
            for (int r = 0; r < R; ++r) {                                                         \
                __m512i a = _mm512_set1_epi32((int)act[r * ACT_STRIDE + p]);                      \
                for (int jb = 0; jb < JB; ++jb)                                                   \
                    acc[r][jb] = _mm512_dpbf16_ps(acc[r][jb], (__m512bh)a, (__m512bh)wv[jb]);     \
            }                                                                                     \
        }                                                                                         \
    }

/* acc (R x JB blocks) -> ReLU -> bf16 into act (row stride ACT_STRIDE pairs). */
#define STORE_HIDDEN(R, JB)                                                                      \
    static inline __attribute__((always_inline)) void store_hidden_##R##_##JB(                   \
        __m512 acc[R][JB], uint32_t *act) {                                                      \
        const __m512 zero = _mm512_setzero_ps();                                                  \
        for (int r = 0; r < R; ++r) {                                                             \
            uint16_t *row = (uint16_t *)(act + r * ACT_STRIDE);                                   \
            int jb = 0;                                                                           \
            for (; jb + 1 < JB; jb += 2) {                                                        \
                __m512bh h = _mm512_cvtne2ps_pbh(_mm512_max_ps(acc[r][jb + 1], zero),              \
                                                 _mm512_max_ps(acc[r][jb], zero));                \
                _mm512_storeu_si512(row + 16 * jb, (__m512i)h);                                    \
            }                                                                                     \
            if (jb < JB) {                                                                        \
                __m256bh h = _mm512_cvtneps_pbh(_mm512_max_ps(acc[r][jb], zero));                 \
                _mm256_storeu_si256((__m256i *)(row + 16 * jb), (__m256i)h);                       \
            }                                                                                     \
        }                                                                                         \
    }

/* A row of act = x's n_in floats in bf16 (round to nearest even), zeros up to the next 32. */
static inline void row_to_act(const float *xr, int64_t n_in, uint32_t *act_row) {
    uint16_t *row = (uint16_t *)act_row;
    const __mmask16 m0 = (__mmask16)(n_in >= 16 ? 0xFFFF : (1u << n_in) - 1);
    const __mmask16 m1 = (__mmask16)(n_in >= 32 ? 0xFFFF : n_in <= 16 ? 0 : (1u << (n_in - 16)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(m0, xr), b = _mm512_maskz_loadu_ps(m1, xr + 16);
    _mm512_storeu_si512(row, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    if (n_in > 32) {
        const __mmask16 m2 = (__mmask16)(n_in >= 48 ? 0xFFFF : (1u << (n_in - 32)) - 1);
        const __mmask16 m3 = (__mmask16)(n_in >= 64 ? 0xFFFF : n_in <= 48 ? 0 : (1u << (n_in - 48)) - 1);
        a = _mm512_maskz_loadu_ps(m2, xr + 32);
        b = _mm512_maskz_loadu_ps(m3, xr + 48);
        _mm512_storeu_si512(row + 32, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
}

/* k bf16 (a multiple of 16) from src to dst: inline, as the rows are short and many. */
static inline void copy_bf16(uint16_t *dst, const uint16_t *src, int64_t k) {
    for (int64_t i = 0; i < k; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)(src + i)));
}

/* Where a training forward keeps what its backward reads, from a tile's first row: its input
 * rows (act0, row stride a0s bf16) and each hidden layer's output rows after the ReLU (hid, layer
 * l at hid + l * n * width, row stride width). NULL in inference. */
typedef struct {
    uint16_t *act0;
    int64_t a0s;
    uint16_t *hid;
    int64_t n;
} Keep;

/* Every layer over R rows of act (bf16 inputs, consumed: the hidden layers are written back into
 * it); the first `rows` rows' n_out outputs go to out (row stride out_stride) in fp32, and what
 * `keep` asks for to its arrays. */
#define TILE(R, JB)                                                                              \
    STORE_HIDDEN(R, JB)                                                                          \
    static void tile_##R##_##JB(uint32_t *act, int64_t n_in, int64_t rows, const __m512i *w,     \
                                const float *bias, int64_t hidden_layers, int64_t n_out, float *out, \
                                int64_t out_stride, const Keep *keep) {                          \
        __m512 acc[R][JB];                                                                        \
        const int64_t kp0 = (n_in + 1) / 2, kph = 16 * JB / 2;                                    \
        if (keep)                                                                                 \
            for (int r = 0; r < R && r < rows; ++r)                                               \
                copy_bf16(keep->act0 + r * keep->a0s, (const uint16_t *)(act + r * ACT_STRIDE), keep->a0s); \
        layer_##R##_##JB(act, kp0, w, bias, acc);                                                 \
        w += kp0 * JB;                                                                            \
        for (int64_t l = 0; l < hidden_layers; ++l) {                                             \
            store_hidden_##R##_##JB(acc, act);                                                    \
            if (keep)                                                                             \
                for (int r = 0; r < R && r < rows; ++r)                                           \
                    copy_bf16(keep->hid + (l * keep->n + r) * 16 * JB,                            \
                              (const uint16_t *)(act + r * ACT_STRIDE), 16 * JB);                 \
            if (l + 1 < hidden_layers) {                                                          \
                layer_##R##_##JB(act, kph, w, 0, acc);                                            \
                w += kph * JB;                                                                    \
            }                                                                                     \
        }                                                                                         \
        __m512 o[R][1];                                                                           \
        layer_##R##_1(act, kph, w, 0, o);                                                         \
        const __mmask16 om = (__mmask16)((1u << n_out) - 1);                                      \
        for (int r = 0; r < R && r < rows; ++r) _mm512_mask_storeu_ps(out + r * out_stride, om, o[r][0]); \
    }

/* Rows per tile: R x JB accumulators and JB weight vectors within the 32 zmm registers; each
 * tile's last layer has one block (n_out <= 16). */
LAYER(24, 1)
LAYER(12, 2)
LAYER(12, 1)
LAYER(6, 3)
LAYER(6, 4)
LAYER(6, 1)
TILE(24, 1)
TILE(12, 2)
TILE(6, 3)
TILE(6, 4)

/* Rows of every tile: BLOCK_ROWS is a multiple of each. */
#define BLOCK_ROWS 24

/* Whether the kernel serves an MLP of these sizes. */
static int mlp_shape_served(int64_t n_in, int64_t width, int64_t hidden_layers, int64_t n_out) {
    return !(width % 16 || width < 16 || width > 16 * MAX_BLOCKS || n_in < 1 || n_in > MAX_IN || n_out < 1 ||
             n_out > 16 || hidden_layers < 1);
}

/* A block of up to BLOCK_ROWS rows of act (BLOCK_ROWS x ACT_STRIDE, consumed) through the MLP,
 * in tiles of the width's rows; the first `rows` rows' outputs to out; `keep` (from the block's
 * first row) or NULL. */
static void mlp_block(uint32_t *act, int64_t rows, int64_t n_in, const __m512i *w, const float *bias,
                      int64_t width, int64_t hidden_layers, int64_t n_out, float *out, int64_t out_stride,
                      const Keep *keep) {
    const int64_t tile = width == 16 ? 24 : width == 32 ? 12 : 6;
    for (int64_t r0 = 0; r0 < rows; r0 += tile) {
        uint32_t *a = act + r0 * ACT_STRIDE;
        float *o = out + r0 * out_stride;
        Keep kt, *k = 0;
        if (keep) {
            kt = (Keep){keep->act0 + r0 * keep->a0s, keep->a0s, keep->hid + r0 * width, keep->n};
            k = &kt;
        }
        switch (width / 16) {
        case 1: tile_24_1(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride, k); break;
        case 2: tile_12_2(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride, k); break;
        case 3: tile_6_3(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride, k); break;
        default: tile_6_4(a, n_in, rows - r0, w, bias, hidden_layers, n_out, o, out_stride, k); break;
        }
    }
}

static inline int64_t pad16(int64_t k) { return (k + 15) / 16 * 16; }

/* mlp_bf16_forward's work; with act0 and hid not NULL, keeping what the training backward reads
 * (act0 (n, pad16(n_in)), hid (hidden_layers, n, width), bf16). */
static void forward_rows(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const __m512i *w,
                         const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                         int64_t out_stride, uint16_t *act0, uint16_t *hid, int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t b = 0; b < (n + BLOCK_ROWS - 1) / BLOCK_ROWS; ++b) {
        uint32_t act[BLOCK_ROWS * ACT_STRIDE] __attribute__((aligned(64)));
        const int64_t r0 = b * BLOCK_ROWS, rows = n - r0 < BLOCK_ROWS ? n - r0 : BLOCK_ROWS;
        for (int64_t r = 0; r < BLOCK_ROWS; ++r) {
            if (r < rows) row_to_act(x + (r0 + r) * x_stride, n_in, act + r * ACT_STRIDE);
            else memset(act + r * ACT_STRIDE, 0, sizeof(uint32_t) * ACT_STRIDE);
        }
        const Keep keep = {act0 ? act0 + r0 * pad16(n_in) : 0, pad16(n_in), hid ? hid + r0 * width : 0, n};
        mlp_block(act, rows, n_in, w, bias, width, hidden_layers, n_out, out + r0 * out_stride, out_stride,
                  act0 ? &keep : 0);
    }
}

/* out (n, >= n_out) with row stride out_stride = the MLP of x (n, >= n_in) with row stride
 * x_stride. width: 16, 32, 48 or 64; n_in <= 64; n_out <= 16; hidden_layers >= 1. Returns 0, or 1
 * where the shapes are not served. */
int mlp_bf16_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                     const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                     int64_t out_stride, int n_threads) {
    if (!mlp_shape_served(n_in, width, hidden_layers, n_out)) return 1;
    forward_rows(x, n, x_stride, n_in, (const __m512i *)packed, bias, width, hidden_layers, n_out, out, out_stride,
                 0, 0, n_threads);
    return 0;
}

/* ---- Training: the forward pass keeping every layer's input, and the backward pass. ----
 *
 * Why: under bf16 autocast a training step runs each layer through oneDNN as separate GEMMs
 * (forward, input gradient, weight gradient), with ReLU, its mask and the bf16 casts as further
 * passes over memory (issue 22: matrix products, threshold_backward and copies were half of a
 * `plus` step). Here a block of rows goes through every layer's backward in L1.
 *
 * Numbers: as autocast's: each layer's input and its output gradient in bf16, products summed in
 * fp32; the weight gradients are summed over all rows in fp32 (autocast rounds them to bf16 once
 * more; this keeps fp32), the first layer's bias gradient is the fp32 sum of its bf16 output
 * gradients. Saved activations: the input (rows of in_pad16 bf16) and each hidden layer's output
 * after its ReLU (rows of width bf16); a ReLU's derivative is read from its output (> 0). */

/* As mlp_bf16_forward, keeping what the backward pass reads: act0 (n, pad16(n_in)) bf16, the
 * inputs; hid (hidden_layers, n, width) bf16, the hidden layers' outputs after the ReLU. */
int mlp_bf16_train_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                           const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                           int64_t out_stride, uint16_t *act0, uint16_t *hid, int n_threads) {
    if (!mlp_shape_served(n_in, width, hidden_layers, n_out) || !act0 || !hid) return 1;
    forward_rows(x, n, x_stride, n_in, (const __m512i *)packed, bias, width, hidden_layers, n_out, out, out_stride,
                 act0, hid, n_threads);
    return 0;
}

/* Rows of a backward block: even (the weight gradient pairs rows) and a multiple of every tile. */
#define BACK_ROWS 48
#define ROW_BF16 64 /* bf16 per row of a block buffer */

/* 16 bf16 of row x and 16 of row y -> 16 pairs (x[j], y[j]): what VDPBF16PS sums over rows. */
static inline __m512i interleave_rows(const uint16_t *x, const uint16_t *y) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                         22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x)),
                                   _mm256_loadu_si256((const __m256i *)y), 1);
    return _mm512_permutexvar_epi16(idx, v);
}

/* dw (go x ai, fp32, row-major) += g^T a over BACK_ROWS rows: g rows of go bf16 (row stride
 * ROW_BF16) and a rows of ai bf16 (row stride as), go and ai multiples of 16. OT outputs x IB blocks of 16 inputs in
 * registers, summed over the block's row pairs. */
#define WGRAD(OT, IB)                                                                            \
    static void wgrad_##IB(const uint32_t *gi, int64_t go, const __m512i *ai, float *dw) {       \
        const int64_t ai_n = 16 * IB;                                                             \
        for (int64_t o0 = 0; o0 < go; o0 += OT) {                                                 \
            __m512 acc[OT][IB];                                                                   \
            for (int o = 0; o < OT; ++o)                                                          \
                for (int ib = 0; ib < IB; ++ib) acc[o][ib] = _mm512_loadu_ps(dw + (o0 + o) * ai_n + 16 * ib); \
            for (int p = 0; p < BACK_ROWS / 2; ++p) {                                             \
                __m512i av[IB];                                                                   \
                for (int ib = 0; ib < IB; ++ib) av[ib] = ai[p * 4 + ib];                          \
                for (int o = 0; o < OT; ++o) {                                                    \
                    __m512i gv = _mm512_set1_epi32((int)gi[p * ROW_BF16 + o0 + o]);               \
                    for (int ib = 0; ib < IB; ++ib)                                               \
                        acc[o][ib] = _mm512_dpbf16_ps(acc[o][ib], (__m512bh)gv, (__m512bh)av[ib]); \
                }                                                                                 \
            }                                                                                     \
            for (int o = 0; o < OT; ++o)                                                          \
                for (int ib = 0; ib < IB; ++ib) _mm512_storeu_ps(dw + (o0 + o) * ai_n + 16 * ib, acc[o][ib]); \
        }                                                                                         \
    }

WGRAD(16, 1)
WGRAD(8, 2)
WGRAD(4, 3)
WGRAD(4, 4)

static void wgrad(const uint16_t *g, int64_t go, const uint16_t *a, int64_t as, int64_t ai, float *dw) {
    uint32_t gi[BACK_ROWS / 2 * ROW_BF16] __attribute__((aligned(64)));
    __m512i av[BACK_ROWS / 2 * 4];
    for (int p = 0; p < BACK_ROWS / 2; ++p) {
        const uint16_t *g0 = g + 2 * p * ROW_BF16, *a0 = a + 2 * p * as;
        for (int64_t k = 0; k < go / 16; ++k)
            _mm512_storeu_si512(gi + p * ROW_BF16 + 16 * k, interleave_rows(g0 + 16 * k, g0 + ROW_BF16 + 16 * k));
        for (int64_t k = 0; k < ai / 16; ++k) av[p * 4 + k] = interleave_rows(a0 + 16 * k, a0 + as + 16 * k);
    }
    switch (ai / 16) {
    case 1: wgrad_1(gi, go, av, dw); break;
    case 2: wgrad_2(gi, go, av, dw); break;
    case 3: wgrad_3(gi, go, av, dw); break;
    default: wgrad_4(gi, go, av, dw); break;
    }
}

/* The input gradient of one layer over R rows: acc = g (rows of kp bf16 pairs) times the layer's
 * transposed packed weights; then, for a hidden layer, masked by its input a > 0 (rows of stride
 * as) and stored in bf16 into g (consumed); for the first layer, its n_in columns stored in fp32 to gx. */
#define GRAD_IN(R, JB)                                                                           \
    static void grad_in_##R##_##JB(uint32_t *g, const uint16_t *a, int64_t as, int64_t kp,        \
                                   const __m512i *wt, int64_t rows, float *gx, int64_t gx_stride, \
                                   int64_t n_in) {                                                \
        __m512 acc[R][JB];                                                                        \
        layer_##R##_##JB(g, kp, wt, 0, acc);                                                      \
        if (gx) {                                                                                 \
            for (int r = 0; r < R && r < rows; ++r)                                               \
                for (int jb = 0; jb < JB; ++jb) {                                                 \
                    int64_t left = n_in - 16 * jb;                                                \
                    __mmask16 m = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);           \
                    _mm512_mask_storeu_ps(gx + r * gx_stride + 16 * jb, m, acc[r][jb]);            \
                }                                                                                 \
            return;                                                                               \
        }                                                                                         \
        for (int r = 0; r < R; ++r) {                                                             \
            uint16_t *row = (uint16_t *)(g + r * ACT_STRIDE);                                     \
            for (int jb = 0; jb < JB; ++jb) {                                                     \
                __m256i h = _mm256_loadu_si256((const __m256i *)(a + r * as + 16 * jb));           \
                __m512 v = _mm512_maskz_mov_ps(_mm256_test_epi16_mask(h, h), acc[r][jb]);         \
                _mm256_storeu_si256((__m256i *)(row + 16 * jb), (__m256i)_mm512_cvtneps_pbh(v));   \
            }                                                                                     \
        }                                                                                         \
    }

GRAD_IN(24, 1)
GRAD_IN(12, 2)
GRAD_IN(6, 3)
GRAD_IN(6, 4)

static void grad_in(uint32_t *g, const uint16_t *a, int64_t as, int64_t kp, const __m512i *wt, int64_t jb,
                    int64_t rows, float *gx, int64_t gx_stride, int64_t n_in) {
    const int64_t tile = jb == 1 ? 24 : jb == 2 ? 12 : 6;
    for (int64_t r0 = 0; r0 < rows; r0 += tile) {
        uint32_t *gr = g + r0 * ACT_STRIDE;
        const uint16_t *ar = a + r0 * as;
        float *x = gx ? gx + r0 * gx_stride : 0;
        switch (jb) {
        case 1: grad_in_24_1(gr, ar, as, kp, wt, rows - r0, x, gx_stride, n_in); break;
        case 2: grad_in_12_2(gr, ar, as, kp, wt, rows - r0, x, gx_stride, n_in); break;
        case 3: grad_in_6_3(gr, ar, as, kp, wt, rows - r0, x, gx_stride, n_in); break;
        default: grad_in_6_4(gr, ar, as, kp, wt, rows - r0, x, gx_stride, n_in); break;
        }
    }
}

/* The backward pass of mlp_bf16_train_forward. grad_out (n, >= n_out) fp32, row stride go_stride;
 * packed_t: each layer's transposed matrix packed as the forward's (mlp_native.pack of the
 * transposes); act0, hid: what the forward kept. Writes grad_w: each layer's weight gradient,
 * compact and in order (width x n_in, width x width per further hidden layer, n_out x width);
 * grad_bias (width) when not NULL; grad_x (n, n_in) with row stride gx_stride when not NULL.
 * Returns 0, 1 where the shapes are not served, 2 where memory ran out. */
int mlp_bf16_train_backward(const float *grad_out, int64_t n, int64_t go_stride, int64_t n_in,
                            const uint32_t *packed_t, int64_t width, int64_t hidden_layers, int64_t n_out,
                            const uint16_t *act0, const uint16_t *hid, float *grad_w, float *grad_bias,
                            float *grad_x, int64_t gx_stride, int n_threads) {
    if (!mlp_shape_served(n_in, width, hidden_layers, n_out)) return 1;
    if (n_threads < 1) n_threads = 1;
    const int64_t a0s = pad16(n_in), jb = width / 16, L = hidden_layers;
    /* The rows' blocks in n_threads contiguous parts, each summing into its own fp32 sums (padded:
     * layer 0 width x a0s, hidden width x width, out 16 x width, bias width), added in part order
     * at the end: the same sums whichever thread runs which part. */
    const int64_t per = width * a0s + (L - 1) * width * width + 16 * width + width;
    float *sums = (float *)calloc((size_t)(n_threads * per), sizeof(float));
    if (!sums) return 2;
    /* the transposed layers' offsets in packed_t (uint32 pairs) */
    const int64_t wt0 = width / 2 * pad16(n_in), wth = width / 2 * width;
#pragma omp parallel for num_threads(n_threads) schedule(static, 1)
    for (int64_t t = 0; t < n_threads; ++t) {
        float *dw0 = sums + t * per, *dwh = dw0 + width * a0s, *dwo = dwh + (L - 1) * width * width;
        float *db = dwo + 16 * width;
        uint32_t g[BACK_ROWS * ACT_STRIDE] __attribute__((aligned(64)));
        uint16_t a[BACK_ROWS * ROW_BF16] __attribute__((aligned(64)));
        const int64_t blocks = (n + BACK_ROWS - 1) / BACK_ROWS;
        const int64_t b0 = blocks * t / n_threads, b1 = blocks * (t + 1) / n_threads;
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t r0 = b * BACK_ROWS, rows = n - r0 < BACK_ROWS ? n - r0 : BACK_ROWS;
            for (int64_t r = 0; r < BACK_ROWS; ++r) {
                if (r < rows) row_to_act(grad_out + (r0 + r) * go_stride, n_out, g + r * ACT_STRIDE);
                else memset(g + r * ACT_STRIDE, 0, sizeof(uint32_t) * ACT_STRIDE);
            }
            for (int64_t l = L; l >= 0; --l) {
                /* this layer's input rows: read in place, or for the last block copied with
                 * zeros past the last row */
                const int64_t ai = l == 0 ? a0s : width;
                const uint16_t *src = l == 0 ? act0 + r0 * a0s : hid + ((l - 1) * n + r0) * width;
                int64_t as = ai;
                if (rows < BACK_ROWS) {
                    for (int64_t r = 0; r < BACK_ROWS; ++r) {
                        if (r < rows) copy_bf16(a + r * ROW_BF16, src + r * ai, ai);
                        else memset(a + r * ROW_BF16, 0, 2 * ai);
                    }
                    src = a;
                    as = ROW_BF16;
                }
                const int64_t go = l == L ? 16 : width;
                float *dw = l == L ? dwo : l == 0 ? dw0 : dwh + (l - 1) * width * width;
                wgrad((const uint16_t *)g, go, src, as, ai, dw);
                const __m512i *wt = (const __m512i *)(packed_t + (l == 0 ? 0 : wt0 + (l - 1) * wth));
                if (l > 0) {
                    grad_in(g, src, as, l == L ? (n_out + 1) / 2 : width / 2, wt, jb, rows, 0, 0, 0);
                    continue;
                }
                for (int64_t r = 0; r < rows; ++r) {
                    const uint16_t *row = (const uint16_t *)(g + r * ACT_STRIDE);
                    for (int64_t k = 0; k < jb; ++k) {
                        __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(
                            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 16 * k))), 16));
                        _mm512_storeu_ps(db + 16 * k, _mm512_add_ps(_mm512_loadu_ps(db + 16 * k), v));
                    }
                }
                if (grad_x)
                    grad_in(g, src, as, width / 2, wt, pad16(n_in) / 16, rows, grad_x + r0 * gx_stride, gx_stride,
                            n_in);
            }
        }
    }
    /* the parts' sums, in part order, into the compact gradients */
    float *out = grad_w;
    for (int64_t o = 0; o < width; ++o)
        for (int64_t i = 0; i < n_in; ++i) {
            float s = 0.0f;
            for (int t = 0; t < n_threads; ++t) s += sums[t * per + o * a0s + i];
            *out++ = s;
        }
    for (int64_t k = 0; k < (L - 1) * width * width + n_out * width; ++k) {
        float s = 0.0f;
        for (int t = 0; t < n_threads; ++t) s += sums[t * per + width * a0s + k];
        *out++ = s;
    }
    if (grad_bias)
        for (int64_t o = 0; o < width; ++o) {
            float s = 0.0f;
            for (int t = 0; t < n_threads; ++t) s += sums[t * per + per - width + o];
            grad_bias[o] = s;
        }
    free(sums);
    return 0;
}

int mlp_bf16_supported(void) { return 1; }

#else /* no AVX512-BF16 on the machine this was compiled for: the caller keeps oneDNN */

int mlp_bf16_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                     const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                     int64_t out_stride, int n_threads) {
    (void)x; (void)n; (void)x_stride; (void)n_in; (void)packed; (void)bias; (void)width;
    (void)hidden_layers; (void)n_out; (void)out; (void)out_stride; (void)n_threads;
    return 1;
}

int mlp_bf16_supported(void) { return 0; }

int mlp_bf16_train_forward(const float *x, int64_t n, int64_t x_stride, int64_t n_in, const uint32_t *packed,
                           const float *bias, int64_t width, int64_t hidden_layers, int64_t n_out, float *out,
                           int64_t out_stride, uint16_t *act0, uint16_t *hid, int n_threads) {
    (void)x; (void)n; (void)x_stride; (void)n_in; (void)packed; (void)bias; (void)width;
    (void)hidden_layers; (void)n_out; (void)out; (void)out_stride; (void)act0; (void)hid; (void)n_threads;
    return 1;
}

int mlp_bf16_train_backward(const float *grad_out, int64_t n, int64_t go_stride, int64_t n_in,
                            const uint32_t *packed_t, int64_t width, int64_t hidden_layers, int64_t n_out,
                            const uint16_t *act0, const uint16_t *hid, float *grad_w, float *grad_bias,
                            float *grad_x, int64_t gx_stride, int n_threads) {
    (void)grad_out; (void)n; (void)go_stride; (void)n_in; (void)packed_t; (void)width; (void)hidden_layers;
    (void)n_out; (void)act0; (void)hid; (void)grad_w; (void)grad_bias; (void)grad_x; (void)gx_stride;
    (void)n_threads;
    return 1;
}

#endif

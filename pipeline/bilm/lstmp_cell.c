/* The element-wise part of one step of the clipped projected LSTM (ELMo's cell), forward and
 * backward, fused into one pass over each row so that the gates never travel through memory
 * more than once. The matmuls stay in PyTorch (oneDNN), except for one sentence at a time
 * (lstmp_steps_few_rows: the whole recurrence here). pipeline/bilm/native.py compiles this file
 * on first use and calls it through ctypes; pipeline/bilm/lstmp.py holds the PyTorch version of
 * the same arithmetic (used where no C compiler is present).
 *
 * A "row" is one (direction, sentence) pair: rows = D * B, each with H cells and 4H gates in
 * the order i, f, g, o (nn.LSTM). Row r = d * B + b of an array X sits at X + d * X_sd + b * width.
 * Products of the matmuls and the values sent back to them are fp32 or bf16 (`bf16` != 0);
 * gates, cells and saved values are always fp32.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t bf16_t;

static inline float bf16_to_float(bf16_t v) {
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* round to nearest even, as PyTorch's float -> bfloat16 conversion (inputs are finite) */
static inline bf16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (bf16_t)(bits >> 16);
}

/* exp(x) to about 1 ulp (Cephes' range reduction and polynomial), written so that the compiler
 * vectorises it: no branches, no library calls */
static inline float fast_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick: floorf would keep the loop from vectorising */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, 4);
    return y * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

static inline float tanh_(float x) { return 2.0f / (1.0f + fast_exp(-2.0f * x)) - 1.0f; }

static inline float clip(float x, float limit) { return x < -limit ? -limit : (x > limit ? limit : x); }

#define INLINE static inline __attribute__((always_inline))

INLINE float load(const void *restrict p, int64_t k, const int bf16) {
    return bf16 ? bf16_to_float(((const bf16_t *)p)[k]) : ((const float *)p)[k];
}

INLINE void store(void *restrict p, int64_t k, float v, const int bf16) {
    if (bf16)
        ((bf16_t *)p)[k] = float_to_bf16(v);
    else
        ((float *)p)[k] = v;
}

/* one row of the forward step; bf16 and save are constants at each call, so that every variant
 * is a branch-free loop the compiler vectorises */
INLINE void forward_row(int64_t H, const void *restrict x, const float *restrict bias, const void *restrict gh,
                        float *restrict c, void *restrict m, float *restrict a, float *restrict cs, float cell_clip,
                        const int bf16, const int save) {
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
        float i = sigmoid(load(x, j, bf16) + bias[j] + load(gh, j, bf16));
        float f = sigmoid(load(x, H + j, bf16) + bias[H + j] + load(gh, H + j, bf16));
        float g = tanh_(load(x, 2 * H + j, bf16) + bias[2 * H + j] + load(gh, 2 * H + j, bf16));
        float o = sigmoid(load(x, 3 * H + j, bf16) + bias[3 * H + j] + load(gh, 3 * H + j, bf16));
        float cj = clip(f * c[j] + i * g, cell_clip);
        c[j] = cj;
        store(m, j, o * tanh_(cj), bf16);
        if (save) {
            a[j] = i;
            a[H + j] = f;
            a[2 * H + j] = g;
            a[3 * H + j] = o;
            cs[j] = cj;
        }
    }
}

/* Forward, one step. gates = (gx + bias) + gh, with gx the input's product, gh the previous
 * output's; a = (sigmoid i, sigmoid f, tanh g, sigmoid o); c = clip(f * c + i * g);
 * m = o * tanh(c) (the projection's input). cell_clip: INFINITY for none. bias (D, 4H) fp32;
 * c (D, B, H) is updated in place; acts and c_saved (both NULL, or both set) keep a and c for
 * the backward. */
void lstmp_forward_step(int64_t D, int64_t B, int64_t H, int bf16, int threads, float cell_clip,
                        const void *gx, int64_t gx_sd, const float *bias, const void *gh, float *c, void *m,
                        int64_t m_sd, float *acts, int64_t acts_sd, float *c_saved, int64_t c_saved_sd) {
    const int64_t G = 4 * H, w = bf16 ? 2 : 4;
    const int save = acts != 0;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && D * B * H > 32768)
    for (int64_t r = 0; r < D * B; r++) {
        const int64_t d = r / B, b = r % B;
        const char *x = (const char *)gx + (d * gx_sd + b * G) * w;
        const char *ghr = (const char *)gh + r * G * w;
        char *mr = (char *)m + (d * m_sd + b * H) * w;
        const float *bi = bias + d * G;
        float *a = save ? acts + d * acts_sd + b * G : 0;
        float *cs = save ? c_saved + d * c_saved_sd + b * H : 0;
        if (bf16 && save) forward_row(H, x, bi, ghr, c + r * H, mr, a, cs, cell_clip, 1, 1);
        else if (bf16) forward_row(H, x, bi, ghr, c + r * H, mr, a, cs, cell_clip, 1, 0);
        else if (save) forward_row(H, x, bi, ghr, c + r * H, mr, a, cs, cell_clip, 0, 1);
        else forward_row(H, x, bi, ghr, c + r * H, mr, a, cs, cell_clip, 0, 0);
    }
}

INLINE void backward_h_row(int64_t P, const void *restrict go, const void *restrict dh_next,
                           const void *restrict out, void *restrict dh, float proj_clip, const int bf16,
                           const int has_next) {
#pragma omp simd
    for (int64_t j = 0; j < P; j++) {
        float v = load(go, j, bf16) + (has_next ? load(dh_next, j, bf16) : 0.0f);
        store(dh, j, fabsf(load(out, j, bf16)) < proj_clip ? v : 0.0f, bf16);
    }
}

/* Backward, the projection's side of one step: dh = (grad_out + dh_next) where the output was
 * not clipped (|out| < proj_clip; INFINITY for none), else 0. All four in the matmul dtype;
 * grad_out, out and d_h (D, T, B, P) at this step (D-stride sd), dh_next (D, B, P) or NULL at
 * the last step. */
void lstmp_backward_h(int64_t D, int64_t B, int64_t P, int bf16, float proj_clip, const void *grad_out,
                      const void *dh_next, const void *out, void *d_h, int64_t sd) {
    const int64_t w = bf16 ? 2 : 4;
    for (int64_t r = 0; r < D * B; r++) {
        const int64_t d = r / B, b = r % B, k = (d * sd + b * P) * w;
        const char *go = (const char *)grad_out + k, *o = (const char *)out + k;
        const char *nx = dh_next ? (const char *)dh_next + r * P * w : 0;
        char *dh = (char *)d_h + k;
        if (bf16 && nx) backward_h_row(P, go, nx, o, dh, proj_clip, 1, 1);
        else if (bf16) backward_h_row(P, go, nx, o, dh, proj_clip, 1, 0);
        else if (nx) backward_h_row(P, go, nx, o, dh, proj_clip, 0, 1);
        else backward_h_row(P, go, nx, o, dh, proj_clip, 0, 0);
    }
}

INLINE void backward_cell_row(int64_t H, int64_t j0, int64_t j1, const void *restrict dm, const float *restrict a,
                              const float *restrict c, const float *restrict cp, float *restrict dc,
                              void *restrict dg, float *restrict db, float cell_clip, const int bf16,
                              const int has_prev) {
#pragma omp simd
    for (int64_t j = j0; j < j1; j++) {
        float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        float tc = tanh_(c[j]);
        float dmj = load(dm, j, bf16);
        float dcj = dc[j] + dmj * o * (1.0f - tc * tc);
        dcj = fabsf(c[j]) < cell_clip ? dcj : 0.0f;
        float cpj = has_prev ? cp[j] : 0.0f;
        float v0 = dcj * g * i * (1.0f - i), v1 = dcj * cpj * f * (1.0f - f);
        float v2 = dcj * i * (1.0f - g * g), v3 = dmj * tc * o * (1.0f - o);
        store(dg, j, v0, bf16);
        store(dg, H + j, v1, bf16);
        store(dg, 2 * H + j, v2, bf16);
        store(dg, 3 * H + j, v3, bf16);
        db[j] += v0;
        db[H + j] += v1;
        db[2 * H + j] += v2;
        db[3 * H + j] += v3;
        dc[j] = dcj * f;
    }
}

/* cells per block of the backward's parallel loop: each thread owns whole blocks of cells for
 * every row, so the bias gradient is summed over rows in the same order whatever the threads */
#define CELL_BLOCK 128

/* Backward, the cell's side of one step, from dm = dL/d(o * tanh c) (the projection's input):
 * dc = (dc + dm * o * (1 - tanh(c)^2)) where c was not clipped (|c| < cell_clip; INFINITY for
 * none), else 0; d_gates = (dc * g * i(1-i), dc * c_prev * f(1-f), dc * i * (1-g^2),
 * dm * tanh(c) * o(1-o)), written in the matmul dtype and added, fp32, to d_bias (D, 4H);
 * then dc *= f for the step before. c_prev NULL: the zero initial state. */
void lstmp_backward_cell(int64_t D, int64_t B, int64_t H, int bf16, int threads, float cell_clip,
                         const void *dm, const float *acts, int64_t acts_sd, const float *c,
                         const float *c_prev, int64_t c_sd, float *dc, void *d_gates, int64_t dg_sd,
                         float *d_bias) {
    const int64_t G = 4 * H, w = bf16 ? 2 : 4, blocks = (H + CELL_BLOCK - 1) / CELL_BLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && D * B * H > 32768)
    for (int64_t k = 0; k < blocks; k++) {
        const int64_t j0 = k * CELL_BLOCK, j1 = j0 + CELL_BLOCK < H ? j0 + CELL_BLOCK : H;
        for (int64_t r = 0; r < D * B; r++) {
            const int64_t d = r / B, b = r % B;
            const float *a = acts + d * acts_sd + b * G;
            const float *cr = c + d * c_sd + b * H;
            const float *cp = c_prev ? c_prev + d * c_sd + b * H : 0;
            const char *dmr = (const char *)dm + r * H * w;
            char *dg = (char *)d_gates + (d * dg_sd + b * G) * w;
            float *db = d_bias + d * G, *dcr = dc + r * H;
            if (bf16 && cp) backward_cell_row(H, j0, j1, dmr, a, cr, cp, dcr, dg, db, cell_clip, 1, 1);
            else if (bf16) backward_cell_row(H, j0, j1, dmr, a, cr, cp, dcr, dg, db, cell_clip, 1, 0);
            else if (cp) backward_cell_row(H, j0, j1, dmr, a, cr, cp, dcr, dg, db, cell_clip, 0, 1);
            else backward_cell_row(H, j0, j1, dmr, a, cr, cp, dcr, dg, db, cell_clip, 0, 0);
        }
    }
}

/* columns and rows per block of lstmp_matmul_rows: the accumulators stay in L1 */
#define COL_BLOCK 256
#define ROW_BLOCK 8

/* out = x @ W for a few rows, per direction: x (D, B, K), W (D, K, N), out (D, B, N), all in the
 * matmul dtype (fp32 sums, rounded once as a matmul rounds its output). For the one-sentence
 * steps of inference, where a library matmul spends longer preparing the weights than
 * multiplying: each block of W is read once per ROW_BLOCK rows, both directions on their own threads. */
void lstmp_matmul_rows(int64_t D, int64_t B, int64_t K, int64_t N, int bf16, int threads, const void *x,
                       const void *W, void *out) {
    const int64_t blocks = (N + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && D * blocks > 1)
    for (int64_t q = 0; q < D * blocks; q++) {
        const int64_t d = q / blocks, n0 = (q % blocks) * COL_BLOCK;
        const int64_t n = n0 + COL_BLOCK < N ? COL_BLOCK : N - n0;
        float acc[ROW_BLOCK][COL_BLOCK];
        for (int64_t r0 = 0; r0 < B; r0 += ROW_BLOCK) {
            const int64_t rows = r0 + ROW_BLOCK < B ? ROW_BLOCK : B - r0;
            for (int64_t b = 0; b < rows; b++)
                for (int64_t j = 0; j < n; j++) acc[b][j] = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                const int64_t wk = (d * K + k) * N + n0;
                for (int64_t b = 0; b < rows; b++) {
                    const float xv = load(x, (d * B + r0 + b) * K + k, bf16);
                    float *restrict a = acc[b];
                    if (bf16) {
                        const bf16_t *restrict w = (const bf16_t *)W + wk;
#pragma omp simd
                        for (int64_t j = 0; j < n; j++) a[j] += xv * bf16_to_float(w[j]);
                    } else {
                        const float *restrict w = (const float *)W + wk;
#pragma omp simd
                        for (int64_t j = 0; j < n; j++) a[j] += xv * w[j];
                    }
                }
            }
            for (int64_t b = 0; b < rows; b++)
                for (int64_t j = 0; j < n; j++) store(out, (d * B + r0 + b) * N + n0 + j, acc[b][j], bf16);
        }
    }
}

/* The whole recurrence for a few rows (one-sentence inference), T steps in one call: per step
 * gh = h @ W_hh, the forward step, h = clip(m @ W_hr), out[:, t] = h. gx (D, T, B, 4H), W_hh
 * (D, P, 4H), W_hr (D, H, P), h (D, B, P) and out (D, T, B, P) in the matmul dtype, contiguous;
 * bias (D, 4H) and c (D, B, H) fp32; h and c hold the initial state and end with the last;
 * gh (D, B, 4H) and m (D, B, H) are scratch. Saves the per-step calls from Python. */
void lstmp_steps_few_rows(int64_t D, int64_t T, int64_t B, int64_t H, int64_t P, int bf16, int threads,
                          float cell_clip, float proj_clip, const void *gx, const float *bias, const void *w_hh,
                          const void *w_hr, void *h, float *c, void *gh, void *m, void *out) {
    const int64_t G = 4 * H, w = bf16 ? 2 : 4;
    for (int64_t t = 0; t < T; t++) {
        lstmp_matmul_rows(D, B, P, G, bf16, threads, h, w_hh, gh);
        lstmp_forward_step(D, B, H, bf16, threads, cell_clip, (const char *)gx + t * B * G * w, T * B * G, bias,
                           gh, c, m, B * H, 0, 0, 0, 0);
        lstmp_matmul_rows(D, B, H, P, bf16, threads, m, w_hr, h);
        for (int64_t r = 0; r < D * B; r++) {
            const int64_t d = r / B, b = r % B;
            char *o = (char *)out + ((d * T + t) * B + b) * P * w;
            for (int64_t j = 0; j < P; j++) {
                float v = clip(load(h, r * P + j, bf16), proj_clip);
                store(h, r * P + j, v, bf16);
                store(o, j, v, bf16);
            }
        }
    }
}

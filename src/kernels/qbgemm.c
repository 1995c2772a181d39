/* qbgemm.c - the block-quantized-weight GEMM driver (see qbgemm.h): weight packing
 * with per-panel block scales, run-time row quantization of A, the tile loop over
 * the thread pool, the output stage, the portable micro-kernel and the reference. */
#include "kernels/qbgemm.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/tlsbuf.h"
#include "exec/threadpool.h"

/* A task packs MC rows of A and sweeps its panels; k is walked in slices of about
 * KSLICE values (whole blocks) so a slice of the B panel stays in L1 while the
 * row tiles of the task reuse it. */
enum { NR = KN_QB_NR, MC = 96, KSLICE = 384, GMR = 4 };
#define QB_MAX_K 65536

const char *kn_qbkernel_name(kn_qbkernel k)
{
    static const char *const names[] = {"generic", "avx2", "avx512bw", "avx512vnni", "amx"};
    return k >= 0 && k < KN_QB_COUNT ? names[k] : "?";
}

static const kn_qb_kernel *kernel_of(kn_qbkernel k)
{
    switch (k) {
    case KN_QB_VNNI: return kn_qb_kernel_vnni();
    case KN_QB_AMX: return kn_qb_kernel_amx();
    case KN_QB_AVX512BW: return kn_qb_kernel_avx512bw();
    case KN_QB_AVX2: return kn_qb_kernel_avx2();
    default: return kn_qb_kernel_generic();
    }
}

int kn_qb_supported(kn_qbkernel k)
{
    const kn_cpu_feature_set *f = kn_cpu_features();
    if (k == KN_QB_GENERIC)
        return 1;
    if (k == KN_QB_AVX2)
        return f->avx2 && f->fma && kernel_of(k) != NULL;
    if (k == KN_QB_AVX512BW)
        return f->avx512f && f->avx512bw && f->fma && kernel_of(k) != NULL;
    if (k == KN_QB_VNNI)
        return f->avx512f && f->avx512bw && f->avx512_vnni && kernel_of(k) != NULL;
    if (k == KN_QB_AMX)
        return f->amx_int8 && f->avx512_vnni && kernel_of(k) != NULL;
    return 0;
}

kn_qbkernel kn_qb_best(void)
{
    if (kn_cpu_isa() >= KN_ISA_AVX512 && kn_cpu_amx_int8() && kn_qb_supported(KN_QB_AMX))
        return KN_QB_AMX;
    if (kn_cpu_isa() >= KN_ISA_AVX512 && kn_qb_supported(KN_QB_VNNI))
        return KN_QB_VNNI;
    if (kn_cpu_isa() >= KN_ISA_AVX512 && kn_qb_supported(KN_QB_AVX512BW))
        return KN_QB_AVX512BW;
    if (kn_cpu_isa() >= KN_ISA_AVX2 && kn_qb_supported(KN_QB_AVX2))
        return KN_QB_AVX2;
    return KN_QB_GENERIC;
}

/* Every |w| within the variant's exact range. */
static int weights_fit(const kn_qb_kernel *kr, size_t K, size_t N, const int8_t *W, size_t ldw)
{
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < K; k++)
            if (W[n * ldw + k] > kr->w_max || W[n * ldw + k] < -kr->w_max)
                return 0;
    return 1;
}

/* ---- packing ---- */

static void pack_panel(kn_qb_packed *pb, size_t p, const int8_t *W, size_t ldw, const float *scales,
                       size_t lds)
{
    size_t groups = pb->nblocks * pb->bs / 4;
    int8_t *dst = pb->data + p * groups * NR * 4;
    for (size_t g = 0; g < groups; g++)
        for (size_t j = 0; j < NR; j++)
            for (size_t t = 0; t < 4; t++) {
                size_t k = g * 4 + t, n = p * NR + j;
                dst[(g * NR + j) * 4 + t] = k < pb->K && n < pb->N ? W[n * ldw + k] : 0;
            }
    float *sc = pb->scales + p * pb->nblocks * NR;
    for (size_t b = 0; b < pb->nblocks; b++)
        for (size_t j = 0; j < NR; j++) {
            size_t n = p * NR + j;
            sc[b * NR + j] = n < pb->N ? scales[n * lds + b] : 0.0f;
        }
}

static void zero_point_terms(kn_qb_packed *pb, const int8_t *W, size_t ldw, const float *scales, size_t lds)
{
    for (size_t n = 0; n < pb->N; n++) {
        double cw = 0.0;
        for (size_t b = 0; b < pb->nblocks; b++) {
            int32_t s = 0;
            for (size_t k = b * pb->bs; k < (b + 1) * pb->bs && k < pb->K; k++)
                s += W[n * ldw + k];
            cw += (double)scales[n * lds + b] * s;
        }
        pb->cw[n] = (float)cw;
    }
}

kn_qb_packed *kn_qb_pack(kn_qbkernel k, size_t K, size_t N, size_t bs, const int8_t *W, size_t ldw,
                         const float *scales, size_t lds)
{
    if (k == KN_QB_AMX && bs % 32) /* AMX steps are 32 or 64 k: the same layout on VNNI */
        k = KN_QB_VNNI;
    if (!kernel_of(k) || bs == 0 || bs % 4 || bs > QB_MAX_K || K == 0 || K > QB_MAX_K || N == 0 ||
        N > ((size_t)1 << 40) / K || ldw < K)
        return NULL;
    size_t nblocks = (K + bs - 1) / bs;
    if (lds < nblocks || !weights_fit(kernel_of(k), K, N, W, ldw))
        return NULL;
    kn_qb_packed *pb = calloc(1, sizeof *pb);
    if (!pb)
        return NULL;
    pb->K = K, pb->N = N, pb->bs = bs, pb->kernel = k;
    pb->nblocks = nblocks;
    pb->npanels = (N + NR - 1) / NR;
    size_t bytes = pb->npanels * nblocks * bs * NR;
    pb->data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    pb->scales = aligned_alloc(64, pb->npanels * nblocks * NR * sizeof(float));
    pb->cw = calloc(N, sizeof *pb->cw);
    if (!pb->data || !pb->scales || !pb->cw) {
        kn_qb_packed_free(pb);
        return NULL;
    }
    for (size_t p = 0; p < pb->npanels; p++)
        pack_panel(pb, p, W, ldw, scales, lds);
    zero_point_terms(pb, W, ldw, scales, lds);
    return pb;
}

void kn_qb_packed_free(kn_qb_packed *pb)
{
    if (!pb)
        return;
    free(pb->data);
    free(pb->scales);
    free(pb->cw);
    free(pb);
}

/* ---- row quantization ---- */

void kn_qb_row_params(float lo, float hi, float *sa, int32_t *za, float *inv)
{
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    float s = (hi - lo) / 255.0f;
    *za = 0;
    *inv = 0.0f;
    if (!isfinite(s)) { /* inf in the row: the result is not finite either */
        *sa = NAN;
        return;
    }
    if (s < FLT_MIN) { /* all zero (or denormal): every q is the zero point 0 */
        *sa = 1.0f;
        return;
    }
    float z = nearbyintf(-lo / s);
    *za = z < 0.0f ? 0 : z > 255.0f ? 255 : (int32_t)z;
    *sa = s;
    *inv = 1.0f / s;
}

static uint8_t quantize_value(float x, float inv, int32_t za)
{
    float q = nearbyintf(x * inv) + (float)za;
    if (!(q >= 0.0f))
        return 0;
    return q > 255.0f ? 255 : (uint8_t)q;
}

static void quantize_row_c(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za)
{
    float lo = 0.0f, hi = 0.0f, inv;
    int bad = 0;
    for (size_t k = 0; k < K; k++) {
        lo = a[k] < lo ? a[k] : lo;
        hi = a[k] > hi ? a[k] : hi;
        bad |= a[k] != a[k];
    }
    kn_qb_row_params(lo, hi, sa, za, &inv);
    if (bad)
        *sa = NAN;
    for (size_t k = 0; k < K; k++)
        q[k] = quantize_value(a[k], inv, *za);
    memset(q + K, 0, Kp - K);
}

void kn_qb_quantize_row(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za)
{
    const kn_qb_kernel *kr = kernel_of(kn_qb_best());
    (kr->quantize_row ? kr->quantize_row : quantize_row_c)(a, K, Kp, q, sa, za);
}

/* ---- portable micro-kernel ---- */

static void ukr_generic(size_t nblk, size_t gpb, const uint32_t *a, const int8_t *b, const float *scales,
                        float *facc)
{
    for (size_t blk = 0; blk < nblk; blk++, scales += NR) {
        int32_t acc[GMR][NR] = {{0}};
        for (size_t g = 0; g < gpb; g++, a += GMR, b += NR * 4)
            for (int i = 0; i < GMR; i++) {
                uint32_t w = a[i];
                for (int j = 0; j < NR; j++)
                    for (int t = 0; t < 4; t++)
                        acc[i][j] += (int32_t)(w >> (8 * t) & 0xFF) * b[j * 4 + t];
            }
        for (int i = 0; i < GMR; i++)
            for (int j = 0; j < NR; j++)
                facc[i * NR + j] += scales[j] * (float)acc[i][j];
    }
}

const kn_qb_kernel *kn_qb_kernel_generic(void)
{
    static const kn_qb_kernel k = {GMR, ukr_generic, quantize_row_c, NULL, 128};
    return &k;
}

/* ---- driver ---- */

typedef struct qb_job {
    size_t M, N, K, Kp, lda, ldc;
    const float *A;
    float *C;
    const float *bias;
    const kn_qb_packed *pb;
    const kn_qb_kernel *kr;
    uint8_t *qa;       /* M x Kp quantized rows */
    float *sa;         /* M row scales */
    int32_t *za;       /* M row zero points */
    size_t row_tasks, panel_tasks, panels_per_task;
    int failed;
} qb_job;

static void quantize_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    qb_job *jb = ctx;
    (void)thread_index;
    void (*quantize)(const float *, size_t, size_t, uint8_t *, float *, int32_t *) =
        jb->kr->quantize_row ? jb->kr->quantize_row : quantize_row_c;
    for (int64_t i = begin; i < end; i++)
        quantize(jb->A + (size_t)i * jb->lda, jb->K, jb->Kp, jb->qa + (size_t)i * jb->Kp, &jb->sa[i], &jb->za[i]);
    kn_cpu_clear_upper();
}

/* Rows [i0, i0+m) as micro-panels of mr rows: a[g*mr + i] = word g of the row. */
static void pack_a(const qb_job *jb, uint32_t *a, size_t i0, size_t m)
{
    size_t mr = (size_t)jb->kr->mr, groups = jb->Kp / 4;
    for (size_t q = 0; q * mr < m; q++, a += groups * mr)
        for (size_t i = 0; i < mr; i++) {
            size_t r = q * mr + i;
            const uint8_t *row = jb->qa + (i0 + r) * jb->Kp;
            for (size_t g = 0; g < groups; g++) {
                uint32_t w = 0;
                if (r < m)
                    memcpy(&w, row + 4 * g, 4);
                a[g * mr + i] = w;
            }
        }
}

static void store_tile(const qb_job *jb, const float *facc, size_t i0, size_t j0, size_t m, size_t n)
{
    for (size_t i = 0; i < m; i++) {
        float sa = jb->sa[i0 + i], za = (float)jb->za[i0 + i];
        float *c = jb->C + (i0 + i) * jb->ldc + j0;
        for (size_t j = 0; j < n; j++) {
            float y = sa * (facc[i * NR + j] - za * jb->pb->cw[j0 + j]);
            c[j] = jb->bias ? y + jb->bias[j0 + j] : y;
        }
    }
}

static void run_block(const qb_job *jb, const uint32_t *a, float *facc, size_t i0, size_t m, size_t p0, size_t p1)
{
    const kn_qb_packed *pb = jb->pb;
    size_t mr = (size_t)jb->kr->mr, tiles = (m + mr - 1) / mr;
    size_t gpb = pb->bs / 4, groups = pb->nblocks * gpb;
    size_t slice = KSLICE / pb->bs ? KSLICE / pb->bs : 1;
    for (size_t p = p0; p < p1; p++) {
        const int8_t *bp = pb->data + p * groups * NR * 4;
        const float *sp = pb->scales + p * pb->nblocks * NR;
        memset(facc, 0, sizeof(float) * tiles * mr * NR);
        for (size_t b0 = 0; b0 < pb->nblocks; b0 += slice) {
            size_t nb = pb->nblocks - b0 < slice ? pb->nblocks - b0 : slice;
            for (size_t q = 0; q < tiles; q++) {
                if (jb->kr->ukr_rows)
                    jb->kr->ukr_rows(nb, gpb, jb->qa + (i0 + q * mr) * jb->Kp + b0 * pb->bs, jb->Kp,
                                     (int)(m - q * mr < mr ? m - q * mr : mr), bp + b0 * gpb * NR * 4, sp + b0 * NR,
                                     facc + q * mr * NR);
                else
                    jb->kr->ukr(nb, gpb, a + q * mr * groups + b0 * gpb * mr, bp + b0 * gpb * NR * 4,
                                sp + b0 * NR, facc + q * mr * NR);
            }
        }
        size_t j0 = p * NR, n = jb->N - j0 < NR ? jb->N - j0 : NR;
        store_tile(jb, facc, i0, j0, m, n);
    }
}

static size_t row_block(const qb_job *jb)
{
    size_t mr = (size_t)jb->kr->mr;
    return (MC + mr - 1) / mr * mr;
}

static void run_tasks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    qb_job *jb = ctx;
    (void)thread_index;
    size_t block = row_block(jb);
    size_t a_bytes = block * jb->Kp, f_bytes = block * NR * sizeof(float);
    char *buf = kn_thread_buffer(KN_TLS_QGEMM, a_bytes + f_bytes + 64);
    if (!buf) {
        __atomic_store_n(&jb->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    uint32_t *a = (uint32_t *)buf;
    float *facc = (float *)(buf + ((a_bytes + 63) & ~(size_t)63));
    for (int64_t t = begin; t < end; t++) {
        size_t rt = (size_t)t / jb->panel_tasks, pt = (size_t)t % jb->panel_tasks;
        size_t i0 = rt * block, m = jb->M - i0 < block ? jb->M - i0 : block;
        size_t p0 = pt * jb->panels_per_task;
        size_t p1 = p0 + jb->panels_per_task < jb->pb->npanels ? p0 + jb->panels_per_task : jb->pb->npanels;
        if (!jb->kr->ukr_rows)
            pack_a(jb, a, i0, m);
        run_block(jb, a, facc, i0, m, p0, p1);
    }
    kn_cpu_clear_upper();
}

/* Row blocks of MC; when they are fewer than two per thread, the panels are split too. */
static void plan_tasks(qb_job *jb, int threads)
{
    size_t block = row_block(jb);
    jb->row_tasks = (jb->M + block - 1) / block;
    size_t want = 4 * (size_t)threads, splits = 1;
    if (threads > 1 && jb->row_tasks < want)
        splits = (want + jb->row_tasks - 1) / jb->row_tasks;
    if (splits > jb->pb->npanels)
        splits = jb->pb->npanels;
    jb->panels_per_task = (jb->pb->npanels + splits - 1) / splits;
    jb->panel_tasks = (jb->pb->npanels + jb->panels_per_task - 1) / jb->panels_per_task;
}

size_t kn_qb_work_bytes(size_t M, const kn_qb_packed *pb)
{
    size_t Kp = pb->nblocks * pb->bs;
    if (M > ((size_t)1 << 40) / (Kp + 16))
        return 0;
    return M * Kp + 64 + M * (sizeof(float) + sizeof(int32_t)) + 64;
}

int kn_qb_run(struct kn_threadpool *pool, size_t M, size_t N, size_t K, const float *A, size_t lda,
              const kn_qb_packed *pb, float *C, size_t ldc, const float *bias, void *work)
{
    if (!pb || pb->K != K || pb->N != N || (M && lda < K) || (M && ldc < N) || (M && !work))
        return KN_ERR_ARG;
    if (!M)
        return 0;
    qb_job jb = {M, N, K, pb->nblocks * pb->bs, lda, ldc, A, C, bias, pb, kernel_of(pb->kernel)};
    if (!jb.kr)
        return KN_ERR_ARG;
    if (jb.kr->small && M <= 2 * (size_t)jb.kr->small->mr)
        jb.kr = jb.kr->small;
    jb.qa = work;
    jb.sa = (float *)((char *)work + ((M * jb.Kp + 63) & ~(size_t)63));
    jb.za = (int32_t *)(jb.sa + M);
    kn_parallel_for(pool, (int64_t)M, 8, quantize_rows, &jb);
    plan_tasks(&jb, kn_threadpool_size(pool));
    kn_parallel_for(pool, (int64_t)(jb.row_tasks * jb.panel_tasks), 1, run_tasks, &jb);
    return jb.failed ? KN_ERR_NOMEM : 0;
}

/* ---- reference ---- */

void kn_qb_ref(size_t M, size_t N, size_t K, size_t bs, const float *A, size_t lda, const int8_t *W,
               size_t ldw, const float *scales, size_t lds, float *C, size_t ldc, const float *bias)
{
    size_t nblocks = (K + bs - 1) / bs;
    uint8_t *q = malloc(nblocks * bs + 1);
    if (!q)
        return;
    for (size_t i = 0; i < M; i++) {
        float sa;
        int32_t za;
        quantize_row_c(A + i * lda, K, nblocks * bs, q, &sa, &za);
        for (size_t n = 0; n < N; n++) {
            double y = 0.0;
            for (size_t b = 0; b < nblocks; b++) {
                int64_t acc = 0;
                for (size_t k = b * bs; k < (b + 1) * bs && k < K; k++)
                    acc += ((int64_t)q[k] - za) * W[n * ldw + k];
                y += (double)scales[n * lds + b] * (double)acc;
            }
            y *= sa;
            C[i * ldc + n] = (float)(bias ? y + bias[n] : y);
        }
    }
    free(q);
}

/* qgemm.c - the 8-bit integer GEMM driver (see qgemm.h): B packing with column sums,
 * A packing into the kernel's groups, the tile loop over the thread pool, the output
 * stage (int32 / dequantized float / requantized 8-bit) and the plain reference. */
#include "kernels/qgemm.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tlsbuf.h"
#include "exec/threadpool.h"

/* A task packs MC rows of A once (MC x K bytes, L2-sized for usual K) and sweeps
 * its panels of B; each B panel is reused by the MC/mr micro-tiles of the block. */
enum { NR = KN_QGEMM_NR, MC = 96, KCG = 96 }; /* KCG k-groups: B panel slice + A micro-panel fit L1 */

/* K bound that keeps every partial sum inside int32: 65536 * 255 * 128 < 2^31. */
#define QGEMM_MAX_K 65536

const char *kn_qkernel_name(kn_qkernel k)
{
    static const char *const names[] = {"generic", "avx2", "avx512bw", "avx512bw7", "avx512vnni", "amx"};
    return k >= 0 && k < KN_QK_COUNT ? names[k] : "?";
}

static const kn_qgemm_kernel *kernel_of(kn_qkernel k)
{
    switch (k) {
    case KN_QK_VNNI: return kn_qgemm_kernel_vnni();
    case KN_QK_AMX: return kn_qgemm_kernel_amx();
    case KN_QK_AVX512BW: return kn_qgemm_kernel_avx512bw();
    case KN_QK_AVX512BW7: return kn_qgemm_kernel_avx512bw7();
    case KN_QK_AVX2: return kn_qgemm_kernel_avx2();
    default: return kn_qgemm_kernel_generic(4);
    }
}

int kn_qgemm_supported(kn_qkernel k)
{
    const kn_cpu_feature_set *f = kn_cpu_features();
    switch (k) {
    case KN_QK_GENERIC: return 1;
    case KN_QK_AVX2: return f->avx2 && kernel_of(k) != NULL;
    case KN_QK_AVX512BW:
    case KN_QK_AVX512BW7: return f->avx512f && f->avx512bw && kernel_of(k) != NULL;
    case KN_QK_VNNI: return f->avx512f && f->avx512bw && f->avx512_vnni && kernel_of(k) != NULL;
    case KN_QK_AMX: return f->amx_int8 && f->avx512_vnni && kernel_of(k) != NULL;
    default: return 0;
    }
}

kn_qkernel kn_qgemm_best(void)
{
    kn_isa cap = kn_cpu_isa();
    if (cap >= KN_ISA_AVX512 && kn_cpu_amx_int8() && kn_qgemm_supported(KN_QK_AMX))
        return KN_QK_AMX;
    if (cap >= KN_ISA_AVX512 && kn_qgemm_supported(KN_QK_VNNI))
        return KN_QK_VNNI;
    if (cap >= KN_ISA_AVX512 && kn_qgemm_supported(KN_QK_AVX512BW7))
        return KN_QK_AVX512BW7; /* falls back to avx512bw at packing for 8-bit weights */
    if (cap >= KN_ISA_AVX512 && kn_qgemm_supported(KN_QK_AVX512BW))
        return KN_QK_AVX512BW;
    if (cap >= KN_ISA_AVX2 && kn_qgemm_supported(KN_QK_AVX2))
        return KN_QK_AVX2;
    return KN_QK_GENERIC;
}

/* ---- packing ---- */

static int8_t b_at(const int8_t *B, size_t ldb, int trans_b, size_t k, size_t n)
{
    return trans_b ? B[n * ldb + k] : B[k * ldb + n];
}

/* Panel p's group kg: NR columns x g values of k, zero past K and N; adds them to
 * the columns' sums. */
static void pack_group(kn_qpacked_b *pb, size_t p, size_t kg, const int8_t *B, size_t ldb, int trans_b)
{
    size_t g = (size_t)pb->group, base = (p * pb->kgroups + kg) * NR * g;
    size_t j0 = p * NR, k0 = kg * g;
    size_t nj = pb->N - j0 < NR ? pb->N - j0 : NR, nt = pb->K - k0 < g ? pb->K - k0 : g;
    int8_t v[NR][4];
    memset(v, 0, sizeof v);
    for (size_t t = 0; t < nt; t++)
        for (size_t j = 0; j < nj; j++)
            v[j][t] = b_at(B, ldb, trans_b, k0 + t, j0 + j);
    for (size_t j = 0; j < nj; j++)
        pb->col_sum[j0 + j] += v[j][0] + v[j][1] + v[j][2] + v[j][3];
    if (g == 4) {
        memcpy((int8_t *)pb->data + base, v, sizeof v);
        return;
    }
    int16_t *dst = (int16_t *)pb->data + base;
    for (size_t j = 0; j < NR; j++)
        for (size_t t = 0; t < g; t++)
            dst[j * g + t] = v[j][t];
}

static void pack_panel(kn_qpacked_b *pb, size_t p, const int8_t *B, size_t ldb, int trans_b)
{
    for (size_t kg = 0; kg < pb->kgroups; kg++)
        pack_group(pb, p, kg, B, ldb, trans_b);
}

/* Every |B| within w_max. */
static int weights_fit(int w_max, size_t K, size_t N, const int8_t *B, size_t ldb, int trans_b)
{
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < K; k++) {
            int v = b_at(B, ldb, trans_b, k, n);
            if (v > w_max || v < -w_max)
                return 0;
        }
    return 1;
}

kn_qpacked_b *kn_qgemm_pack_b(kn_qkernel k, size_t K, size_t N, const int8_t *B, size_t ldb, int trans_b)
{
    const kn_qgemm_kernel *kr = kernel_of(k);
    if (!kr || K > QGEMM_MAX_K || (K && N && ldb < (trans_b ? K : N)) || N > (SIZE_MAX >> 8) / NR)
        return NULL;
    if (kr->w_max && !weights_fit(kr->w_max, K, N, B, ldb, trans_b)) {
        k = KN_QK_AVX512BW; /* the only limited variant: same CPU, pairs for any int8 */
        kr = kernel_of(k);
        if (!kr)
            return NULL;
    }
    kn_qpacked_b *pb = calloc(1, sizeof *pb);
    if (!pb)
        return NULL;
    pb->K = K;
    pb->N = N;
    pb->group = kr->group;
    pb->kernel = k;
    pb->kgroups = (K + (size_t)kr->group - 1) / (size_t)kr->group;
    pb->npanels = (N + NR - 1) / NR;
    size_t elems = pb->npanels * pb->kgroups * NR * (size_t)kr->group;
    size_t bytes = elems * (kr->group == 4 ? 1 : 2);
    pb->data = aligned_alloc(64, ((bytes + 63) & ~(size_t)63) + 64);
    pb->col_sum = calloc(N ? N : 1, sizeof *pb->col_sum);
    if (!pb->data || !pb->col_sum) {
        kn_qpacked_b_free(pb);
        return NULL;
    }
    for (size_t p = 0; p < pb->npanels; p++)
        pack_panel(pb, p, B, ldb, trans_b); /* the column sums too */
    return pb;
}

void kn_qpacked_b_free(kn_qpacked_b *pb)
{
    if (!pb)
        return;
    free(pb->data);
    free(pb->col_sum);
    free(pb);
}

/* The word of group g of one row: four bytes (quads) or two zero-extended
 * halfwords (pairs); k past K reads as zero. */
static uint32_t a_word(const uint8_t *row, size_t K, size_t g, int group)
{
    size_t k = g * (size_t)group;
    if (group == 4 && k + 4 <= K) {
        uint32_t w;
        memcpy(&w, row + k, 4);
        return w;
    }
    if (group == 2 && k + 2 <= K)
        return (uint32_t)row[k] | (uint32_t)row[k + 1] << 16;
    uint32_t w = 0;
    for (int t = 0; t < group && k + (size_t)t < K; t++)
        w |= (uint32_t)row[k + (size_t)t] << (group == 4 ? 8 * t : 16 * t);
    return w;
}

/* Pack rows [i0, i0+m) of A as micro-panels of mr rows: panel q holds
 * a[g*mr + i] = word g of row q*mr + i; rows past m are zero. */
static void pack_a(uint32_t *a, const uint8_t *A, size_t lda, size_t K, size_t i0, size_t m, int mr,
                   int group, size_t kgroups)
{
    for (size_t q = 0; q * (size_t)mr < m; q++, a += kgroups * (size_t)mr) {
        for (int i = 0; i < mr; i++) {
            size_t r = q * (size_t)mr + (size_t)i;
            const uint8_t *row = A + (i0 + r) * lda;
            for (size_t g = 0; g < kgroups; g++)
                a[g * (size_t)mr + (size_t)i] = r < m ? a_word(row, K, g, group) : 0;
        }
    }
}

/* ---- output stage ---- */

static float dequant(const kn_qgemm_output *o, int32_t acc, size_t j)
{
    float s = o->a_scale * (o->b_scale_per_col ? o->b_scale[j] : o->b_scale[0]);
    float y = (float)acc * s;
    if (o->bias)
        y += o->bias[j];
    if (o->relu && y < 0.0f)
        y = 0.0f;
    return y;
}

static int32_t requant(const kn_qgemm_output *o, float y, int32_t lo, int32_t hi)
{
    float q = nearbyintf(y / o->y_scale) + (float)o->y_zero;
    if (!(q >= (float)lo)) /* also NaN */
        return lo;
    return q > (float)hi ? hi : (int32_t)q;
}

void kn_qgemm_store_tile(const kn_qgemm_output *o, const int32_t *acc, size_t i0, size_t j0, int m,
                         int n, int32_t a_zero, const int32_t *col_sum)
{
    for (int i = 0; i < m; i++) {
        size_t row = (i0 + (size_t)i) * o->ldc;
        for (int j = 0; j < n; j++) {
            size_t col = j0 + (size_t)j;
            /* wrapping arithmetic: the true value fits int32, the parts may not */
            uint32_t zero_term = col_sum ? (uint32_t)a_zero * (uint32_t)col_sum[col] : 0;
            uint32_t bias = o->bias_i32 ? (uint32_t)o->bias_i32[col] : 0;
            int32_t v = (int32_t)((uint32_t)acc[i * NR + j] - zero_term + bias);
            if (o->kind == KN_QOUT_INT32) {
                ((int32_t *)o->out)[row + col] = v;
                continue;
            }
            float y = dequant(o, v, col);
            if (o->kind == KN_QOUT_FLOAT)
                ((float *)o->out)[row + col] = y;
            else if (o->kind == KN_QOUT_UINT8)
                ((uint8_t *)o->out)[row + col] = (uint8_t)requant(o, y, 0, 255);
            else
                ((int8_t *)o->out)[row + col] = (int8_t)requant(o, y, -128, 127);
        }
    }
}

/* ---- driver ---- */

typedef struct qgemm_job {
    size_t M, N, K, lda;
    const uint8_t *A;
    int32_t a_zero;
    const kn_qpacked_b *pb;
    const kn_qgemm_kernel *kr;
    const kn_qgemm_output *out;
    size_t row_tasks, panel_tasks, panels_per_task;
    int failed;
    int direct;             /* the micro-kernel reads A in place (no packing) */
    void (*store)(const kn_qgemm_output *, const int32_t *, size_t, size_t, int, int, int32_t, const int32_t *);
} qgemm_job;

/* Rows [i0, i0+m) (packed in a, or read in place when jb->direct) times panels [p0, p1). */
static void run_block(const qgemm_job *jb, const uint32_t *a, size_t i0, size_t m, size_t p0, size_t p1)
{
    const kn_qpacked_b *pb = jb->pb;
    size_t mr = (size_t)jb->kr->mr, tiles = (m + mr - 1) / mr;
    size_t elem = pb->group == 4 ? 1 : 2, group_bytes = NR * (size_t)pb->group * elem;
    size_t kcg = jb->kr->kcg ? jb->kr->kcg : KCG;
    int32_t acc[(MC + 32) * NR]; /* rows of the block rounded up to whole tiles (mr <= 32) */
    for (size_t p = p0; p < p1; p++) {
        const char *bp = (const char *)pb->data + p * pb->kgroups * group_bytes;
        size_t j0 = p * NR;
        int n = (int)(jb->N - j0 < NR ? jb->N - j0 : NR);
        if (!jb->direct)
            memset(acc, 0, sizeof(int32_t) * tiles * mr * NR);
        for (size_t g0 = 0; g0 < pb->kgroups; g0 += kcg) {
            size_t kg = pb->kgroups - g0 < kcg ? pb->kgroups - g0 : kcg;
            for (size_t q = 0; q < tiles; q++) {
                if (jb->direct)
                    jb->kr->ukr_rows(kg, jb->A + (i0 + q * mr) * jb->lda + g0 * 4, jb->lda,
                                     (int)(m - q * mr < mr ? m - q * mr : mr), bp + g0 * group_bytes,
                                     acc + q * mr * NR, g0 == 0);
                else
                    jb->kr->ukr(kg, a + q * mr * pb->kgroups + g0 * mr, bp + g0 * group_bytes, acc + q * mr * NR);
            }
        }
        for (size_t q = 0; q < tiles; q++) {
            int rows = (int)(m - q * mr < mr ? m - q * mr : mr);
            jb->store(jb->out, acc + q * mr * NR, i0 + q * mr, j0, rows, n, jb->a_zero, pb->col_sum);
        }
    }
}

static void run_tasks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    qgemm_job *jb = ctx;
    (void)thread_index;
    size_t mr = (size_t)jb->kr->mr, block = (MC + mr - 1) / mr * mr;
    uint32_t *a = jb->direct ? NULL : kn_thread_buffer(KN_TLS_QGEMM, sizeof(uint32_t) * jb->pb->kgroups * block);
    if (!a && !jb->direct) {
        __atomic_store_n(&jb->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t t = begin; t < end; t++) {
        size_t rt = (size_t)t / jb->panel_tasks, pt = (size_t)t % jb->panel_tasks;
        size_t i0 = rt * block, m = jb->M - i0 < block ? jb->M - i0 : block;
        size_t p0 = pt * jb->panels_per_task;
        size_t p1 = p0 + jb->panels_per_task < jb->pb->npanels ? p0 + jb->panels_per_task : jb->pb->npanels;
        if (!jb->direct)
            pack_a(a, jb->A, jb->lda, jb->K, i0, m, (int)mr, jb->pb->group, jb->pb->kgroups);
        run_block(jb, a, i0, m, p0, p1);
    }
    kn_cpu_clear_upper();
}

/* Row blocks of MC; when they are fewer than two per thread, the panels are split
 * too (each split repacks its rows of A, cheap next to the products). */
static void plan_tasks(qgemm_job *jb, int threads)
{
    size_t mr = (size_t)jb->kr->mr, block = (MC + mr - 1) / mr * mr;
    jb->row_tasks = (jb->M + block - 1) / block;
    size_t want = 2 * (size_t)threads, splits = 1;
    if (threads > 1 && jb->row_tasks < want)
        splits = (want + jb->row_tasks - 1) / jb->row_tasks;
    if (splits > jb->pb->npanels)
        splits = jb->pb->npanels;
    jb->panels_per_task = (jb->pb->npanels + splits - 1) / splits;
    jb->panel_tasks = (jb->pb->npanels + jb->panels_per_task - 1) / jb->panels_per_task;
}

static int check_args(size_t M, size_t N, size_t K, size_t lda, const kn_qpacked_b *pb,
                      const kn_qgemm_output *out)
{
    if (!pb || pb->K != K || pb->N != N || (M && K && lda < K) || (M && N && out->ldc < N))
        return KN_ERR_ARG;
    if (out->kind != KN_QOUT_INT32 && (!out->b_scale || !(out->a_scale == out->a_scale)))
        return KN_ERR_ARG;
    if ((out->kind == KN_QOUT_UINT8 || out->kind == KN_QOUT_INT8) && !(out->y_scale > 0.0f))
        return KN_ERR_ARG;
    return 0;
}

int kn_qgemm_run(struct kn_threadpool *pool, size_t M, size_t N, size_t K, const uint8_t *A,
                 size_t lda, uint8_t a_zero, const kn_qpacked_b *pb, const kn_qgemm_output *out)
{
    int rc = check_args(M, N, K, lda, pb, out);
    if (rc || !M || !N)
        return rc;
    qgemm_job jb = {M, N, K, lda, A, a_zero, pb, kernel_of(pb->kernel), out, 0, 0, 0, 0};
    if (!jb.kr || jb.kr->mr > 32)
        return KN_ERR_ARG;
    jb.direct = jb.kr->ukr_rows && pb->group == 4 && K > 0 && (K % 4 == 0 || lda >= (K + 3) / 4 * 4);
    if (!jb.direct && !jb.kr->ukr) /* AMX needs A in place; the same layout runs on VNNI */
        jb.kr = kn_qgemm_kernel_vnni();
    if (!jb.kr)
        return KN_ERR_ARG;
    jb.store = pb->kernel >= KN_QK_AVX512BW ? kn_qgemm_store_tile_avx512 : kn_qgemm_store_tile;
    plan_tasks(&jb, kn_threadpool_size(pool));
    kn_parallel_for(pool, (int64_t)(jb.row_tasks * jb.panel_tasks), 1, run_tasks, &jb);
    return jb.failed ? KN_ERR_NOMEM : 0;
}

/* ---- reference ---- */

void kn_qgemm_ref(size_t M, size_t N, size_t K, const uint8_t *A, size_t lda, uint8_t a_zero,
                  const int8_t *B, size_t ldb, int trans_b, const kn_qgemm_output *out)
{
    int32_t acc[NR];
    for (size_t i = 0; i < M; i++) {
        for (size_t j0 = 0; j0 < N; j0 += NR) {
            int n = (int)(N - j0 < NR ? N - j0 : NR);
            for (int j = 0; j < n; j++) {
                int64_t s = 0;
                for (size_t k = 0; k < K; k++)
                    s += ((int64_t)A[i * lda + k] - a_zero) * b_at(B, ldb, trans_b, k, j0 + (size_t)j);
                acc[j] = s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
            }
            kn_qgemm_store_tile(out, acc, i, j0, 1, n, 0, NULL);
        }
    }
}

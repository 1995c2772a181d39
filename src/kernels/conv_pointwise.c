/* conv_pointwise.c - float32 NCHW 1x1 convolutions (stride 1, no pads) without
 * packing the input: Y[co, p] = W[co, :] x X[:, p] where X, the image itself, is
 * read in place by a tile kernel (AVX-512 in conv_pointwise_avx512.c, the plain
 * reference here) that keeps 14 output channels x 32 pixels in registers over
 * all of K.  The weights stay in the GEMM's packed micro-panels (kernels/sgemm.h),
 * so prepare packs them once for either path.  Tasks are blocks of pixels of one
 * (image, group); when those are fewer than the pool wants, the output channels
 * are cut into chunks of whole micro-panels too.  Every output element is the
 * same sum in the same order whatever the split, so results do not depend on the
 * thread count. */
#include "kernels/conv_kernels.h"

#include "exec/threadpool.h"
#include "kernels/sgemm.h"

/* Pixels per task (a multiple of KN_PW_TILE_COLS). */
#define PW_BLOCK 512
/* Floats of input (K x strip columns) the tile sweeps share from L1 / L2. */
#define PW_STRIP_FLOATS 16384
/* Deep inputs go to the GEMM, whose packing turns the K rows (each in its own
 * pages) into one stream and whose K blocking keeps the weights in L2: reading
 * the input in place was measured slower for K >= 512 at 7x7 / 14x14 and for
 * K = 256 at 56x56, faster for the shallow expand convs (K = 16..64: 1.2-2.5x). */
#define PW_MAX_K 128
#define PW_DEEP_K 64
#define PW_MAX_INPUT ((int64_t)1 << 18)
/* Tasks per pool thread the split aims at. */
#define PW_TASKS_PER_THREAD 4

void kn_pw_tile_generic(const kn_pw_tile *t)
{
    for (int i = 0; i < t->m; i++) {
        float *y = t->y + i * t->ldy;
        for (int j = 0; j < t->n; j++)
            y[j] = 0.0f;
        for (int64_t k = 0; k < t->K; k++) {
            float w = t->a[k * t->mr + i];
            const float *x = t->x + k * t->ldx;
            for (int j = 0; j < t->n; j++)
                y[j] += w * x[j];
        }
        for (int j = 0; j < t->n; j++) {
            float v = y[j] + (t->bias ? t->bias[i] : 0.0f);
            v += t->z ? t->z[i * t->ldy + j] : 0.0f;
            if (t->clamp) {
                v = v < t->lo ? t->lo : v;
                v = v > t->hi ? t->hi : v;
            }
            y[j] = v;
        }
    }
}

typedef struct pw_job {
    const kn_conv2d_args *a;
    kn_packed_a *const *pa;
    kn_pw_tile_fn tile;
    int64_t pblocks, chunks, chunk_rows;
    int clamp, inline_act;
    float lo, hi;
} pw_job;

/* Output channels [r0, r0 + rows) of group gi, pixels [p0, p0 + np) of image n. */
static void pw_block(const pw_job *j, int64_t n, int64_t gi, int64_t r0, int64_t rows,
                     int64_t p0, int64_t np)
{
    const kn_conv2d_args *a = j->a;
    const kn_packed_a *pa = j->pa[gi];
    int64_t P = a->g.oh * a->g.ow, mg = a->m / a->group, K = a->g.channels;
    const float *x = a->x + (n * a->group + gi) * K * P;
    int64_t base = (n * a->m + gi * mg) * P;
    kn_pw_tile t = {.ldx = P, .K = K, .ldy = P, .mr = pa->mr, .clamp = j->clamp,
                    .lo = j->lo, .hi = j->hi};
    /* strips of input columns that stay in cache while every panel of weights
     * sweeps them, each panel writing its rows along the strip */
    int64_t strip = PW_STRIP_FLOATS / K / KN_PW_TILE_COLS * KN_PW_TILE_COLS;
    strip = strip < KN_PW_TILE_COLS ? KN_PW_TILE_COLS : strip;
    for (int64_t s0 = p0; s0 < p0 + np; s0 += strip) {
        int64_t s1 = s0 + strip < p0 + np ? s0 + strip : p0 + np;
        for (int64_t r = r0; r < r0 + rows; r += pa->mr) {
            t.m = (int)(r0 + rows - r < pa->mr ? r0 + rows - r : pa->mr);
            t.a = pa->data + r * K;
            t.bias = a->bias ? a->bias + gi * mg + r : NULL;
            for (int64_t p = s0; p < s1; p += KN_PW_TILE_COLS) {
                t.n = (int)(s1 - p < KN_PW_TILE_COLS ? s1 - p : KN_PW_TILE_COLS);
                t.x = x + p;
                t.y = a->y + base + r * P + p;
                t.z = a->z ? a->z + base + r * P + p : NULL;
                j->tile(&t);
            }
        }
    }
    for (int64_t r = r0; !j->inline_act && r < r0 + rows; r++)
        kn_conv_act_apply(&a->act, a->y + base + r * P + p0, (size_t)np);
}

static void pw_tasks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const pw_job *j = ctx;
    const kn_conv2d_args *a = j->a;
    int64_t P = a->g.oh * a->g.ow, mg = a->m / a->group;
    (void)thread_index;
    for (int64_t q = begin; q < end; q++) {
        int64_t b = q % j->pblocks, c = q / j->pblocks % j->chunks, ng = q / j->pblocks / j->chunks;
        int64_t p0 = b * PW_BLOCK, r0 = c * j->chunk_rows;
        int64_t np = P - p0 < PW_BLOCK ? P - p0 : PW_BLOCK;
        int64_t rows = mg - r0 < j->chunk_rows ? mg - r0 : j->chunk_rows;
        if (rows > 0)
            pw_block(j, ng / a->group, ng % a->group, r0, rows, p0, np);
    }
    kn_cpu_clear_upper(); /* the tile kernel leaves wide registers dirty */
}

static kn_pw_tile_fn tile_for(kn_isa isa, int mr)
{
    isa = kn_cpu_isa_cap(isa);
    if (isa >= KN_ISA_AVX512 && kn_pw_tile_avx512() && mr == kn_pw_tile_rows_avx512())
        return kn_pw_tile_avx512();
    return NULL;
}

int kn_conv2d_pointwise_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                            kn_packed_a *const *pa)
{
    pw_job j = {.a = a, .pa = pa};
    int64_t P = a->g.oh * a->g.ow, mg = a->m / a->group;
    if (!pa || !pa[0] || !(j.tile = tile_for(isa, pa[0]->mr)) || pa[0]->isa != isa)
        return 0;
    if (a->g.channels > PW_MAX_K || (a->g.channels > PW_DEEP_K && a->g.channels * P > PW_MAX_INPUT))
        return 0;
    j.inline_act = kn_conv_act_is_clamp(&a->act, &j.lo, &j.hi);
    j.clamp = j.inline_act && a->act.kind != KN_CONV_ACT_NONE;
    j.pblocks = (P + PW_BLOCK - 1) / PW_BLOCK;
    int64_t panels = (mg + pa[0]->mr - 1) / pa[0]->mr, base = a->batch * a->group * j.pblocks;
    int64_t want = (int64_t)kn_threadpool_size(pool) * PW_TASKS_PER_THREAD;
    j.chunks = kn_threadpool_size(pool) > 1 && base < want ? (want + base - 1) / base : 1;
    if (j.chunks > panels)
        j.chunks = panels;
    j.chunk_rows = (panels + j.chunks - 1) / j.chunks * pa[0]->mr;
    kn_parallel_for(pool, base * j.chunks, 1, pw_tasks, &j);
    return 1;
}

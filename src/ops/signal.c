/* signal.c - signal processing operators: DFT (opset 17 and 20), STFT, the
 * window generators HannWindow, HammingWindow, BlackmanWindow, and
 * MelWeightMatrix.
 *
 * Complex values travel as a trailing dimension of 2 (real, imaginary); real
 * signals have a trailing dimension of 1.  Every transform runs in double on one
 * line at a time through an fft_plan: a direct O(n^2) sum for short lengths, an
 * iterative radix-2 FFT for powers of two, and Bluestein's chirp-z algorithm
 * (built on the radix-2 FFT) for other lengths, so no length is quadratic.
 * Transform, window and matrix sizes are capped (SIG_MAX_DFT, SIG_MAX_LEN) so a corrupt model
 * gets an error instead of an hour of work or an absurd allocation. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIG_PI 3.14159265358979323846
/* Largest window / mel matrix dimension accepted. */
#define SIG_MAX_LEN ((int64_t)1 << 24)
/* Largest transform (DFT length, STFT frame) accepted: keeps the plan's buffers
 * (Bluestein needs several of twice the length) to a few hundred MB. */
#define SIG_MAX_DFT ((int64_t)1 << 22)
/* Lengths up to this use the direct sum (exact twiddles, cheap enough). */
#define SIG_DIRECT_MAX 64

static inline double ld(const kn_tensor *t, int64_t i)
{
    if (t->dtype == KN_F32)
        return ((const float *)t->data)[i];
    return kn_load_f64(t->data, t->dtype, (size_t)i);
}

static inline void st(kn_tensor *t, int64_t i, double v)
{
    if (t->dtype == KN_F32)
        ((float *)t->data)[i] = (float)v;
    else
        kn_store_f64(t->data, t->dtype, (size_t)i, v);
}

static bool is_float_dtype(kn_dtype dt)
{
    return dt == KN_F32 || dt == KN_F64 || dt == KN_F16 || dt == KN_BF16;
}

/* ------------------------------------------------------------------------ */
/* Transform plans                                                          */
/* ------------------------------------------------------------------------ */

typedef enum plan_kind { PLAN_DIRECT, PLAN_RADIX2, PLAN_BLUESTEIN } plan_kind;

/* A transform of length n with exponent sign `sign` (-1 forward, +1 inverse,
 * no scaling).  Direct: tw holds e^{sign 2 pi i k / n}, k < n.  Radix-2: tw holds
 * the first n/2 of them.  Bluestein: chirp c[j] = e^{sign pi i j^2 / n}, the
 * transformed conjugate chirp filter (length m, a power of two >= 2n-1), a
 * length-m work buffer, and the two radix-2 sub-plans. */
typedef struct fft_plan {
    plan_kind kind;
    int64_t n;
    int sign;
    double *tw_re, *tw_im;
    double *scratch_re, *scratch_im;       /* direct: one line; bluestein: m */
    double *chirp_re, *chirp_im;           /* bluestein: n */
    double *filt_re, *filt_im;             /* bluestein: m, already transformed */
    struct fft_plan *fwd, *inv;            /* bluestein: radix-2 length m */
} fft_plan;

static bool is_pow2(int64_t n)
{
    return n > 0 && (n & (n - 1)) == 0;
}

static void plan_free(fft_plan *p)
{
    if (!p)
        return;
    free(p->tw_re);
    free(p->tw_im);
    free(p->scratch_re);
    free(p->scratch_im);
    free(p->chirp_re);
    free(p->chirp_im);
    free(p->filt_re);
    free(p->filt_im);
    plan_free(p->fwd);
    plan_free(p->inv);
    free(p);
}

static double *alloc_doubles(int64_t n)
{
    return malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
}

/* e^{sign 2 pi i k / n} for k < count. */
static bool fill_twiddles(fft_plan *p, int64_t count)
{
    p->tw_re = alloc_doubles(count);
    p->tw_im = alloc_doubles(count);
    if (!p->tw_re || !p->tw_im)
        return false;
    for (int64_t k = 0; k < count; k++) {
        double a = 2.0 * SIG_PI * (double)k / (double)p->n;
        p->tw_re[k] = cos(a);
        p->tw_im[k] = p->sign * sin(a);
    }
    return true;
}

static void radix2_run(const fft_plan *p, double *re, double *im);

static fft_plan *plan_new(int64_t n, int sign);

/* Bluestein set-up: chirp, and the transformed filter conj(chirp) laid out
 * circularly over m points. */
static bool bluestein_init(fft_plan *p)
{
    int64_t n = p->n, m = 1;
    while (m < 2 * n - 1)
        m <<= 1;
    p->chirp_re = alloc_doubles(n);
    p->chirp_im = alloc_doubles(n);
    p->filt_re = calloc((size_t)m, sizeof(double));
    p->filt_im = calloc((size_t)m, sizeof(double));
    p->scratch_re = alloc_doubles(m);
    p->scratch_im = alloc_doubles(m);
    p->fwd = plan_new(m, -1);
    p->inv = plan_new(m, +1);
    if (!p->chirp_re || !p->chirp_im || !p->filt_re || !p->filt_im || !p->scratch_re ||
        !p->scratch_im || !p->fwd || !p->inv)
        return false;
    for (int64_t j = 0; j < n; j++) {
        /* j^2 mod 2n keeps the angle small and exact (j < 2^22). */
        int64_t q = (j * j) % (2 * n);
        double a = SIG_PI * (double)q / (double)n;
        p->chirp_re[j] = cos(a);
        p->chirp_im[j] = p->sign * sin(a);
    }
    p->filt_re[0] = p->chirp_re[0];
    p->filt_im[0] = -p->chirp_im[0];
    for (int64_t t = 1; t < n; t++) {
        p->filt_re[t] = p->filt_re[m - t] = p->chirp_re[t];
        p->filt_im[t] = p->filt_im[m - t] = -p->chirp_im[t];
    }
    radix2_run(p->fwd, p->filt_re, p->filt_im);
    return true;
}

/* Plan a length-n transform (n >= 1); NULL when out of memory. */
static fft_plan *plan_new(int64_t n, int sign)
{
    fft_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n;
    p->sign = sign;
    bool ok;
    if (n <= SIG_DIRECT_MAX) {
        p->kind = PLAN_DIRECT;
        p->scratch_re = alloc_doubles(n);
        p->scratch_im = alloc_doubles(n);
        ok = p->scratch_re && p->scratch_im && fill_twiddles(p, n);
    } else if (is_pow2(n)) {
        p->kind = PLAN_RADIX2;
        ok = fill_twiddles(p, n / 2);
    } else {
        p->kind = PLAN_BLUESTEIN;
        ok = bluestein_init(p);
    }
    if (!ok) {
        plan_free(p);
        return NULL;
    }
    return p;
}

static void direct_run(const fft_plan *p, double *re, double *im)
{
    int64_t n = p->n;
    for (int64_t k = 0; k < n; k++) {
        double sr = 0, si = 0;
        int64_t idx = 0; /* (j * k) mod n */
        for (int64_t j = 0; j < n; j++) {
            sr += re[j] * p->tw_re[idx] - im[j] * p->tw_im[idx];
            si += re[j] * p->tw_im[idx] + im[j] * p->tw_re[idx];
            idx += k;
            if (idx >= n)
                idx -= n;
        }
        p->scratch_re[k] = sr;
        p->scratch_im[k] = si;
    }
    memcpy(re, p->scratch_re, (size_t)n * sizeof(double));
    memcpy(im, p->scratch_im, (size_t)n * sizeof(double));
}

/* In-place iterative radix-2 decimation in time. */
static void radix2_run(const fft_plan *p, double *re, double *im)
{
    int64_t n = p->n;
    for (int64_t i = 1, j = 0; i < n; i++) {
        int64_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
        int64_t half = len / 2, step = n / len;
        for (int64_t s = 0; s < n; s += len) {
            for (int64_t k = 0; k < half; k++) {
                double wr = p->tw_re[k * step], wi = p->tw_im[k * step];
                int64_t a = s + k, b = a + half;
                double xr = re[b] * wr - im[b] * wi;
                double xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
    }
}

static void bluestein_run(const fft_plan *p, double *re, double *im)
{
    int64_t n = p->n, m = p->fwd->n;
    double *ar = p->scratch_re, *ai = p->scratch_im;
    for (int64_t j = 0; j < n; j++) {
        ar[j] = re[j] * p->chirp_re[j] - im[j] * p->chirp_im[j];
        ai[j] = re[j] * p->chirp_im[j] + im[j] * p->chirp_re[j];
    }
    for (int64_t j = n; j < m; j++)
        ar[j] = ai[j] = 0;
    radix2_run(p->fwd, ar, ai);
    for (int64_t j = 0; j < m; j++) {
        double r = ar[j] * p->filt_re[j] - ai[j] * p->filt_im[j];
        double i = ar[j] * p->filt_im[j] + ai[j] * p->filt_re[j];
        ar[j] = r;
        ai[j] = i;
    }
    radix2_run(p->inv, ar, ai);
    double scale = 1.0 / (double)m;
    for (int64_t k = 0; k < n; k++) {
        double r = ar[k] * scale, i = ai[k] * scale;
        re[k] = r * p->chirp_re[k] - i * p->chirp_im[k];
        im[k] = r * p->chirp_im[k] + i * p->chirp_re[k];
    }
}

static void plan_run(const fft_plan *p, double *re, double *im)
{
    switch (p->kind) {
    case PLAN_DIRECT: direct_run(p, re, im); break;
    case PLAN_RADIX2: radix2_run(p, re, im); break;
    case PLAN_BLUESTEIN: bluestein_run(p, re, im); break;
    }
}

/* ------------------------------------------------------------------------ */
/* DFT                                                                      */
/* ------------------------------------------------------------------------ */

/* Everything one DFT node needs, resolved from attributes, inputs and shape. */
typedef struct dft_job {
    const kn_tensor *x;
    int axis;
    int64_t len_in;     /* input length along axis */
    int64_t n;          /* transform length */
    int64_t len_out;    /* output length along axis */
    int64_t outer, inner;
    int c_in, c_out;    /* trailing dims: 1 real, 2 complex */
    bool inverse, onesided;
} dft_job;

static int dft_axis(kn_op_ctx *c, int rank, int *axis)
{
    int64_t a;
    if (c->opset >= 20) {
        a = -2;
        const kn_tensor *at = kn_op_in(c, 2);
        if (at && at->numel > 0) {
            if (!kn_dtype_is_int(at->dtype))
                return kn_fail(c->err, KN_ERR_ARG, "DFT axis must be an integer tensor");
            if (kn_scalar_i64(at, &a, c->err))
                return c->err->code;
        }
    } else {
        a = kn_attr_int(c->node, "axis", 1);
    }
    if (a < -rank || a >= rank)
        return kn_fail(c->err, KN_ERR_ARG, "DFT axis %lld out of range for rank %d",
                       (long long)a, rank);
    if (a < 0)
        a += rank;
    if (a == rank - 1)
        return kn_fail(c->err, KN_ERR_ARG,
                       "DFT axis may not be the last (real/imaginary) dimension");
    *axis = (int)a;
    return KN_OK;
}

/* Transform length from the dft_length input, or its default. */
static int dft_length(kn_op_ctx *c, dft_job *j)
{
    const kn_tensor *lt = kn_op_in(c, 1);
    bool irfft = j->inverse && j->onesided;
    int64_t n = irfft ? 2 * (j->len_in - 1) : j->len_in;
    if (lt && lt->numel > 0) {
        if (!kn_dtype_is_int(lt->dtype))
            return kn_fail(c->err, KN_ERR_ARG, "DFT dft_length must be an integer tensor");
        if (kn_scalar_i64(lt, &n, c->err))
            return c->err->code;
    }
    if (n < 1)
        return kn_fail(c->err, KN_ERR_ARG, "DFT length %lld must be positive", (long long)n);
    if (n > SIG_MAX_DFT)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "DFT length %lld exceeds kiln's limit %lld",
                       (long long)n, (long long)SIG_MAX_DFT);
    j->n = n;
    return KN_OK;
}

static int dft_setup(kn_op_ctx *c, dft_job *j)
{
    const kn_tensor *x = j->x;
    if (!is_float_dtype(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "DFT input must have rank >= 2, got %d", x->rank);
    j->c_in = (int)x->dims[x->rank - 1];
    if (j->c_in != 1 && j->c_in != 2)
        return kn_fail(c->err, KN_ERR_ARG, "DFT input's last dimension must be 1 or 2, got %lld",
                       (long long)x->dims[x->rank - 1]);
    int64_t onesided = kn_attr_int(c->node, "onesided", 0);
    int64_t inverse = kn_attr_int(c->node, "inverse", 0);
    if ((onesided != 0 && onesided != 1) || (inverse != 0 && inverse != 1))
        return kn_fail(c->err, KN_ERR_ARG, "DFT onesided and inverse must be 0 or 1");
    j->onesided = onesided;
    j->inverse = inverse;
    int rc = dft_axis(c, x->rank, &j->axis);
    if (rc)
        return rc;
    j->len_in = x->dims[j->axis];
    if ((rc = dft_length(c, j)))
        return rc;
    if (j->inverse && j->onesided) {
        j->len_out = j->n;      /* IRFFT: full real signal */
        j->c_out = 1;
    } else {
        j->len_out = j->onesided ? j->n / 2 + 1 : j->n;
        j->c_out = 2;
    }
    j->outer = 1;
    for (int d = 0; d < j->axis; d++)
        j->outer *= x->dims[d];
    j->inner = 1;
    for (int d = j->axis + 1; d < x->rank - 1; d++)
        j->inner *= x->dims[d];
    return KN_OK;
}

/* Load line (o, i) of the input into re/im: n points, truncated or zero-padded.
 * For IRFFT the one-sided spectrum is extended by conjugate symmetry. */
static void dft_load_line(const dft_job *j, int64_t o, int64_t i, double *re, double *im)
{
    bool irfft = j->inverse && j->onesided;
    int64_t avail = j->len_in < j->n ? j->len_in : j->n;
    if (irfft && avail > j->n / 2 + 1)
        avail = j->n / 2 + 1;
    for (int64_t k = 0; k < j->n; k++)
        re[k] = im[k] = 0;
    for (int64_t k = 0; k < avail; k++) {
        int64_t off = ((o * j->len_in + k) * j->inner + i) * j->c_in;
        re[k] = ld(j->x, off);
        im[k] = j->c_in == 2 ? ld(j->x, off + 1) : 0.0;
    }
    if (irfft) {
        for (int64_t k = j->n / 2 + 1; k < j->n; k++) {
            re[k] = re[j->n - k];
            im[k] = -im[j->n - k];
        }
    }
}

static void dft_store_line(const dft_job *j, kn_tensor *y, int64_t o, int64_t i,
                           const double *re, const double *im)
{
    double scale = j->inverse ? 1.0 / (double)j->n : 1.0;
    for (int64_t k = 0; k < j->len_out; k++) {
        int64_t off = ((o * j->len_out + k) * j->inner + i) * j->c_out;
        st(y, off, re[k] * scale);
        if (j->c_out == 2)
            st(y, off + 1, im[k] * scale);
    }
}

static int run_dft(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    dft_job j = {.x = c->in[0]};
    int rc = dft_setup(c, &j);
    if (rc)
        return rc;
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, j.x->dims, sizeof dims);
    dims[j.axis] = j.len_out;
    dims[j.x->rank - 1] = j.c_out;
    kn_tensor *y = kn_op_output(c, 0, j.x->dtype, j.x->rank, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    fft_plan *p = plan_new(j.n, j.inverse ? +1 : -1);
    double *re = alloc_doubles(j.n), *im = alloc_doubles(j.n);
    if (!p || !re || !im) {
        plan_free(p);
        free(re);
        free(im);
        return kn_fail(c->err, KN_ERR_NOMEM, "DFT: out of memory for length %lld",
                       (long long)j.n);
    }
    for (int64_t o = 0; o < j.outer; o++) {
        for (int64_t i = 0; i < j.inner; i++) {
            dft_load_line(&j, o, i, re, im);
            plan_run(p, re, im);
            dft_store_line(&j, y, o, i, re, im);
        }
    }
    plan_free(p);
    free(re);
    free(im);
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* STFT                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct stft_job {
    const kn_tensor *x, *window;
    int64_t batch, sig_len, step, frame_len, frames, bins;
    int c_in;
} stft_job;

static int stft_scalar_input(kn_op_ctx *c, int i, const char *what, int64_t *out)
{
    const kn_tensor *t = kn_op_in(c, i);
    if (!kn_dtype_is_int(t->dtype) || t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "STFT %s must be an integer scalar", what);
    return kn_scalar_i64(t, out, c->err);
}

static int stft_setup(kn_op_ctx *c, stft_job *j)
{
    const kn_tensor *x = j->x;
    if (!is_float_dtype(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2))
        return kn_fail(c->err, KN_ERR_ARG,
                       "STFT signal must be [batch, length, 1 or 2], got rank %d", x->rank);
    j->batch = x->dims[0];
    j->sig_len = x->dims[1];
    j->c_in = (int)x->dims[2];
    KN_REQUIRE_INPUT(c, 1);
    if (stft_scalar_input(c, 1, "frame_step", &j->step))
        return c->err->code;
    if (j->step < 1)
        return kn_fail(c->err, KN_ERR_ARG, "STFT frame_step %lld must be positive",
                       (long long)j->step);
    j->window = kn_op_in(c, 2);
    if (j->window && j->window->rank != 1)
        return kn_fail(c->err, KN_ERR_ARG, "STFT window must be 1-D, got rank %d",
                       j->window->rank);
    if (j->window && !is_float_dtype(j->window->dtype))
        return kn_unsupported_dtype(c, j->window->dtype);
    j->frame_len = j->window ? j->window->dims[0] : j->sig_len;
    if (kn_op_in(c, 3)) {
        int64_t fl;
        if (stft_scalar_input(c, 3, "frame_length", &fl))
            return c->err->code;
        if (j->window && fl != j->frame_len)
            return kn_fail(c->err, KN_ERR_ARG, "STFT frame_length %lld differs from window length %lld",
                           (long long)fl, (long long)j->frame_len);
        j->frame_len = fl;
    }
    if (j->frame_len < 1 || j->frame_len > j->sig_len)
        return kn_fail(c->err, KN_ERR_ARG, "STFT frame length %lld must be in [1, %lld]",
                       (long long)j->frame_len, (long long)j->sig_len);
    if (j->frame_len > SIG_MAX_DFT)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "STFT frame length %lld exceeds kiln's limit",
                       (long long)j->frame_len);
    int64_t onesided = kn_attr_int(c->node, "onesided", 1);
    if (onesided != 0 && onesided != 1)
        return kn_fail(c->err, KN_ERR_ARG, "STFT onesided must be 0 or 1");
    j->frames = 1 + (j->sig_len - j->frame_len) / j->step;
    j->bins = onesided ? j->frame_len / 2 + 1 : j->frame_len;
    return KN_OK;
}

static int run_stft(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    stft_job j = {.x = c->in[0]};
    int rc = stft_setup(c, &j);
    if (rc)
        return rc;
    int64_t dims[4] = {j.batch, j.frames, j.bins, 2};
    kn_tensor *y = kn_op_output(c, 0, j.x->dtype, 4, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    int64_t n = j.frame_len;
    fft_plan *p = plan_new(n, -1);
    double *re = alloc_doubles(n), *im = alloc_doubles(n);
    if (!p || !re || !im) {
        plan_free(p);
        free(re);
        free(im);
        return kn_fail(c->err, KN_ERR_NOMEM, "STFT: out of memory for frame length %lld",
                       (long long)n);
    }
    for (int64_t b = 0; b < j.batch; b++) {
        for (int64_t f = 0; f < j.frames; f++) {
            for (int64_t k = 0; k < n; k++) {
                int64_t off = (b * j.sig_len + f * j.step + k) * j.c_in;
                double w = j.window ? ld(j.window, k) : 1.0;
                re[k] = ld(j.x, off) * w;
                im[k] = j.c_in == 2 ? ld(j.x, off + 1) * w : 0.0;
            }
            plan_run(p, re, im);
            for (int64_t k = 0; k < j.bins; k++) {
                int64_t off = ((b * j.frames + f) * j.bins + k) * 2;
                st(y, off, re[k]);
                st(y, off + 1, im[k]);
            }
        }
    }
    plan_free(p);
    free(re);
    free(im);
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* Window functions                                                         */
/* ------------------------------------------------------------------------ */

/* Generalized cosine window: a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N). */
typedef struct cosine_window {
    double a0, a1, a2;
} cosine_window;

/* Output dtype from the output_datatype attribute (default float32). */
static int output_datatype(kn_op_ctx *c, kn_dtype *dt)
{
    int64_t v = kn_attr_int(c->node, "output_datatype", KN_F32);
    if (v <= 0 || v >= KN_DTYPE_COUNT_ONNX || !kn_dtype_supported((kn_dtype)v) ||
        v == KN_BOOL || v == KN_STRING)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s: output_datatype %lld not supported",
                       c->node->op_type, (long long)v);
    *dt = (kn_dtype)v;
    return KN_OK;
}

static int run_window(kn_op_ctx *c, cosine_window w)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *st_size = c->in[0];
    if (!kn_dtype_is_int(st_size->dtype) || st_size->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s size must be an integer scalar", c->node->op_type);
    int64_t size;
    kn_dtype dt;
    if (kn_scalar_i64(st_size, &size, c->err) || output_datatype(c, &dt))
        return c->err->code;
    if (size < 0)
        return kn_fail(c->err, KN_ERR_ARG, "%s size %lld is negative", c->node->op_type,
                       (long long)size);
    if (size > SIG_MAX_LEN)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s size %lld exceeds kiln's limit %lld",
                       c->node->op_type, (long long)size, (long long)SIG_MAX_LEN);
    int64_t periodic = kn_attr_int(c->node, "periodic", 1);
    kn_tensor *y = kn_op_output(c, 0, dt, 1, &size);
    if (!y)
        return c->err->code;
    /* N = size (periodic) or size - 1 (symmetric); a one-point symmetric window is 1. */
    int64_t n_div = periodic ? size : size - 1;
    for (int64_t k = 0; k < size; k++) {
        double v = 1.0;
        if (n_div > 0) {
            double a = 2.0 * SIG_PI * (double)k / (double)n_div;
            v = w.a0 - w.a1 * cos(a) + w.a2 * cos(2.0 * a);
        }
        st(y, k, v);
    }
    return KN_OK;
}

static int run_hann(kn_op_ctx *c)
{
    return run_window(c, (cosine_window){0.5, 0.5, 0.0});
}

static int run_hamming(kn_op_ctx *c)
{
    return run_window(c, (cosine_window){25.0 / 46.0, 1.0 - 25.0 / 46.0, 0.0});
}

static int run_blackman(kn_op_ctx *c)
{
    return run_window(c, (cosine_window){0.42, 0.5, 0.08});
}

/* ------------------------------------------------------------------------ */
/* MelWeightMatrix                                                          */
/* ------------------------------------------------------------------------ */

static int mel_int_input(kn_op_ctx *c, int i, const char *what, int64_t *out)
{
    KN_REQUIRE_INPUT(c, i);
    const kn_tensor *t = c->in[i];
    if (!kn_dtype_is_int(t->dtype) || t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "MelWeightMatrix %s must be an integer scalar", what);
    return kn_scalar_i64(t, out, c->err);
}

static int mel_float_input(kn_op_ctx *c, int i, const char *what, double *out)
{
    KN_REQUIRE_INPUT(c, i);
    const kn_tensor *t = c->in[i];
    if (!is_float_dtype(t->dtype) || t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "MelWeightMatrix %s must be a float scalar", what);
    if (kn_scalar_f64(t, out, c->err))
        return c->err->code;
    if (!isfinite(*out))
        return kn_fail(c->err, KN_ERR_ARG, "MelWeightMatrix %s is not finite", what);
    return KN_OK;
}

/* Spectrogram bin of the k-th of `points` mel-spaced edge frequencies:
 * floor((dft_length + 1) * hz / sample_rate), clamped to int64-safe range. */
static int64_t mel_edge_bin(int64_t k, int64_t points, double mel_lo, double mel_hi,
                            int64_t dft_len, int64_t rate)
{
    double step = (mel_hi - mel_lo) / (double)points;
    double mel = mel_lo + (double)k * step;
    double hz = 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
    double bin = floor((double)(dft_len + 1) * hz / (double)rate);
    if (!(bin > -1e15))
        return -1000000000000000LL;
    if (bin > 1e15)
        return 1000000000000000LL;
    return (int64_t)bin;
}

static void mel_set(kn_tensor *y, int64_t n_spec, int64_t n_mel, int64_t row, int64_t col, double v)
{
    if (row >= 0 && row < n_spec)
        st(y, row * n_mel + col, v);
}

/* Triangle filter `i` with edges lo <= center <= hi (bins); rows outside the
 * matrix are skipped. */
static void mel_triangle(kn_tensor *y, int64_t n_spec, int64_t n_mel, int64_t i,
                         int64_t lo, int64_t center, int64_t hi)
{
    int64_t rise = center - lo, fall = hi - center;
    if (rise == 0) {
        mel_set(y, n_spec, n_mel, center, i, 1.0);
    } else {
        int64_t a = lo > 0 ? lo : 0, b = center < n_spec - 1 ? center : n_spec - 1;
        for (int64_t r = a; r <= b; r++)
            mel_set(y, n_spec, n_mel, r, i, (double)(r - lo) / (double)rise);
    }
    if (fall > 0) {
        int64_t a = center > 0 ? center : 0, b = hi < n_spec ? hi : n_spec;
        for (int64_t r = a; r < b; r++)
            mel_set(y, n_spec, n_mel, r, i, (double)(hi - r) / (double)fall);
    }
}

static int run_mel(kn_op_ctx *c)
{
    int64_t n_mel, dft_len, rate;
    double lo_hz, hi_hz;
    kn_dtype dt;
    if (mel_int_input(c, 0, "num_mel_bins", &n_mel) || mel_int_input(c, 1, "dft_length", &dft_len) ||
        mel_int_input(c, 2, "sample_rate", &rate) ||
        mel_float_input(c, 3, "lower_edge_hertz", &lo_hz) ||
        mel_float_input(c, 4, "upper_edge_hertz", &hi_hz) || output_datatype(c, &dt))
        return c->err->code;
    if (n_mel < 1 || dft_len < 1 || rate < 1)
        return kn_fail(c->err, KN_ERR_ARG,
                       "MelWeightMatrix num_mel_bins, dft_length and sample_rate must be positive");
    if (n_mel > SIG_MAX_LEN || dft_len > SIG_MAX_LEN)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "MelWeightMatrix sizes exceed kiln's limit");
    if (lo_hz < 0 || hi_hz < lo_hz)
        return kn_fail(c->err, KN_ERR_ARG,
                       "MelWeightMatrix needs 0 <= lower_edge_hertz <= upper_edge_hertz");
    int64_t n_spec = dft_len / 2 + 1;
    int64_t dims[2] = {n_spec, n_mel};
    kn_tensor *y = kn_op_output(c, 0, dt, 2, dims);
    if (!y)
        return c->err->code;
    double mel_lo = 2595.0 * log10(1.0 + lo_hz / 700.0);
    double mel_hi = 2595.0 * log10(1.0 + hi_hz / 700.0);
    int64_t points = n_mel + 2;
    int64_t prev = mel_edge_bin(0, points, mel_lo, mel_hi, dft_len, rate);
    int64_t cur = mel_edge_bin(1, points, mel_lo, mel_hi, dft_len, rate);
    for (int64_t i = 0; i < n_mel; i++) {
        int64_t next = mel_edge_bin(i + 2, points, mel_lo, mel_hi, dft_len, rate);
        mel_triangle(y, n_spec, n_mel, i, prev, cur, next);
        prev = cur;
        cur = next;
    }
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* Static type inference (best effort: unknown dims stay -1)                */
/* ------------------------------------------------------------------------ */

static void infer_unknown_dims(kn_type *o, int rank)
{
    o->rank = rank;
    for (int d = 0; d < rank; d++)
        o->dims[d] = (kn_dim){-1, NULL};
}

/* Value of a constant integer scalar input, if known at load time. */
static bool const_int(const kn_infer_ctx *ic, int i, int64_t *v)
{
    const kn_tensor *t = i < ic->n_in ? ic->in_const[i] : NULL;
    if (!t || !kn_dtype_is_int(t->dtype) || t->numel != 1)
        return false;
    *v = kn_load_i64(t->data, t->dtype, 0);
    return true;
}

static int infer_dft(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    const kn_type *x = ic->in[0];
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = x->dtype;
    o->rank = -1;
    int r = x->rank;
    if (r < 2)
        return KN_OK;
    bool inverse = kn_attr_int(ic->node, "inverse", 0) != 0;
    bool onesided = kn_attr_int(ic->node, "onesided", 0) != 0;
    int64_t axis = -2;
    bool axis_known = true;
    if (ic->opset < 20)
        axis = kn_attr_int(ic->node, "axis", 1);
    else if (ic->n_in > 2 && ic->in[2])
        axis_known = const_int(ic, 2, &axis);
    if (axis < 0)
        axis += r;
    infer_unknown_dims(o, r);
    o->dims[r - 1] = (kn_dim){inverse && onesided ? 1 : 2, NULL};
    if (!axis_known || axis < 0 || axis >= r - 1)
        return KN_OK;
    for (int d = 0; d < r - 1; d++)
        if (d != axis)
            o->dims[d] = x->dims[d];
    int64_t n, len = x->dims[axis].value;
    bool n_known = ic->n_in > 1 && ic->in[1] ? const_int(ic, 1, &n) : len >= 0;
    if (!(ic->n_in > 1 && ic->in[1]))
        n = inverse && onesided ? 2 * (len - 1) : len;
    if (n_known && n >= 1)
        o->dims[axis].value = inverse && onesided ? n : onesided ? n / 2 + 1 : n;
    return KN_OK;
}

static int infer_stft(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = ic->in[0]->dtype;
    infer_unknown_dims(o, 4);
    if (ic->in[0]->rank == 3)
        o->dims[0] = ic->in[0]->dims[0];
    o->dims[3].value = 2;
    return KN_OK;
}

static int infer_generated(kn_infer_ctx *ic, int rank, int first_size_input)
{
    if (ic->n_out < 1)
        return KN_OK;
    int64_t v = kn_attr_int(ic->node, "output_datatype", KN_F32);
    if (v <= 0 || v >= KN_DTYPE_COUNT_ONNX || !kn_dtype_supported((kn_dtype)v))
        return KN_OK;
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = (kn_dtype)v;
    infer_unknown_dims(o, rank);
    int64_t a, b;
    if (rank == 1 && const_int(ic, first_size_input, &a) && a >= 0)
        o->dims[0].value = a;
    if (rank == 2 && const_int(ic, 1, &b) && b >= 1)
        o->dims[0].value = b / 2 + 1;
    if (rank == 2 && const_int(ic, 0, &a) && a >= 1)
        o->dims[1].value = a;
    return KN_OK;
}

static int infer_window(kn_infer_ctx *ic)
{
    return infer_generated(ic, 1, 0);
}

static int infer_mel(kn_infer_ctx *ic)
{
    return infer_generated(ic, 2, 0);
}

const kn_op_def kn_ops_signal[] = {
    {"", "DFT", 1, run_dft, NULL, infer_dft, false},
    {"", "STFT", 1, run_stft, NULL, infer_stft, false},
    {"", "HannWindow", 1, run_hann, NULL, infer_window, false},
    {"", "HammingWindow", 1, run_hamming, NULL, infer_window, false},
    {"", "BlackmanWindow", 1, run_blackman, NULL, infer_window, false},
    {"", "MelWeightMatrix", 1, run_mel, NULL, infer_mel, false},
    {0},
};

/* cpu.c - CPUID/XGETBV feature detection, cached once via pthread_once, and the
 * KILN_ISA override (see cpu.h). */
#include "core/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KN_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static kn_cpu_feature_set g_features;
static kn_isa g_isa_supported = KN_ISA_GENERIC;
static kn_isa g_isa_used = KN_ISA_GENERIC;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#ifdef KN_X86
static unsigned long long read_xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* Linux hands out the 8 KiB tile data state only on request, once per process
 * (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); without it the first
 * tile instruction faults. */
static int amx_permission(void)
{
#if defined(__linux__) && defined(__x86_64__)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

static void detect_x86(kn_cpu_feature_set *f)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return;
    unsigned long long xcr0 = read_xcr0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;            /* XMM + YMM state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask + ZMM_Hi256 + Hi16_ZMM */
    if (!ymm_ok) return;
    f->fma = fma;
    f->f16c = f16c;
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = (b >> 5) & 1;
    if (zmm_ok) {
        f->avx512f = (b >> 16) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512_vnni = f->avx512f && ((c >> 11) & 1);
    }
    int amx_cpu = ((d >> 24) & 1) && ((d >> 25) & 1); /* AMX-TILE, AMX-INT8 */
    int amx_os = (xcr0 & 0x60000) == 0x60000;        /* XTILECFG + XTILEDATA */
    f->amx_int8 = f->avx512bw && amx_cpu && amx_os && amx_permission();
}
#endif

static int g_amx_used;

/* AMX tiles when the machine has them and KILN_ISA is unset or "amx". */
static int amx_from_env(const kn_cpu_feature_set *f)
{
    const char *s = getenv("KILN_ISA");
    return f->amx_int8 && (!s || !*s || strcmp(s, "amx") == 0);
}

static kn_isa level_from_env(kn_isa supported)
{
    const char *s = getenv("KILN_ISA");
    if (!s || !*s) return supported;
    kn_isa want = supported;
    if (strcmp(s, "generic") == 0) want = KN_ISA_GENERIC;
    else if (strcmp(s, "avx2") == 0) want = KN_ISA_AVX2;
    else if (strcmp(s, "avx512") == 0) want = KN_ISA_AVX512;
    return want < supported ? want : supported;
}

static void detect_once(void)
{
    memset(&g_features, 0, sizeof g_features);
#ifdef KN_X86
    detect_x86(&g_features);
#endif
    const kn_cpu_feature_set *f = &g_features;
    kn_isa isa = KN_ISA_GENERIC;
    if (f->avx2 && f->fma) isa = KN_ISA_AVX2;
    if (isa == KN_ISA_AVX2 && f->avx512f && f->avx512bw && f->avx512vl) isa = KN_ISA_AVX512;
    g_isa_supported = isa;
    g_isa_used = level_from_env(isa);
    g_amx_used = amx_from_env(f);
}

const kn_cpu_feature_set *kn_cpu_features(void)
{
    pthread_once(&g_once, detect_once);
    return &g_features;
}

kn_isa kn_cpu_isa_supported(void)
{
    pthread_once(&g_once, detect_once);
    return g_isa_supported;
}

kn_isa kn_cpu_isa_cap(kn_isa isa)
{
    kn_isa have = kn_cpu_isa_supported();
    return isa > have ? have : isa;
}

kn_isa kn_cpu_isa(void)
{
    pthread_once(&g_once, detect_once);
    return g_isa_used;
}

int kn_cpu_amx_int8(void)
{
    pthread_once(&g_once, detect_once);
    return g_amx_used;
}

const char *kn_isa_name(kn_isa isa)
{
    switch (isa) {
    case KN_ISA_GENERIC: return "generic";
    case KN_ISA_AVX2: return "avx2";
    case KN_ISA_AVX512: return "avx512";
    default: return "?";
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx"))) static void vzeroupper_avx(void)
{
    __builtin_ia32_vzeroupper();
}

void kn_cpu_clear_upper(void)
{
    if (kn_cpu_isa_supported() >= KN_ISA_AVX2)
        vzeroupper_avx();
}
#else
void kn_cpu_clear_upper(void) {}
#endif

/* cpu.h - run-time CPU feature detection (CPUID + XGETBV) and the instruction-set
 * level kernels dispatch on.  The result is computed once (thread-safe) and cached;
 * the environment variable KILN_ISA=generic|avx2|avx512|amx caps the level so that
 * every kernel path can be exercised on one machine. */
#ifndef KN_CPU_H
#define KN_CPU_H

typedef struct kn_cpu_feature_set {
    int avx2, fma, f16c;                      /* usable: CPU reports it and the OS saves YMM */
    int avx512f, avx512bw, avx512vl, avx512_vnni; /* usable: CPU + OS saves ZMM/opmask state */
    int amx_int8; /* AMX tiles + TDPBUSD usable: CPU, OS tile state, and (Linux) the
                     process was granted the tile data permission */
} kn_cpu_feature_set;

/* Kernel levels, ordered: a higher level implies the lower ones are usable. */
typedef enum kn_isa {
    KN_ISA_GENERIC = 0, /* plain C */
    KN_ISA_AVX2 = 1,    /* AVX2 + FMA */
    KN_ISA_AVX512 = 2,  /* AVX-512 F/BW/VL + FMA */
    KN_ISA_COUNT = 3
} kn_isa;

/* What the hardware and OS support (not affected by KILN_ISA); cached, thread-safe. */
const kn_cpu_feature_set *kn_cpu_features(void);

/* Highest level the machine supports (ignores KILN_ISA). */
kn_isa kn_cpu_isa_supported(void);
/* Level kernels should use: the supported level, capped by KILN_ISA when set. */
kn_isa kn_cpu_isa(void);
/* isa, lowered to what the machine supports (a kernel asked for a level the CPU
 * lacks runs the highest it has). */
kn_isa kn_cpu_isa_cap(kn_isa isa);
/* AMX-INT8 tiles for the integer GEMM: the CPU and OS allow them and KILN_ISA is
 * unset or "amx" (KILN_ISA=avx512 and below switch them off, so the AVX-512 VNNI
 * path can be measured on an AMX machine). */
int kn_cpu_amx_int8(void);
/* vzeroupper on CPUs with AVX: kernels that ran 256/512-bit code call it before
 * returning to baseline-compiled C, whose SSE instructions otherwise pay a penalty
 * while the upper register halves are dirty (measured 8x on a softmax after SGEMM).
 * The state is per thread: call it on every thread that ran such code. */
void kn_cpu_clear_upper(void);

/* "generic", "avx2", "avx512". */
const char *kn_isa_name(kn_isa isa);

#endif

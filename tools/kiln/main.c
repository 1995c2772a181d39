/* main.c - the kiln command-line tool: dispatches to the subcommands and holds
 * the helpers they share. */
#include "cli.h"

#include "kiln.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f,
            "kiln %s - load, run and check ONNX models\n\n"
            "usage: kiln COMMAND [options]\n\n"
            "commands:\n"
            "  inspect MODEL                 opset, inputs/outputs, operators, parameters\n"
            "  run MODEL [-i NAME=FILE.npy]... [-o OUTDIR] [--random] [--dim NAME=VALUE]...\n"
            "                                run a model on .npy inputs, write outputs as .npy\n"
            "  bench MODEL [--batch N] [--threads N] [--iters N] [--json] [--profile]\n"
            "                                latency percentiles, throughput, memory, profile\n"
            "  eval MODEL --data X --labels Y [--normalize MEAN,STD] [--batch N]\n"
            "                                top-1/top-5 accuracy of a classifier (.npy or IDX data)\n"
            "  conformance DIR... [--filter S] [--list-failures] [--timeout SEC]\n"
            "                                run ONNX backend test cases\n"
            "  serve [--repository DIR] [--host H] [--port P] [--threads N]\n"
            "                                KServe v2 / Triton-protocol inference server\n"
            "  optimize MODEL -o OUT.onnx [--level none|basic|extended|all] [--external-data]\n"
            "                                optimize the graph and write it as ONNX\n"
            "  compare MODEL_A MODEL_B [--data X] [--labels Y] [--limit N] [--layers K] [--json]\n"
            "                                agreement, accuracy and error of two models, worst layers\n"
            "  calibrate MODEL --calib DATA [-o RANGES.txt] [--calib-method minmax|percentile|entropy]\n"
            "                                activation ranges over calibration data\n"
            "  version                       print the version\n\n"
            "Run 'kiln COMMAND --help' for the options of a command.\n",
            kiln_version());
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool cli_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "conformance"))
        return cmd_conformance(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "optimize"))
        return cmd_optimize(argc - 1, argv + 1);
    if (!strcmp(cmd, "compare"))
        return cmd_compare(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize"))
        return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "calibrate"))
        return cmd_calibrate(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kiln %s\n", kiln_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

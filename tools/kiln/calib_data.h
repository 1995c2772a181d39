/* calib_data.h - calibration data for the kiln CLI: the --calib options, the data
 * sources (batches of model input from .npy files, an IDX file or a folder of
 * JPEG/PNG images) and cli_calibrate, which runs a model over them and returns the
 * activation ranges.  Used by `kiln calibrate` and `kiln quantize --mode static`;
 * the data sources are meant for `kiln compare --data` too.
 *
 * Batches are kn_tensor (owned) of the model input's dtype, because the observer
 * (quant.h) runs on kn_tensor.  A float32 input takes any of the sources (integer
 * arrays scaled to [0,1], then --mean/--std); an integer or bool input (token ids)
 * takes .npy / IDX arrays only, fed as they are: no scaling, no --mean/--std.
 *
 * A model with several inputs reads --calib DIR, a folder holding <input name>.npy
 * for each input, all with the same number of samples (first dim); sample i of
 * every file makes one sample of the model. */
#ifndef KILN_CALIB_DATA_H
#define KILN_CALIB_DATA_H

#include "core/tensor.h"
#include "quant/quant.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cli_calib_opts {
    const char *calib;          /* --calib PATH: a .npy file, an IDX file (gzipped or not), or a
                                   folder of .npy files or of JPEG/PNG images */
    kn_calib_method method;     /* --calib-method minmax|percentile|entropy (default minmax) */
    double percentile;          /* --percentile P (default 99.99) */
    int64_t limit;              /* --calib-limit N: at most N samples (0: all) */
    int64_t batch;              /* --calib-batch B (0: the model's fixed batch; else a .npy file's
                                   own batch, else 32) */
    int resize;                 /* images: --resize N, short side to N (0: straight to the crop) */
    int crop;                   /* images: --crop N, center N x N (0: the model's H x W) */
    float mean[3], std[3];      /* --mean a[,b,c] --std a[,b,c]: (x - mean) / std per channel, */
    int n_mean, n_std;          /*   after images / integer arrays are scaled to [0,1] */
    int threads;                /* --threads N for the calibration runs (0: default) */
    bool quiet;                 /* no progress output */
} cli_calib_opts;

void cli_calib_opts_init(cli_calib_opts *o);

/* If argv[*i] is a calibration option, consume it (and its value, advancing *i)
 * and return 1; 0 when it is not one; -1 (after printing an error naming cmd) when
 * its value is bad.  --threads is left to the command. */
int cli_calib_option(cli_calib_opts *o, int argc, char **argv, int *i, const char *cmd);

/* Help text for the options above (one line each, indented by two spaces). */
extern const char cli_calib_help[];

/* ---- data sources ---- */

typedef struct calib_data calib_data;

/* Open o->calib for a model input of the given dtype, rank and dims (dims[d] < 0:
 * not fixed; dims[0] is the batch).  Checks what it can up front: the path exists, a
 * folder holds .npy or image files (not both), an IDX/.npy sample has the model's
 * per-sample size, images fit a 1- or 3-channel NCHW/NHWC input. */
int calib_data_open(const cli_calib_opts *o, kn_dtype dtype, int rank, const int64_t *dims,
                    calib_data **out, kn_error *err);
/* calib_data_open for the single input of model m (kiln.h), with the checks both
 * `kiln compare --data` and `kiln quantize --auto-exclude` need; errors are printed
 * prefixed with what ("compare", "quantize: --auto-exclude"); returns 0 or 1. */
struct kiln_model;
int calib_data_open_model_input(const cli_calib_opts *o, const struct kiln_model *m, const char *what,
                                calib_data **out);
/* The next batch into *batch (an owned tensor of the input's dtype and rank; release
 * it with kn_tensor_release); *done set (and *batch empty) when there is no more. */
int calib_data_next(calib_data *d, kn_tensor *batch, bool *done, kn_error *err);
/* How far through the data the batches handed out so far are, in [0, 1]. */
double calib_data_progress(const calib_data *d);
/* Samples handed out so far. */
int64_t calib_data_samples(const calib_data *d);
/* Samples left out because the model's fixed batch could not take a shorter
 * remainder (of a .npy file, or of the data). */
int64_t calib_data_dropped(const calib_data *d);
void calib_data_close(calib_data *d);

/* ---- calibration ---- */

/* Run the model at model_path (unoptimized, through kn_observer) over the batches of
 * o->calib and collect the ranges of every float value (graph input and node
 * outputs) with o->method.  Progress goes to stderr (a bar when stderr is a
 * terminal, else a line per 10%) unless o->quiet.  Each model input (without
 * initializer) must be a typed tensor of numbers with a batch dimension; with
 * several inputs o->calib is the folder of <input name>.npy files described above.  Returns 0, or 1 after printing
 * "kiln: <cmd>: <why>" (cmd "calibrate"); *out is then empty. */
int cli_calibrate(const char *model_path, const cli_calib_opts *o, kn_act_ranges *out);

#endif

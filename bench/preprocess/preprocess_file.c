/* preprocess_file.c - decode an image file with the server's decoder and write the
 * preprocessed tensor (resize short side R, center crop C x C, RGB, ImageNet
 * mean/std, NCHW float32) to a raw file.  Driver for check_vs_torchvision.sh.
 *   preprocess_file IN OUT R C */
#include <stdio.h>
#include <stdlib.h>

#include "serve/image_io.h"
#include "serve/preprocess.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    *len = buf ? (size_t)n : 0;
    if (f)
        fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: preprocess_file IN OUT RESIZE CROP\n");
        return 2;
    }
    size_t len;
    char *data = read_all(argv[1], &len);
    int r = atoi(argv[3]), c = atoi(argv[4]);
    kn_serve_image img;
    kn_error err;
    kn_preprocess pp = {r, c, c, 3, 0, 1.0f / 255, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 0};
    size_t n = (size_t)3 * (size_t)(c > 0 ? c : 0) * (size_t)(c > 0 ? c : 0);
    float *out = malloc(n ? n * sizeof(float) : 1);
    int rc = !data || !out ? 1 : kn_serve_image_decode(data, len, &img, &err);
    if (!rc) {
        rc = kn_preprocess_image(&img, &pp, out, n, &err);
        kn_serve_image_free(&img);
    }
    FILE *f = rc ? NULL : fopen(argv[2], "wb");
    if (f) {
        rc = fwrite(out, sizeof(float), n, f) != n;
        fclose(f);
    }
    if (rc)
        fprintf(stderr, "preprocess_file: %s\n", data ? err.msg : "cannot read input");
    free(data);
    free(out);
    return rc ? 1 : 0;
}

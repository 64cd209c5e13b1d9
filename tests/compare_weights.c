/* compare_weights A.h5 B.h5 [--exact | --rtol R --atol A | --tensor-rtol T]: compare two
 * weights files parameter by parameter (as the reference model's state_dict or any model
 * given with --model SPEC --input C,H,W --classes K). Prints the largest differences; exit
 * 1 when any element violates |a - b| <= atol + rtol * |b| (or differs at all with
 * --exact), or, with --tensor-rtol, when a tensor's largest difference exceeds T times its
 * largest magnitude in B (relative to the tensor, so that elements near 0 do not need an
 * absolute floor). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/model.h"
#include "dptrain/persist/weights.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: compare_weights A.h5 B.h5 [--exact] [--rtol R] [--atol A] "
                        "[--tensor-rtol T] [--model SPEC] [--input C,H,W] [--classes K]\n");
        return 2;
    }
    double rtol = 0, atol = 0, tensor_rtol = -1;
    int exact = 0, C = 1, H = 28, W = 28, K = 10;
    const char *spec = "reference";
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--exact"))
            exact = 1;
        else if (!strcmp(argv[i], "--rtol") && i + 1 < argc)
            rtol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--atol") && i + 1 < argc)
            atol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tensor-rtol") && i + 1 < argc)
            tensor_rtol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            spec = argv[++i];
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            sscanf(argv[++i], "%d,%d,%d", &C, &H, &W);
        else if (!strcmp(argv[i], "--classes") && i + 1 < argc)
            K = atoi(argv[++i]);
        else {
            fprintf(stderr, "compare_weights: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    dp_model a, b;
    dp_err err;
    if (model_build(&a, spec, C, H, W, K, &err) || model_build(&b, spec, C, H, W, K, &err) ||
        weights_load(&a, argv[1], &err) || weights_load(&b, argv[2], &err)) {
        fprintf(stderr, "compare_weights: %s\n", err.msg);
        return 2;
    }
    int bad = 0;
    for (int p = 0; p < a.nparams; p++) {
        const dp_param *q = &a.params[p];
        double maxabs = 0, maxrel = 0, largest = 0;
        size_t differ = 0, violate = 0;
        for (size_t i = 0; i < q->count; i++) {
            double x = a.weights[q->offset + i], y = b.weights[q->offset + i], d = fabs(x - y);
            differ += x != y || memcmp(&a.weights[q->offset + i], &b.weights[q->offset + i], 4);
            violate += !(d <= atol + rtol * fabs(y));
            maxabs = d > maxabs || d != d ? d : maxabs; /* a NaN stays */
            largest = fmax(largest, fabs(y));
            if (y != 0)
                maxrel = fmax(maxrel, d / fabs(y));
        }
        double trel = largest > 0 ? maxabs / largest : maxabs;
        int fail = exact ? differ > 0 : tensor_rtol >= 0 ? !(trel <= tensor_rtol) : violate > 0;
        printf("%-14s max abs diff %.3g max rel diff %.3g, tensor-relative %.3g, %zu of %zu "
               "elements differ%s\n", q->name, maxabs, maxrel, trel, differ, q->count,
               fail ? "  <-- FAIL" : "");
        bad |= fail;
    }
    printf("%s\n", bad ? "weights differ beyond tolerance" : "weights match");
    return bad;
}

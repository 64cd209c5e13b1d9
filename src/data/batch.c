#include "dptrain/data/batch.h"

#include <stddef.h>

void batch_fill(float *x, uint8_t *labels, const dp_dataset *ds, const int64_t *idx,
                int64_t first, int B, const dp_input_norm *norm)
{
    const size_t sample = (size_t)ds->c * ds->h * ds->w;
    const int normalize = norm && norm->normalize;
    const float mean = normalize ? norm->mean : 0.0f, sd = normalize ? norm->std : 1.0f;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++) {
        int64_t at = idx ? idx[n] : first + n;
        const uint8_t *src = ds->images + (size_t)at * sample;
        float *dst = x + (size_t)n * sample;
        for (size_t i = 0; i < sample; i++) {
            float v = (float)src[i] / 255.0f; /* torchvision's ToTensor */
            dst[i] = normalize ? (v - mean) / sd : v;
        }
    }
    for (int n = 0; n < B; n++)
        labels[n] = ds->labels[idx ? idx[n] : first + n];
}

/* winograd_g.h: G of Winograd's F(4x4, 3x3), shared by the filters' transform U = G g G^T
 * and the weight gradient's G^T dU G (both in kern_winograd.c), so both read the same
 * constants. */
#ifndef DPTRAIN_NET_WINOGRAD_G_H
#define DPTRAIN_NET_WINOGRAD_G_H

static const float wino_G[6][3] = {{1.0f / 4, 0, 0},
                                   {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                   {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                   {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                   {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                   {0, 0, 1}};

#endif

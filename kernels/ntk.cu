// Assembly of the structured NTK, one layer at a time (DESIGN section 2):
//   Theta[r,s] (+)= GG[r,s] * (sw2 * AA[r/C, s/C] + sb2)
// with GG = G_l G_l^T (m x m, m = N*C) and AA = A_{l-1} A_{l-1}^T (N x N) from cuBLAS GEMMs.
// For the read-out layer G_L has rows e_c, so GG[r,s] = [r%C == s%C]: pass gg = null.
// `accumulate` = 0 overwrites Theta (first layer), 1 adds to it.

template <typename T>
__device__ void ntk_layer_impl(T* __restrict__ theta, const T* __restrict__ gg,
                               const T* __restrict__ aa, i64 m, int C, T sw2, T sb2,
                               int accumulate) {
    const i64 n = m / C;
    for (i64 r = blockIdx.y; r < m; r += gridDim.y) {
        const T* aa_row = aa + (r / C) * n;
        const int cr = (int)(r % C);
        T* out = theta + r * m;
        const T* gg_row = gg ? gg + r * m : nullptr;
        for (i64 s = blockIdx.x * (i64)blockDim.x + threadIdx.x; s < m;
             s += (i64)gridDim.x * blockDim.x) {
            const i64 sn = s / C;
            const T gval = gg_row ? gg_row[s] : ((int)(s - sn * C) == cr ? T(1) : T(0));
            const T v = gval * (sw2 * aa_row[sn] + sb2);
            out[s] = accumulate ? out[s] + v : v;
        }
    }
}

#define ITLIN_NTK(T, SUF)                                                                         \
    extern "C" __global__ void ntk_layer_##SUF(T* theta, const T* gg, const T* aa, i64 m, int C,  \
                                               T sw2, T sb2, int accumulate) {                    \
        ntk_layer_impl<T>(theta, gg, aa, m, C, sw2, sb2, accumulate);                              \
    }

ITLIN_NTK(float, f32)
ITLIN_NTK(double, f64)

// Fused assembly of several layers in one pass over Theta (reads each Gram once, writes Theta
// once). With K_x[r,s] = sw2_x * AA_x[r/C, s/C] + sb2_x (x = t, g, e):
//   Theta[r,s] = T0 + GG[r,s] * K_g[r,s] + [r%C == s%C] * K_e[r,s]
// where T0 = 0 (tmode 0, Theta not read), Theta[r,s] (tmode 1) or Theta[r,s] * K_t[r,s]
// (tmode 2: Theta holds a signal Gram G G^T written by cuBLAS); gg = null drops the GG term,
// aa_e = null the read-out term. Rows over blockIdx.y (grid-stride), 16-byte packets over the
// row with one 32-bit division per packet (s / C), then (s/C, s%C) walked incrementally.
// Needs m < 2^31 (the host checks).
template <typename T>
__device__ __forceinline__ T ntk_k(const T* aa_row, int sn, T sw2, T sb2) {
    return aa_row ? sw2 * aa_row[sn] + sb2 : T(0);
}

template <typename T>
__device__ void ntk_fused_impl(T* __restrict__ theta, const T* __restrict__ gg,
                               const T* __restrict__ aa_t, const T* __restrict__ aa_g,
                               const T* __restrict__ aa_e, i64 m, int C, T swt, T sbt, T swg,
                               T sbg, T swe, T sbe, int tmode) {
    constexpr int W = PackWidth<T>::value;
    const int mi = (int)m;
    const int n = mi / C;
    for (i64 r = blockIdx.y; r < m; r += gridDim.y) {
        const int rn = (int)r / C;
        const int cr = (int)r - rn * C;
        T* out = theta + r * m;
        const T* gr = gg ? gg + r * m : nullptr;
        const T* at = tmode == 2 ? aa_t + (i64)rn * n : nullptr;
        const T* ag = gg ? aa_g + (i64)rn * n : nullptr;
        const T* ae = aa_e ? aa_e + (i64)rn * n : nullptr;
        // Vector body only when Theta's and GG's rows share their alignment.
        const bool same = !gr || ((((u64)gr) & 15) == (((u64)out) & 15));
        const int head = same ? (int)head_to_aligned(out, m) : mi;
        const int nvec = (mi - head) / W;
        const i64 tid = blockIdx.x * (i64)blockDim.x + threadIdx.x;
        const i64 stride = (i64)gridDim.x * blockDim.x;
        for (i64 q = tid; q < nvec; q += stride) {
            const int s0 = head + (int)q * W;
            int sn = s0 / C;
            int cs = s0 - sn * C;
            Pack<T> th, g;
            if (tmode) th = load_cs(reinterpret_cast<const Pack<T>*>(out + s0));
            if (gr) g = load_cs(reinterpret_cast<const Pack<T>*>(gr + s0));
            T kt = ntk_k(at, sn, swt, sbt), kg = ntk_k(ag, sn, swg, sbg),
              ke = ntk_k(ae, sn, swe, sbe);
            Pack<T> o;
#pragma unroll
            for (int j = 0; j < W; ++j) {
                T v = tmode == 0 ? T(0) : (tmode == 2 ? th.x[j] * kt : th.x[j]);
                if (gr) v += g.x[j] * kg;
                if (ae && cs == cr) v += ke;
                o.x[j] = v;
                if (j + 1 < W && ++cs == C) {
                    cs = 0;
                    ++sn;
                    kt = ntk_k(at, sn, swt, sbt);
                    kg = ntk_k(ag, sn, swg, sbg);
                    ke = ntk_k(ae, sn, swe, sbe);
                }
            }
            store_cs(reinterpret_cast<Pack<T>*>(out + s0), o);
        }
        // Scalar head [0, head) and tail [head + nvec*W, m).
        const i64 tail0 = head + (i64)nvec * W;
        const i64 nscalar = head + (m - tail0);
        for (i64 t = tid; t < nscalar; t += stride) {
            const int s = (int)(t < head ? t : tail0 + (t - head));
            const int sn = s / C;
            const int cs = s - sn * C;
            T v = tmode == 0 ? T(0) : (tmode == 2 ? out[s] * ntk_k(at, sn, swt, sbt) : out[s]);
            if (gr) v += gr[s] * ntk_k(ag, sn, swg, sbg);
            if (ae && cs == cr) v += ntk_k(ae, sn, swe, sbe);
            out[s] = v;
        }
    }
}

#define ITLIN_NTK_FUSED(T, SUF)                                                                   \
    extern "C" __global__ void ntk_fused_##SUF(T* theta, const T* gg, const T* aa_t,              \
                                               const T* aa_g, const T* aa_e, i64 m, int C, T swt, \
                                               T sbt, T swg, T sbg, T swe, T sbe, int tmode) {    \
        ntk_fused_impl<T>(theta, gg, aa_t, aa_g, aa_e, m, C, swt, sbt, swg, sbg, swe, sbe,        \
                          tmode);                                                                 \
    }

ITLIN_NTK_FUSED(float, f32)
ITLIN_NTK_FUSED(double, f64)

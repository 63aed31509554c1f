// Explicit Jacobian assembly of an MLP from its layer inputs A_{l-1} (N x fan_in, row-major)
// and backprop signals G_l ((N*C) x fan_out, row-major), one launch per layer, exactly as the
// CPU `Signals::write_jacobian`: in row r = n*C + c of J (row length p),
//   J[r, w_off + i*fan_in + k]          = (s_w * G[r, i]) * A[n, k]
//   J[r, w_off + fan_out*fan_in + i]    = s_b * G[r, i]
// Threads cover the layer's contiguous column range of one row with aligned 16-byte stores
// (scalar head and tail), rows run over blockIdx.y (grid-stride): every row write is coalesced.

template <typename T>
__device__ __forceinline__ T jac_elem(const T* __restrict__ a, const T* __restrict__ g, i64 e,
                                      i64 n_w, int fan_in, T sw, T sb) {
    if (e < n_w) {
        // e < n_w <= p < 2^31 (the host checks p): a 32-bit division
        const int i = (int)e / fan_in;
        return (sw * g[i]) * a[(int)e - i * fan_in];
    }
    return sb * g[e - n_w];
}

template <typename T>
__device__ void jacobian_layer_impl(T* __restrict__ J, i64 m, i64 p, int C,
                                    const T* __restrict__ A, const T* __restrict__ G, int fan_in,
                                    int fan_out, i64 w_off, T sw, T sb) {
    constexpr int W = PackWidth<T>::value;
    const i64 n_w = (i64)fan_out * fan_in;
    const i64 len = n_w + fan_out;
    const i64 tid = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 r = blockIdx.y; r < m; r += gridDim.y) {
        const T* a = A + (r / C) * fan_in;
        const T* g = G + r * fan_out;
        T* dst = J + r * p + w_off;
        const i64 head = head_to_aligned(dst, len);
        const i64 nvec = (len - head) / W;
        for (i64 e = tid; e < head; e += stride) dst[e] = jac_elem(a, g, e, n_w, fan_in, sw, sb);
        Pack<T>* body = reinterpret_cast<Pack<T>*>(dst + head);
        for (i64 q = tid; q < nvec; q += stride) {
            const i64 e0 = head + q * W;
            Pack<T> o;
            if (e0 + W <= n_w) {
                // Whole packet inside the weight block: one division, then walk (i, k).
                i64 i = e0 / fan_in;
                int k = (int)(e0 - i * fan_in);
                T gi = sw * g[i];
#pragma unroll
                for (int j = 0; j < W; ++j) {
                    o.x[j] = gi * a[k];
                    if (j + 1 < W && ++k == fan_in) {
                        k = 0;
                        ++i;
                        gi = sw * g[i];
                    }
                }
            } else {
#pragma unroll
                for (int j = 0; j < W; ++j) o.x[j] = jac_elem(a, g, e0 + j, n_w, fan_in, sw, sb);
            }
            body[q] = o;
        }
        for (i64 e = head + nvec * W + tid; e < len; e += stride)
            dst[e] = jac_elem(a, g, e, n_w, fan_in, sw, sb);
    }
}

#define ITLIN_JACOBIAN(T, SUF)                                                                    \
    extern "C" __global__ void jacobian_layer_##SUF(T* J, i64 m, i64 p, int C, const T* A,        \
                                                    const T* G, int fan_in, int fan_out,          \
                                                    i64 w_off, T sw, T sb) {                      \
        jacobian_layer_impl<T>(J, m, p, C, A, G, fan_in, fan_out, w_off, sw, sb);                 \
    }

ITLIN_JACOBIAN(float, f32)
ITLIN_JACOBIAN(double, f64)

// All layers in one launch (v2). The layers must tile the row: layer l covers the columns
// [w_off_l, w_off_l + fan_out_l*(fan_in_l + 1)), w_off_0 = 0, each starting where the last
// ends, the last ending at p (the host checks). J is treated as one flat array of m*p elements:
// every thread writes 16-byte packets (streaming stores) at a fixed stride over the whole
// matrix, so a warp always writes 512 contiguous bytes, row and layer boundaries included; the
// (row, column) of a thread's packet is advanced by additions, never divided. Inside a layer's
// weight block one 32-bit division finds (i, k); packets that cross a weight/bias, layer or
// row boundary take the per-element path.
#define ITLIN_JAC_MAX_LAYERS 8

template <typename T>
struct JacLayer {
    const T* a;
    const T* g;
    i64 w_off;
    int fan_in;
    int fan_out;
    T sw;
    T sb;
};

template <typename T>
struct JacLayers {
    JacLayer<T> l[ITLIN_JAC_MAX_LAYERS];
    int count;
    int C;
};

// Element (r, e) of J with n = r / C, from the layer table in shared memory.
template <typename T>
__device__ __forceinline__ T jac_any(const JacLayer<T>* tab, int count, i64 r, i64 n, i64 e) {
    int l = 0;
    while (l + 1 < count && e >= tab[l + 1].w_off) ++l;
    const JacLayer<T>& L = tab[l];
    return jac_elem(L.a + n * L.fan_in, L.g + r * L.fan_out, e - L.w_off,
                    (i64)L.fan_out * L.fan_in, L.fan_in, L.sw, L.sb);
}

// Copies the layer table (a kernel parameter) into shared memory `tab`, then synchronises the
// block. Compile-time indices into the parameter struct: a run-time index would copy it to
// local memory.
template <typename T>
__device__ __forceinline__ void jac_load_table(JacLayer<T>* tab, const JacLayers<T>& layers) {
#pragma unroll
    for (int l = 0; l < ITLIN_JAC_MAX_LAYERS; ++l)
        if (threadIdx.x == 0 && l < layers.count) tab[l] = layers.l[l];
    __syncthreads();
}

template <typename T>
__device__ void jacobian_all_impl(T* __restrict__ J, i64 m, i64 p, const JacLayers<T>& layers) {
    constexpr int W = PackWidth<T>::value;
    __shared__ JacLayer<T> tab[ITLIN_JAC_MAX_LAYERS];
    const int count = layers.count;
    const i64 C = layers.C;
    jac_load_table(tab, layers);
    const i64 total = m * p;
    const i64 head = head_to_aligned(J, total);
    const i64 nvec = (total - head) / W;
    const i64 tid = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    // Scalar head and tail of the flat array.
    const i64 tail0 = head + nvec * W;
    for (i64 t = tid; t < head + (total - tail0); t += stride) {
        const i64 f = t < head ? t : tail0 + (t - head);
        const i64 r = f / p;
        J[f] = jac_any(tab, count, r, r / C, f - r * p);
    }
    if (tid >= nvec) return;
    // Position of this thread's first packet and the step between its packets, as
    // (rows, columns) and (n, c) with r = n*C + c.
    const i64 f0 = head + tid * W;
    i64 r = f0 / p, e = f0 - r * p;
    i64 n = r / C, c = r - n * C;
    const i64 step = stride * W;
    const i64 dr = step / p, de = step - dr * p;
    const i64 dn = dr / C, dc = dr - dn * C;
    for (i64 q = tid; q < nvec; q += stride) {
        Pack<T> o;
        int l = 0;
        while (l + 1 < count && e >= tab[l + 1].w_off) ++l;
        const JacLayer<T>& L = tab[l];
        const int el = (int)(e - L.w_off);
        const int n_w = L.fan_out * L.fan_in;
        if (el + W <= n_w) {
            // Whole packet inside the weight block: one division, then walk (i, k).
            const int fi = L.fan_in;
            int i = el / fi;
            int k = el - i * fi;
            const T* a = L.a + n * fi;
            const T* g = L.g + r * L.fan_out;
            T gi = L.sw * g[i];
#pragma unroll
            for (int j = 0; j < W; ++j) {
                o.x[j] = gi * a[k];
                if (j + 1 < W && ++k == fi) {
                    k = 0;
                    ++i;
                    gi = L.sw * g[i];
                }
            }
        } else if (el >= n_w && e + W <= L.w_off + n_w + L.fan_out) {
            // Whole packet inside the bias block.
            const T* g = L.g + r * L.fan_out + (el - n_w);
#pragma unroll
            for (int j = 0; j < W; ++j) o.x[j] = L.sb * g[j];
        } else {
            // Crosses a block, layer or row boundary.
#pragma unroll
            for (int j = 0; j < W; ++j) {
                i64 ej = e + j, rj = r, nj = n;
                if (ej >= p) {
                    ej -= p;
                    ++rj;
                    nj = rj / C;
                }
                o.x[j] = jac_any(tab, count, rj, nj, ej);
            }
        }
        store_cs(reinterpret_cast<Pack<T>*>(J + head) + q, o);
        e += de;
        r += dr;
        n += dn;
        c += dc;
        if (e >= p) {
            e -= p;
            ++r;
            ++c;
        }
        if (c >= C) {
            c -= C;
            ++n;
        }
    }
}

#define ITLIN_JACOBIAN_ALL(T, SUF)                                                                \
    extern "C" __global__ void jacobian_all_##SUF(T* J, i64 m, i64 p, const JacLayers<T> layers) { \
        jacobian_all_impl<T>(J, m, p, layers);                                                    \
    }

ITLIN_JACOBIAN_ALL(float, f32)
ITLIN_JACOBIAN_ALL(double, f64)

// v4: weight stripes. For a layer whose fan_in is a multiple of W, the packets of one weight
// row i of one J row r that lie wholly inside the layer's weight block repeat the same
// pattern for every i: packet slot t (0 <= t < fan_in / W) of weight row i starts u + t*W
// elements after the row's start, u = (W - (r*p + w_off) % W) % W the distance from the
// block's start to its first 16-byte boundary, so its element j reads the fixed activation
// a[n, k_j] (k_j = (u + t*W + j) mod fan_in) and the signal of weight row i + d_j
// (d_j = (u + t*W + j) div fan_in, 0 or 1: the last slot spills into the next weight row
// when u > 0). A thread owns one slot: it loads its W activations once and then writes one
// 16-byte streaming store per weight row, with one (broadcast) load of g[i] (two for the
// spilling slot): no division, no layer search, no per-element loads in the loop.
// Block (tc * R threads): blockIdx.x = r * zs + iz (row r of J, range iz of `rows_per_block`
// weight rows, a multiple of R: consecutive blocks write consecutive memory, so the blocks
// resident at one time write a narrow window of J), blockIdx.y = chunk of tc slots; thread
// (slot t = y*tc + tid % tc, ii = tid / tc) writes weight rows i = i0 + ii, i0 + ii + R, ...
// The packets that are not wholly inside a weight block (around the biases, the layer and
// row boundaries, and the scalar tail of J) are written by `jacobian_gaps`. J must be
// 16-byte aligned (the host checks). Values are bit-identical to v1-v3: (s_w*g)*a, s_b*g.
// Weight rows per loop iteration of the stripes (their signal loads issued together). Run 8
// on an H100: with 16 rows per block, 4 per iteration wrote 2769 GB/s against 2545 for one
// (f32, N = 1024); plain stores instead of streaming ones were 3 % slower.
#define ITLIN_STRIPE_UNROLL 4

template <typename T, int U>
__device__ void jacobian_stripes_impl(T* __restrict__ J, i64 p, int C, const T* __restrict__ A,
                                      const T* __restrict__ G, i64 w_off, int fan_in,
                                      int fan_out, T sw, int tc, int rows_per_block, int zs) {
    constexpr int W = PackWidth<T>::value;
    const int tpr = fan_in / W;
    const int t = (int)blockIdx.y * tc + (int)(threadIdx.x % tc);
    const int R = (int)blockDim.x / tc;
    const int ii = (int)threadIdx.x / tc;
    if (t >= tpr) return;
    const i64 r = blockIdx.x / zs;
    const int iz = (int)(blockIdx.x - r * zs);
    const i64 n = r / C;
    const i64 base = r * p + w_off;
    const int u = (int)((W - base % W) % W);
    const T* a = A + n * fan_in;
    T av[W];
    bool next[W];
#pragma unroll
    for (int j = 0; j < W; ++j) {
        const int o = u + t * W + j;
        next[j] = o >= fan_in;
        av[j] = a[next[j] ? o - fan_in : o];
    }
    const bool spill = next[W - 1];
    const int i0 = iz * rows_per_block + ii;
    const i64 i_end = ((i64)iz + 1) * rows_per_block;
    int i1 = i_end > fan_out ? fan_out : (int)i_end;
    // The spilling slot's packet of the last weight row runs into the bias: not ours.
    if (spill && i1 > fan_out - 1) i1 = fan_out - 1;
    const T* g = G + r * fan_out;
    Pack<T>* dst = reinterpret_cast<Pack<T>*>(J + base + u) + (i64)i0 * tpr + t;
    const i64 step = (i64)R * tpr;
    // U weight rows per iteration: their signal loads are issued together, then U stores.
    int i = i0;
    for (; i + (U - 1) * R < i1; i += U * R, dst += U * step) {
        T g0[U], g1[U];
#pragma unroll
        for (int v = 0; v < U; ++v) {
            g0[v] = sw * g[i + v * R];
            g1[v] = spill ? sw * g[i + v * R + 1] : g0[v];
        }
#pragma unroll
        for (int v = 0; v < U; ++v) {
            Pack<T> o;
#pragma unroll
            for (int j = 0; j < W; ++j) o.x[j] = (next[j] ? g1[v] : g0[v]) * av[j];
            store_cs(dst + v * step, o);
        }
    }
    for (; i < i1; i += R, dst += step) {
        const T g0 = sw * g[i];
        const T g1 = spill ? sw * g[i + 1] : g0;
        Pack<T> o;
#pragma unroll
        for (int j = 0; j < W; ++j) o.x[j] = (next[j] ? g1 : g0) * av[j];
        store_cs(dst, o);
    }
}

// The complement of `jacobian_stripes`: for every row r and layer l, the packets that overlap
// the gap [r*p + w_off_l + fan_out_l*fan_in_l, r*p + w_off_{l+1}) between the layer's weight
// block and the next one (w_off_L = p: the next row's first layer), i.e. its biases plus the
// packets straddling a weight block's edge or a row boundary, element by element as `jac_any`.
// Packets past the end of J are written element-wise up to m*p. Grid-stride over rows.
template <typename T>
__device__ void jacobian_gaps_impl(T* __restrict__ J, i64 m, i64 p, const JacLayers<T>& layers) {
    constexpr int W = PackWidth<T>::value;
    __shared__ JacLayer<T> tab[ITLIN_JAC_MAX_LAYERS];
    const int count = layers.count;
    const i64 C = layers.C;
    jac_load_table(tab, layers);
    const i64 total = m * p;
    for (i64 r = blockIdx.x; r < m; r += gridDim.x) {
        // A gap packet starts after row r's first weight block (fan_out * fan_in >= W) and
        // ends before row r + 1's first packet boundary past its start: its elements lie in
        // row r or r + 1, so (row, n) come from these two, without a division per element.
        const i64 base = r * p, n0 = r / C, n1 = (r + 1) / C;
        for (int l = 0; l < count; ++l) {
            const JacLayer<T>& L = tab[l];
            const i64 gs = base + L.w_off + (i64)L.fan_out * L.fan_in;
            const i64 ge = base + (l + 1 < count ? tab[l + 1].w_off : p);
            const i64 q1 = (ge + W - 1) / W;
            for (i64 q = gs / W + threadIdx.x; q < q1; q += blockDim.x) {
                Pack<T> o;
#pragma unroll
                for (int j = 0; j < W; ++j) {
                    const i64 f = q * W + j;
                    const i64 e = f - base;
                    if (f >= total)
                        o.x[j] = T(0);
                    else if (e < p)
                        o.x[j] = jac_any(tab, count, r, n0, e);
                    else
                        o.x[j] = jac_any(tab, count, r + 1, n1, e - p);
                }
                if ((q + 1) * W <= total) {
                    store_cs(reinterpret_cast<Pack<T>*>(J) + q, o);
                } else {
#pragma unroll
                    for (int j = 0; j < W; ++j)
                        if (q * W + j < total) J[q * W + j] = o.x[j];
                }
            }
        }
    }
}

#define ITLIN_JACOBIAN_V4(T, SUF)                                                                 \
    extern "C" __global__ void jacobian_stripes_##SUF(T* J, i64 p, int C, const T* A,             \
                                                      const T* G, i64 w_off, int fan_in,          \
                                                      int fan_out, T sw, int tc,                  \
                                                      int rows_per_block, int zs) {               \
        jacobian_stripes_impl<T, ITLIN_STRIPE_UNROLL>(J, p, C, A, G, w_off, fan_in, fan_out, sw, \
                                                      tc, rows_per_block, zs);                    \
    }                                                                                             \
    extern "C" __global__ void jacobian_gaps_##SUF(T* J, i64 m, i64 p,                            \
                                                   const JacLayers<T> layers) {                   \
        jacobian_gaps_impl<T>(J, m, p, layers);                                                   \
    }

ITLIN_JACOBIAN_V4(float, f32)
ITLIN_JACOBIAN_V4(double, f64)

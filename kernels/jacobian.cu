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
        const i64 i = e / fan_in;
        return (sw * g[i]) * a[e - i * fan_in];
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

template <typename T>
__device__ void jacobian_all_impl(T* __restrict__ J, i64 m, i64 p, const JacLayers<T>& layers) {
    constexpr int W = PackWidth<T>::value;
    __shared__ JacLayer<T> tab[ITLIN_JAC_MAX_LAYERS];
    const int count = layers.count;
    const i64 C = layers.C;
    // Compile-time indices into the parameter struct (a run-time index would copy it to local
    // memory).
#pragma unroll
    for (int l = 0; l < ITLIN_JAC_MAX_LAYERS; ++l)
        if (threadIdx.x == 0 && l < count) tab[l] = layers.l[l];
    __syncthreads();
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

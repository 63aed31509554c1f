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

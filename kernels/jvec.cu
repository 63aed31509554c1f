// Products with an explicit Jacobian J (m x p, row-major, one output's gradient per row):
//   j_v:        out[i] = sum_k J[i,k] v[k]                 (one block per row, 16-byte loads)
//   jt_u_part:  ws[c, k] = sum_{i in chunk c} u[i] J[i,k]  (threads over columns, rows chunked)
//   sum_chunks: out[k] = sum_c ws[c, k]                    (fixed order: deterministic)
// J^T (J v) is j_v into a scratch vector then jt_u: a single pass is impossible once a row of J
// (P values) does not fit on chip, which it does not for the networks this crate targets.

template <typename T>
__device__ void j_v_impl(const T* __restrict__ J, const T* __restrict__ v, T* __restrict__ out,
                         i64 m, i64 p) {
    constexpr int W = PackWidth<T>::value;
    __shared__ T scratch[32];
    for (i64 r = blockIdx.x; r < m; r += gridDim.x) {
        const T* row = J + r * p;
        const i64 head = head_to_aligned(row, p);
        const i64 nvec = (p - head) / W;
        T acc0 = T(0), acc1 = T(0);
        for (i64 k = threadIdx.x; k < head; k += blockDim.x) acc0 += row[k] * v[k];
        const Pack<T>* body = reinterpret_cast<const Pack<T>*>(row + head);
        const T* vb = v + head;
        const i64 bd = blockDim.x;
        i64 q = threadIdx.x;
        // Two independent 16-byte loads in flight per thread and iteration.
        for (; q + bd < nvec; q += 2 * bd) {
            const Pack<T> a = body[q];
            const Pack<T> b = body[q + bd];
#pragma unroll
            for (int j = 0; j < W; ++j) {
                acc0 += a.x[j] * vb[q * W + j];
                acc1 += b.x[j] * vb[(q + bd) * W + j];
            }
        }
        if (q < nvec) {
            const Pack<T> a = body[q];
#pragma unroll
            for (int j = 0; j < W; ++j) acc0 += a.x[j] * vb[q * W + j];
        }
        for (i64 k = head + nvec * W + threadIdx.x; k < p; k += blockDim.x) acc1 += row[k] * v[k];
        const T s = block_sum(acc0 + acc1, scratch);
        if (threadIdx.x == 0) out[r] = s;
    }
}

// Columns [c0, c0 + W) per thread when `vec` (requires p % W == 0 and J 16-byte aligned),
// one column per thread otherwise; rows [chunk * rows_per, ...) of chunk blockIdx.y.
template <typename T>
__device__ void jt_u_part_impl(const T* __restrict__ J, const T* __restrict__ u,
                               T* __restrict__ ws, i64 m, i64 p, i64 rows_per, int vec) {
    constexpr int W = PackWidth<T>::value;
    for (i64 chunk = blockIdx.y; chunk * rows_per < m; chunk += gridDim.y) {
        const i64 r0 = chunk * rows_per;
        const i64 r1 = r0 + rows_per < m ? r0 + rows_per : m;
        T* dst = ws + chunk * p;
        if (vec) {
            const i64 nvec = p / W;
            for (i64 q = blockIdx.x * (i64)blockDim.x + threadIdx.x; q < nvec;
                 q += (i64)gridDim.x * blockDim.x) {
                T acc[W];
#pragma unroll
                for (int j = 0; j < W; ++j) acc[j] = T(0);
                i64 r = r0;
                for (; r + 1 < r1; r += 2) {
                    const Pack<T> a = reinterpret_cast<const Pack<T>*>(J + r * p)[q];
                    const Pack<T> b = reinterpret_cast<const Pack<T>*>(J + (r + 1) * p)[q];
                    const T ua = u[r], ub = u[r + 1];
#pragma unroll
                    for (int j = 0; j < W; ++j) acc[j] += ua * a.x[j] + ub * b.x[j];
                }
                if (r < r1) {
                    const Pack<T> a = reinterpret_cast<const Pack<T>*>(J + r * p)[q];
                    const T ua = u[r];
#pragma unroll
                    for (int j = 0; j < W; ++j) acc[j] += ua * a.x[j];
                }
                Pack<T> o;
#pragma unroll
                for (int j = 0; j < W; ++j) o.x[j] = acc[j];
                reinterpret_cast<Pack<T>*>(dst)[q] = o;
            }
        } else {
            for (i64 k = blockIdx.x * (i64)blockDim.x + threadIdx.x; k < p;
                 k += (i64)gridDim.x * blockDim.x) {
                T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
                i64 r = r0;
                for (; r + 3 < r1; r += 4) {
                    a0 += u[r] * J[r * p + k];
                    a1 += u[r + 1] * J[(r + 1) * p + k];
                    a2 += u[r + 2] * J[(r + 2) * p + k];
                    a3 += u[r + 3] * J[(r + 3) * p + k];
                }
                for (; r < r1; ++r) a0 += u[r] * J[r * p + k];
                dst[k] = (a0 + a1) + (a2 + a3);
            }
        }
    }
}

template <typename T>
__device__ void sum_chunks_impl(const T* __restrict__ ws, T* __restrict__ out, i64 chunks, i64 p) {
    for (i64 k = blockIdx.x * (i64)blockDim.x + threadIdx.x; k < p; k += (i64)gridDim.x * blockDim.x) {
        T s = T(0);
        for (i64 c = 0; c < chunks; ++c) s += ws[c * p + k];
        out[k] = s;
    }
}

#define ITLIN_JVEC(T, SUF)                                                                        \
    extern "C" __global__ void j_v_##SUF(const T* J, const T* v, T* out, i64 m, i64 p) {          \
        j_v_impl<T>(J, v, out, m, p);                                                             \
    }                                                                                             \
    extern "C" __global__ void jt_u_part_##SUF(const T* J, const T* u, T* ws, i64 m, i64 p,       \
                                               i64 rows_per, int vec) {                          \
        jt_u_part_impl<T>(J, u, ws, m, p, rows_per, vec);                                         \
    }                                                                                             \
    extern "C" __global__ void sum_chunks_##SUF(const T* ws, T* out, i64 chunks, i64 p) {         \
        sum_chunks_impl<T>(ws, out, chunks, p);                                                   \
    }

ITLIN_JVEC(float, f32)
ITLIN_JVEC(double, f64)

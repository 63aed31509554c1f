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

// Partial sums of J^T u over the rows [r0, r1), V consecutive columns per thread, loaded as one
// V*sizeof(T)-byte access (every row start must be aligned to that: p % V == 0 and J aligned).
// R rows (R independent loads, R*V*sizeof(T) bytes) in flight per thread and iteration, each
// row into its own accumulator, added in a fixed order at the end (deterministic). With ~1024
// resident threads per SM (the register budget), 32 bytes in flight per thread are needed to
// cover the memory latency at full bandwidth: R = 2 for 16-byte accesses, 4 for 8-byte ones.
template <typename T, int V, int R>
__device__ void jt_u_cols(const T* __restrict__ J, const T* __restrict__ u, T* __restrict__ dst,
                          i64 r0, i64 r1, i64 p) {
    const i64 nvec = p / V;
    for (i64 q = blockIdx.x * (i64)blockDim.x + threadIdx.x; q < nvec;
         q += (i64)gridDim.x * blockDim.x) {
        T acc[R][V];
#pragma unroll
        for (int i = 0; i < R; ++i)
#pragma unroll
            for (int j = 0; j < V; ++j) acc[i][j] = T(0);
        i64 r = r0;
        for (; r + (R - 1) < r1; r += R) {
            PackN<T, V> a[R];
#pragma unroll
            for (int i = 0; i < R; ++i)
                a[i] = reinterpret_cast<const PackN<T, V>*>(J + (r + i) * p)[q];
#pragma unroll
            for (int i = 0; i < R; ++i) {
                const T ui = u[r + i];
#pragma unroll
                for (int j = 0; j < V; ++j) acc[i][j] += ui * a[i].x[j];
            }
        }
        for (; r < r1; ++r) {
            const PackN<T, V> a = reinterpret_cast<const PackN<T, V>*>(J + r * p)[q];
            const T ua = u[r];
#pragma unroll
            for (int j = 0; j < V; ++j) acc[0][j] += ua * a.x[j];
        }
        PackN<T, V> o;
#pragma unroll
        for (int j = 0; j < V; ++j) {
            T t = acc[0][j];
#pragma unroll
            for (int i = 1; i < R; ++i) t += acc[i][j];
            o.x[j] = t;
        }
        reinterpret_cast<PackN<T, V>*>(dst)[q] = o;
    }
}

// One column per thread, four rows in flight: for any p and alignment.
template <typename T>
__device__ void jt_u_cols_scalar(const T* __restrict__ J, const T* __restrict__ u,
                                 T* __restrict__ dst, i64 r0, i64 r1, i64 p) {
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

// Rows [chunk * rows_per, ...) of chunk blockIdx.y (grid-stride over chunks) into
// ws[chunk, :]. `vec` is the number of columns per access: 16 / sizeof(T), 2 (f32 only) or 1;
// the host picks the widest one the row alignment allows. Rows in flight per thread: 2 with
// 16-byte accesses, 4 with 8-byte ones (32 bytes either way).
template <typename T>
__device__ void jt_u_part_impl(const T* __restrict__ J, const T* __restrict__ u,
                               T* __restrict__ ws, i64 m, i64 p, i64 rows_per, int vec) {
    constexpr int W = PackWidth<T>::value;
    for (i64 chunk = blockIdx.y; chunk * rows_per < m; chunk += gridDim.y) {
        const i64 r0 = chunk * rows_per;
        const i64 r1 = r0 + rows_per < m ? r0 + rows_per : m;
        T* dst = ws + chunk * p;
        if (vec == W) {
            jt_u_cols<T, W, 2>(J, u, dst, r0, r1, p);
        } else if (W == 4 && vec == 2) {
            jt_u_cols<T, (W == 4 ? 2 : 1), 4>(J, u, dst, r0, r1, p);
        } else {
            jt_u_cols_scalar<T>(J, u, dst, r0, r1, p);
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

#define ITLIN_JVEC(T, SUF, MINB)                                                                   \
    extern "C" __global__ void j_v_##SUF(const T* J, const T* v, T* out, i64 m, i64 p) {          \
        j_v_impl<T>(J, v, out, m, p);                                                             \
    }                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, MINB)                                        \
    jt_u_part_##SUF(const T* J, const T* u, T* ws, i64 m, i64 p, i64 rows_per, int vec) {          \
        jt_u_part_impl<T>(J, u, ws, m, p, rows_per, vec);                                         \
    }                                                                                             \
    extern "C" __global__ void sum_chunks_##SUF(const T* ws, T* out, i64 chunks, i64 p) {         \
        sum_chunks_impl<T>(ws, out, chunks, p);                                                   \
    }

// jt_u_part: at most 64 (f32) / 51 (f64) registers, so that 1024 / 1280 threads fit per SM.
ITLIN_JVEC(float, f32, 4)
ITLIN_JVEC(double, f64, 5)

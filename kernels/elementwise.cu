// Small element-wise and reduction kernels the device MLP needs between cuBLAS calls.
//   bias_mul:       z[r,j] = (z[r,j] + s_b*b[j]) * d[r,j]     (JVP tangent; b, d nullable)
//   mul_bcast_rows: G[r,i] *= d[r / C, i]                   (backprop signals, C rows share d)
//   col_sum:        out[j] = s * sum_r x[r,j]                (bias gradients; fixed order)
//   col_sum_part / col_sum_final: the same in two stages for many rows (fixed order too)
//   eye_rows:       G[r,c] = (r % C == c)                    (output layer signal)
//   axpby:          out[i] = alpha*x[i] + beta*y[i]          (residuals, negation)
//   add_diag:       A[i,i] += s                              (damping)
//   fill:           x[i] = v, 16-byte streaming stores       (the write-only bandwidth ceiling)

template <typename T>
__device__ void bias_mul_impl(T* z, const T* __restrict__ b, T sb, i64 rows, int cols,
                              const T* __restrict__ d) {
    const i64 n = rows * cols;
    for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < n;
         idx += (i64)gridDim.x * blockDim.x) {
        T v = z[idx];
        if (b) v += sb * b[idx % cols];
        if (d) v *= d[idx];
        z[idx] = v;
    }
}

template <typename T>
__device__ void mul_bcast_rows_impl(T* g, const T* __restrict__ d, i64 m, int h, int C) {
    const i64 n = m * h;
    for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < n;
         idx += (i64)gridDim.x * blockDim.x) {
        const i64 r = idx / h;
        const i64 i = idx - r * h;
        g[idx] *= d[(r / C) * h + i];
    }
}

// Block (32 x 8): threadIdx.x picks the column, threadIdx.y strides the rows; the 8 partial
// sums are added in a fixed order.
template <typename T>
__device__ void col_sum_impl(const T* __restrict__ x, i64 rows, int cols, T s, T* __restrict__ out) {
    __shared__ T part[8][33];
    for (i64 j0 = blockIdx.x * 32; j0 < cols; j0 += (i64)gridDim.x * 32) {
        const i64 j = j0 + threadIdx.x;
        T acc = T(0);
        if (j < cols)
            for (i64 r = threadIdx.y; r < rows; r += blockDim.y) acc += x[r * cols + j];
        part[threadIdx.y][threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.y == 0 && j < cols) {
            T t = T(0);
            for (int k = 0; k < (int)blockDim.y; ++k) t += part[k][threadIdx.x];
            out[j] = s * t;
        }
        __syncthreads();
    }
}

// Stage 1 of a column sum over many rows: warp w of the grid (over blockIdx.y and the block's
// warps) sums rows [w*rows_per, (w+1)*rows_per) of 32 consecutive columns (blockIdx.x picks
// them; lane = column, each row read as one coalesced 128-byte line) into ws[w, j]. Four
// accumulators in a fixed pattern keep four independent loads in flight.
template <typename T>
__device__ void col_sum_part_impl(const T* __restrict__ x, i64 rows, int cols, i64 rows_per,
                                  T* __restrict__ ws) {
    const int lane = threadIdx.x & 31;
    const i64 wpb = blockDim.x >> 5;
    const i64 parts = (rows + rows_per - 1) / rows_per;
    for (i64 j0 = blockIdx.x * (i64)32; j0 < cols; j0 += (i64)gridDim.x * 32) {
        const i64 j = j0 + lane;
        if (j >= cols) continue;
        for (i64 w = blockIdx.y * wpb + (threadIdx.x >> 5); w < parts; w += gridDim.y * wpb) {
            const i64 r0 = w * rows_per;
            const i64 r1 = r0 + rows_per < rows ? r0 + rows_per : rows;
            T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
            i64 r = r0;
            for (; r + 3 < r1; r += 4) {
                a0 += x[r * cols + j];
                a1 += x[(r + 1) * cols + j];
                a2 += x[(r + 2) * cols + j];
                a3 += x[(r + 3) * cols + j];
            }
            for (; r < r1; ++r) a0 += x[r * cols + j];
            ws[w * cols + j] = (a0 + a1) + (a2 + a3);
        }
    }
}

// Stage 2: out[j] = s * sum_w ws[w, j], parts in order.
template <typename T>
__device__ void col_sum_final_impl(const T* __restrict__ ws, i64 parts, int cols, T s,
                                   T* __restrict__ out) {
    for (i64 j = blockIdx.x * (i64)blockDim.x + threadIdx.x; j < cols;
         j += (i64)gridDim.x * blockDim.x) {
        T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
        i64 w = 0;
        for (; w + 3 < parts; w += 4) {
            a0 += ws[w * cols + j];
            a1 += ws[(w + 1) * cols + j];
            a2 += ws[(w + 2) * cols + j];
            a3 += ws[(w + 3) * cols + j];
        }
        for (; w < parts; ++w) a0 += ws[w * cols + j];
        out[j] = s * ((a0 + a1) + (a2 + a3));
    }
}

template <typename T>
__device__ void eye_rows_impl(T* g, i64 m, int C) {
    const i64 n = m * C;
    for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < n;
         idx += (i64)gridDim.x * blockDim.x) {
        const i64 r = idx / C;
        g[idx] = (r % C == idx - r * C) ? T(1) : T(0);
    }
}

template <typename T>
__device__ void axpby_impl(T alpha, const T* __restrict__ x, T beta, const T* __restrict__ y,
                           T* __restrict__ out, i64 n) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        out[i] = alpha * x[i] + beta * y[i];
}

template <typename T>
__device__ void add_diag_impl(T* a, i64 n, T s) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        a[i * n + i] += s;
}

template <typename T>
__device__ void fill_impl(T* x, i64 n, T v) {
    constexpr int W = PackWidth<T>::value;
    const i64 head = head_to_aligned(x, n);
    const i64 nvec = (n - head) / W;
    const i64 tail0 = head + nvec * W;
    const i64 tid = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 t = tid; t < head + (n - tail0); t += stride) x[t < head ? t : tail0 + (t - head)] = v;
    Pack<T> o;
#pragma unroll
    for (int j = 0; j < W; ++j) o.x[j] = v;
    Pack<T>* body = reinterpret_cast<Pack<T>*>(x + head);
    for (i64 q = tid; q < nvec; q += stride) store_cs(body + q, o);
}

#define ITLIN_ELEMENTWISE(T, SUF)                                                                 \
    extern "C" __global__ void bias_mul_##SUF(T* z, const T* b, T sb, i64 rows, int cols,         \
                                              const T* d) {                                       \
        bias_mul_impl<T>(z, b, sb, rows, cols, d);                                                \
    }                                                                                             \
    extern "C" __global__ void mul_bcast_rows_##SUF(T* g, const T* d, i64 m, int h, int C) {      \
        mul_bcast_rows_impl<T>(g, d, m, h, C);                                                    \
    }                                                                                             \
    extern "C" __global__ void col_sum_##SUF(const T* x, i64 rows, int cols, T s, T* out) {       \
        col_sum_impl<T>(x, rows, cols, s, out);                                                   \
    }                                                                                             \
    extern "C" __global__ void col_sum_part_##SUF(const T* x, i64 rows, int cols, i64 rows_per,  \
                                                  T* ws) {                                        \
        col_sum_part_impl<T>(x, rows, cols, rows_per, ws);                                        \
    }                                                                                             \
    extern "C" __global__ void col_sum_final_##SUF(const T* ws, i64 parts, int cols, T s,         \
                                                   T* out) {                                      \
        col_sum_final_impl<T>(ws, parts, cols, s, out);                                           \
    }                                                                                             \
    extern "C" __global__ void eye_rows_##SUF(T* g, i64 m, int C) { eye_rows_impl<T>(g, m, C); }  \
    extern "C" __global__ void axpby_##SUF(T alpha, const T* x, T beta, const T* y, T* out,       \
                                           i64 n) {                                               \
        axpby_impl<T>(alpha, x, beta, y, out, n);                                                 \
    }                                                                                             \
    extern "C" __global__ void add_diag_##SUF(T* a, i64 n, T s) { add_diag_impl<T>(a, n, s); }     \
    extern "C" __global__ void fill_##SUF(T* x, i64 n, T v) { fill_impl<T>(x, n, v); }

ITLIN_ELEMENTWISE(float, f32)
ITLIN_ELEMENTWISE(double, f64)

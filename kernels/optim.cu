// The device-resident first-order inner step of the trainer (src/kernels/cuda/resident.rs):
//   gather_rows:  out[i, j] = src[idx[i], j]                      (mini-batch rows of X or Y)
//   loss_grad:    g = ∂L/∂f of the mean loss over the B batch rows at f = f0 (+ jv):
//                 MSE  g[r, c] = ((f0 + jv) − y) · inv_b
//                 CE   g[r, c] = T(p_c − y_c) · inv_b,  p = softmax(f_r) in double
//                 (crate::loss::loss_gradient, the same arithmetic order)
//   nonfinite:    flag |= 1 if any x[i] is NaN or ±∞
//   sgd_update:   g ← g + wd θ (fma, as the CPU's axpy), then plain SGD θ ← θ − η g (fma),
//                 momentum v ← μ v + g, θ ← θ − η v, or Nesterov θ ← θ − η (g + μ v)
//   adam_update:  g ← g + wd θ, m ← β₁ m + (1 − β₁) g, v ← β₂ v + (1 − β₂) g g,
//                 θ ← θ − step · m / (√(v · inv_bc2) + ε)
//                 (src/train/optim.rs OptState::update: host-computed step = η / (1 − β₁ᵗ),
//                 inv_bc2 = 1 / (1 − β₂ᵗ); each operation rounded as there, no contraction)
// The two updates do nothing when *flag != 0, so a non-finite gradient never reaches θ.
// Every kernel is a grid-stride loop without barriers.

#ifdef ITLIN_HOST_EMULATION
template <typename T> inline T rn_mul(T a, T b) { return a * b; }
template <typename T> inline T rn_add(T a, T b) { return a + b; }
template <typename T> inline T rn_sub(T a, T b) { return a - b; }
template <typename T> inline T rn_div(T a, T b) { return a / b; }
template <typename T> inline T rn_sqrt(T a) { return std::sqrt(a); }
inline void optim_atomic_or(unsigned* p, unsigned v) { *p |= v; }
template <typename T> inline T optim_nan(T) { return T(NAN); }
#else
// Explicitly rounded operations: NVRTC's --fmad=true would otherwise contract a*b + c into
// one fma, which the CPU's scalar loops (Rust never contracts) do not do.
__device__ __forceinline__ float rn_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double rn_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float rn_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double rn_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float rn_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double rn_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float rn_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double rn_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float rn_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double rn_sqrt(double a) { return __dsqrt_rn(a); }
__device__ __forceinline__ void optim_atomic_or(unsigned* p, unsigned v) { atomicOr(p, v); }
__device__ __forceinline__ float optim_nan(float) { return __int_as_float(0x7fffffff); }
__device__ __forceinline__ double optim_nan(double) { return __longlong_as_double(0x7fffffffffffffffLL); }
#endif

// An index ≥ src_rows (a caller's bug) reads nothing and writes NaN, which the non-finite
// flag then reports: never a read outside `src`.
template <typename T>
__device__ void gather_rows_impl(const T* __restrict__ src, i64 src_rows,
                                 const unsigned* __restrict__ idx, i64 rows, int cols,
                                 T* __restrict__ out) {
    const i64 n = rows * cols;
    for (i64 k = blockIdx.x * (i64)blockDim.x + threadIdx.x; k < n;
         k += (i64)gridDim.x * blockDim.x) {
        const i64 r = k / cols;
        const i64 j = k - r * cols;
        const i64 s = (i64)idx[r];
        out[k] = s < src_rows ? src[s * cols + j] : optim_nan(T(0));
    }
}

// kind 0: MSE, one element per iteration; kind 1: softmax cross-entropy, one row per
// iteration (C is small: three passes over the row, softmax in double as crate::loss).
template <typename T>
__device__ void loss_grad_impl(const T* __restrict__ f0, const T* __restrict__ jv,
                               const T* __restrict__ y, i64 rows, int C, int kind, T inv_b,
                               T* __restrict__ g) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    const i64 first = blockIdx.x * (i64)blockDim.x + threadIdx.x;
    if (kind == 0) {
        const i64 n = rows * C;
        for (i64 k = first; k < n; k += stride) {
            const T f = jv ? rn_add(f0[k], jv[k]) : f0[k];
            g[k] = rn_mul(rn_sub(f, y[k]), inv_b);
        }
        return;
    }
    for (i64 r = first; r < rows; r += stride) {
        const T* fr = f0 + r * C;
        const T* jr = jv ? jv + r * C : nullptr;
        double mx = -1.7976931348623157e308;  // NaN entries are skipped, as f64::max does
        for (int c = 0; c < C; ++c) {
            const double f = (double)(jr ? rn_add(fr[c], jr[c]) : fr[c]);
            mx = f > mx ? f : mx;
        }
        double s = 0.0;
        for (int c = 0; c < C; ++c) {
            const double f = (double)(jr ? rn_add(fr[c], jr[c]) : fr[c]);
            s = rn_add(s, exp(rn_sub(f, mx)));
        }
        for (int c = 0; c < C; ++c) {
            const double f = (double)(jr ? rn_add(fr[c], jr[c]) : fr[c]);
            const double p = rn_div(exp(rn_sub(f, mx)), s);
            g[r * C + c] = rn_mul((T)rn_sub(p, (double)y[r * C + c]), inv_b);
        }
    }
}

template <typename T>
__device__ void nonfinite_impl(const T* __restrict__ x, i64 n, unsigned* flag) {
    bool bad = false;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x)
        bad |= !isfinite(x[i]);
    if (bad) optim_atomic_or(flag, 1u);
}

// mode 0: plain SGD, 1: momentum, 2: Nesterov. `m` (the velocity) is unused in mode 0.
template <typename T>
__device__ void sgd_update_impl(T* __restrict__ theta, const T* __restrict__ grad,
                                T* __restrict__ m, i64 n, int mode, int use_wd, T wd, T eta,
                                T mu, const unsigned* __restrict__ flag) {
    if (*flag) return;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        T g = grad[i];
        const T th = theta[i];
        if (use_wd) g = fma(wd, th, g);
        if (mode == 0) {
            theta[i] = fma(-eta, g, th);
        } else {
            const T v = rn_add(rn_mul(mu, m[i]), g);
            m[i] = v;
            const T d = mode == 2 ? rn_add(g, rn_mul(mu, v)) : v;
            theta[i] = rn_sub(th, rn_mul(eta, d));
        }
    }
}

template <typename T>
__device__ void adam_update_impl(T* __restrict__ theta, const T* __restrict__ grad,
                                 T* __restrict__ m, T* __restrict__ v, i64 n, int use_wd, T wd,
                                 T b1, T b2, T one_b1, T one_b2, T step, T inv_bc2, T eps,
                                 const unsigned* __restrict__ flag) {
    if (*flag) return;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        T g = grad[i];
        const T th = theta[i];
        if (use_wd) g = fma(wd, th, g);
        const T mi = rn_add(rn_mul(b1, m[i]), rn_mul(one_b1, g));
        const T vi = rn_add(rn_mul(b2, v[i]), rn_mul(rn_mul(one_b2, g), g));
        m[i] = mi;
        v[i] = vi;
        const T denom = rn_add(rn_sqrt(rn_mul(vi, inv_bc2)), eps);
        theta[i] = rn_sub(th, rn_div(rn_mul(step, mi), denom));
    }
}

#define ITLIN_OPTIM(T, SUF)                                                                       \
    extern "C" __global__ void gather_rows_##SUF(const T* src, i64 src_rows, const unsigned* idx, \
                                                 i64 rows, int cols, T* out) {                    \
        gather_rows_impl<T>(src, src_rows, idx, rows, cols, out);                                 \
    }                                                                                             \
    extern "C" __global__ void loss_grad_##SUF(const T* f0, const T* jv, const T* y, i64 rows,   \
                                               int C, int kind, T inv_b, T* g) {                  \
        loss_grad_impl<T>(f0, jv, y, rows, C, kind, inv_b, g);                                    \
    }                                                                                             \
    extern "C" __global__ void nonfinite_##SUF(const T* x, i64 n, unsigned* flag) {              \
        nonfinite_impl<T>(x, n, flag);                                                            \
    }                                                                                             \
    extern "C" __global__ void sgd_update_##SUF(T* theta, const T* grad, T* m, i64 n, int mode,  \
                                                int use_wd, T wd, T eta, T mu,                    \
                                                const unsigned* flag) {                           \
        sgd_update_impl<T>(theta, grad, m, n, mode, use_wd, wd, eta, mu, flag);                   \
    }                                                                                             \
    extern "C" __global__ void adam_update_##SUF(T* theta, const T* grad, T* m, T* v, i64 n,     \
                                                 int use_wd, T wd, T b1, T b2, T one_b1,          \
                                                 T one_b2, T step, T inv_bc2, T eps,              \
                                                 const unsigned* flag) {                          \
        adam_update_impl<T>(theta, grad, m, v, n, use_wd, wd, b1, b2, one_b1, one_b2, step,       \
                            inv_bc2, eps, flag);                                                  \
    }

ITLIN_OPTIM(float, f32)
ITLIN_OPTIM(double, f64)

// The hidden-layer activations of src/model/activation.rs with their derivatives, fused with
// the bias of the layer:  v = z + s_b * b[col];  a = phi(v);  d = phi'(v).
// kind: 0 identity, 1 relu (phi'(0) = 0), 2 tanh, 3 gelu (exact, erf), 4 softplus.
// `b` and `d` may be null; `a` may alias `z` (each element is read before it is written).

template <typename T>
__device__ __forceinline__ void act_eval(int kind, T z, T& a, T& d) {
    switch (kind) {
        case 1:
            if (z > T(0)) { a = z; d = T(1); } else { a = T(0); d = T(0); }
            break;
        case 2: {
            const T t = tanh(z);
            a = t;
            d = T(1) - t * t;
            break;
        }
        case 3: {
            const T cdf = T(0.5) * (T(1) + erf(z * T(0.70710678118654752440)));
            const T pdf = T(0.39894228040143267794) * exp(-(T(0.5) * z * z));
            a = z * cdf;
            d = cdf + z * pdf;
            break;
        }
        case 4: {
            const T e = exp(-fabs(z));
            a = (z > T(0) ? z : T(0)) + log1p(e);
            d = z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
            break;
        }
        default:
            a = z;
            d = T(1);
    }
}

template <typename T>
__device__ void bias_act_impl(const T* z, const T* __restrict__ b, T sb, i64 rows, int cols,
                              int kind, T* a, T* __restrict__ d) {
    const i64 n = rows * cols;
    for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < n;
         idx += (i64)gridDim.x * blockDim.x) {
        T v = z[idx];
        if (b) v += sb * b[idx % cols];
        T av, dv;
        act_eval(kind, v, av, dv);
        a[idx] = av;
        if (d) d[idx] = dv;
    }
}

#define ITLIN_ACTIVATION(T, SUF)                                                                  \
    extern "C" __global__ void bias_act_##SUF(const T* z, const T* b, T sb, i64 rows, int cols,   \
                                              int kind, T* a, T* d) {                             \
        bias_act_impl<T>(z, b, sb, rows, cols, kind, a, d);                                       \
    }

ITLIN_ACTIVATION(float, f32)
ITLIN_ACTIVATION(double, f64)

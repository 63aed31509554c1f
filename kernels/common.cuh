// Shared prelude, prepended by the Rust side to every kernel family before NVRTC compiles it
// (NVRTC has no file system: the families cannot #include each other).
// No standard headers are needed: NVRTC provides the CUDA math functions (erf, tanh, exp, ...).

typedef long long i64;
typedef unsigned long long u64;

// A 16-byte packet of T (float4 / double2 shaped), so that loads and stores compile to
// ld.global.v4.f32 / v2.f64 when the address is 16-byte aligned.
template <typename T>
struct __align__(16) Pack {
    T x[16 / sizeof(T)];
};

// V consecutive elements of T loaded or stored as one access of V*sizeof(T) bytes
// (8 or 16), for rows whose alignment allows no wider access.
template <typename T, int V>
struct __align__(V * sizeof(T)) PackN {
    T x[V];
};

// Elements of T in one 16-byte packet.
template <typename T>
struct PackWidth {
    static constexpr int value = 16 / sizeof(T);
};

// Number of leading elements of `ptr` before the first 16-byte boundary (at most `len`).
template <typename T>
__device__ __forceinline__ i64 head_to_aligned(const T* ptr, i64 len) {
    const i64 bytes = (i64)((16 - ((u64)ptr & 15)) & 15);
    const i64 h = bytes / (i64)sizeof(T);
    return h < len ? h : len;
}

// Sum of `v` over the thread block (blockDim.x a multiple of 32, at most 1024). Every thread
// gets the result. `scratch` must hold 32 values; the function synchronises before returning
// so that the scratch can be reused by the next call.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const int nwarps = (blockDim.x + 31) >> 5;
    T s = lane < nwarps ? scratch[lane] : T(0);
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) scratch[0] = s;
    }
    __syncthreads();
    s = scratch[0];
    __syncthreads();
    return s;
}

// Host emulation of the CUDA kernels that need no cooperation inside a block (everything but
// j_v's and col_sum's block reductions): each thread of the grid runs in turn, sequentially,
// which is exact for grid-stride kernels without barriers. Checks indexing, alignment peeling
// (misaligned J), grid-stride coverage (tiny grids) and "every element written, nothing
// outside" against direct formulas. Built and run by .ci/cuda-ptx.sh when a C++17 compiler
// is present:  c++ -std=c++17 -O1 -I kernels .ci/cuda-emulate.cpp -o emu && ./emu
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <vector>
#include <random>
using namespace std;
#define __global__
#define __device__
#define __forceinline__ inline
#define __align__(n) alignas(n)
#define __restrict__ __restrict
#define __shared__ static
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;
inline void __syncthreads() {}
template <class T> T __shfl_down_sync(unsigned, T v, int) { return v; }
#include "common.cuh"
#include "jvec.cu"
#include "jacobian.cu"
#include "activation.cu"
#include "elementwise.cu"
#include "ntk.cu"

template <class F> void launch(unsigned gx, unsigned gy, unsigned bx, F f) {
    gridDim.x = gx; gridDim.y = gy; blockDim.x = bx; blockDim.y = 1;
    for (unsigned y = 0; y < gy; ++y) for (unsigned x = 0; x < gx; ++x)
        for (unsigned t = 0; t < bx; ++t) { blockIdx.x = x; blockIdx.y = y; threadIdx.x = t; threadIdx.y = 0; f(); }
}
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { ++fails; if (fails < 20) { printf(__VA_ARGS__); printf("\n"); } } } while (0)

template <class T> void test_jac(int m_n, int C, int fi, int fo, long long w_off, long long extra, int off, unsigned gx, unsigned gy) {
    long long m = (long long)m_n * C, p = w_off + (long long)fo * (fi + 1) + extra;
    mt19937 r(1);
    uniform_real_distribution<double> U(-1, 1);
    vector<T> A(m_n * fi), G(m * fo);
    for (auto& a : A) a = U(r);
    for (auto& g : G) g = U(r);
    vector<T> Jbuf(m * p + 8, NAN);
    T* J = Jbuf.data() + off;
    T sw = 0.7, sb = 1.3;
    launch(gx, gy, 32, [&] { jacobian_layer_impl<T>(J, m, p, C, A.data(), G.data(), fi, fo, w_off, sw, sb); });
    for (long long rr = 0; rr < m; ++rr)
        for (long long k = 0; k < p; ++k) {
            T got = J[rr * p + k];
            long long e = k - w_off;
            if (e < 0 || e >= (long long)fo * (fi + 1)) { CHECK(std::isnan(got), "jac wrote outside r=%lld k=%lld", rr, k); continue; }
            T want = e < (long long)fo * fi ? (sw * G[rr * fo + e / fi]) * A[(rr / C) * fi + e % fi] : sb * G[rr * fo + e - (long long)fo * fi];
            CHECK(got == want, "jac r=%lld k=%lld got %g want %g", rr, k, (double)got, (double)want);
        }
}

template <class T> void test_jtu(long long m, long long p, long long rows_per, int vec, unsigned gx) {
    mt19937 r(2); uniform_real_distribution<double> U(-1, 1);
    vector<T> J(m * p), u(m);
    for (auto& x : J) x = U(r);
    for (auto& x : u) x = U(r);
    long long chunks = (m + rows_per - 1) / rows_per;
    vector<T> ws(chunks * p, NAN), out(p, NAN);
    launch(gx, (unsigned)chunks, 32, [&] { jt_u_part_impl<T>(J.data(), u.data(), ws.data(), m, p, rows_per, vec); });
    launch(3, 1, 32, [&] { sum_chunks_impl<T>(ws.data(), out.data(), chunks, p); });
    for (long long k = 0; k < p; ++k) {
        double want = 0; for (long long i = 0; i < m; ++i) want += (double)u[i] * J[i * p + k];
        CHECK(fabs(out[k] - want) <= 1e-4 * (1 + fabs(want)), "jtu k=%lld got %g want %g (vec=%d)", k, (double)out[k], want, vec);
    }
}

template <class T> void test_ntk(int n, int C) {
    long long m = (long long)n * C;
    mt19937 r(3); uniform_real_distribution<double> U(-1, 1);
    vector<T> gg(m * m), aa(n * n), th(m * m, NAN);
    for (auto& x : gg) x = U(r);
    for (auto& x : aa) x = U(r);
    launch(2, 3, 32, [&] { ntk_layer_impl<T>(th.data(), gg.data(), aa.data(), m, C, T(2), T(0.5), 0); });
    launch(2, 3, 32, [&] { ntk_layer_impl<T>(th.data(), nullptr, aa.data(), m, C, T(3), T(0.25), 1); });
    for (long long i = 0; i < m; ++i) for (long long j = 0; j < m; ++j) {
        double a = aa[(i / C) * n + j / C];
        double want = gg[i * m + j] * (2 * a + 0.5) + ((i % C) == (j % C) ? 1.0 : 0.0) * (3 * a + 0.25);
        CHECK(fabs(th[i * m + j] - want) < 1e-5 * (1 + fabs(want)), "ntk %lld %lld", i, j);
    }
}

template <class T> void test_elem() {
    long long rows = 5; int cols = 7, C = 3;
    vector<T> z(rows * cols), b(cols), d(rows * cols), a(rows * cols, NAN), dd(rows * cols, NAN);
    mt19937 r(4); uniform_real_distribution<double> U(-2, 2);
    for (auto& x : z) x = U(r);
    for (auto& x : b) x = U(r);
    for (auto& x : d) x = U(r);
    for (int kind = 0; kind < 5; ++kind) {
        launch(2, 1, 32, [&] { bias_act_impl<T>(z.data(), b.data(), T(0.5), rows, cols, kind, a.data(), dd.data()); });
        for (long long i = 0; i < rows * cols; ++i) CHECK(!std::isnan(a[i]) && !std::isnan(dd[i]), "bias_act kind %d", kind);
    }
    vector<T> zz = z;
    launch(1, 1, 32, [&] { bias_mul_impl<T>(zz.data(), b.data(), T(0.5), rows, cols, d.data()); });
    for (long long i = 0; i < rows * cols; ++i) CHECK(zz[i] == (z[i] + T(0.5) * b[i % cols]) * d[i], "bias_mul %lld", i);
    long long m = rows * C; vector<T> g(m * cols); for (auto& x : g) x = U(r);
    vector<T> g2 = g;
    launch(1, 1, 32, [&] { mul_bcast_rows_impl<T>(g2.data(), d.data(), m, cols, C); });
    for (long long i = 0; i < m * cols; ++i) CHECK(g2[i] == g[i] * d[(i / cols / C) * cols + i % cols], "bcast %lld", i);
    vector<T> e(m * C, NAN);
    launch(1, 1, 32, [&] { eye_rows_impl<T>(e.data(), m, C); });
    for (long long i = 0; i < m; ++i) for (int c = 0; c < C; ++c) CHECK(e[i * C + c] == (i % C == c ? 1 : 0), "eye");
    vector<T> sq(49, 1);
    launch(1, 1, 32, [&] { add_diag_impl<T>(sq.data(), 7, T(2)); });
    for (int i = 0; i < 49; ++i) CHECK(sq[i] == (i % 8 == 0 ? 3 : 1), "diag %d", i);
}

int main() {
    // misaligned J (off), layer not at 0, extra columns after, few threads (grid-stride).
    for (int off = 0; off < 4; ++off) {
        test_jac<float>(3, 3, 7, 5, 2 + off, 5, off, 2, 2);
        test_jac<double>(3, 3, 7, 5, 1 + off, 3, off, 1, 4);
        test_jac<float>(2, 2, 1, 3, 0, 0, off, 1, 1);
        test_jac<float>(2, 10, 16, 4, 4, 1, off, 3, 5);
    }
    test_jtu<float>(37, 13, 5, 1, 1);   // one column per thread
    test_jtu<float>(37, 16, 5, 4, 1);   // 16-byte accesses
    test_jtu<float>(37, 18, 6, 2, 2);   // 8-byte accesses (p % 4 == 2)
    test_jtu<double>(40, 18, 7, 2, 2);  // 16-byte accesses
    test_jtu<double>(40, 17, 40, 1, 1);
    test_ntk<float>(3, 2);
    test_ntk<double>(4, 3);
    test_elem<float>();
    test_elem<double>();
    printf("%s: %d failures\n", fails ? "FAIL" : "OK", fails);
    return fails != 0;
}

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
#define __launch_bounds__(...)
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;
inline void __syncthreads() {}
template <class T> T __shfl_down_sync(unsigned, T v, int) { return v; }
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
template <class V> V __ldcs(const V* p) { return *p; }
template <class V> void __stcs(V* p, V v) { *p = v; }
#define ITLIN_HOST_EMULATION 1
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

// All layers in one launch (v2): a 784-128-128-10-like tiling scaled down, p odd in packets.
template <class T> void test_jac_all(int n, int C, vector<int> widths, int off, unsigned gx, unsigned bx) {
    long long m = (long long)n * C, p = 0;
    int L = (int)widths.size() - 1;
    mt19937 r(5);
    uniform_real_distribution<double> U(-1, 1);
    vector<vector<T>> A(L), G(L);
    JacLayers<T> tab{};
    tab.count = L; tab.C = C;
    for (int l = 0; l < L; ++l) {
        int fi = widths[l], fo = widths[l + 1];
        A[l].resize((size_t)n * fi); G[l].resize((size_t)m * fo);
        for (auto& a : A[l]) a = U(r);
        for (auto& g : G[l]) g = U(r);
        tab.l[l] = JacLayer<T>{A[l].data(), G[l].data(), p, fi, fo, T(0.5 + l), T(1.5 - 0.25 * l)};
        p += (long long)fo * (fi + 1);
    }
    vector<T> Jbuf(m * p + 8, NAN);
    T* J = Jbuf.data() + off;
    launch(gx, 1, bx, [&] { jacobian_all_impl<T>(J, m, p, tab); });
    for (int k = 0; k < off; ++k) CHECK(std::isnan(Jbuf[k]), "jac_all wrote before J");
    for (long long k = m * p + off; k < (long long)Jbuf.size(); ++k) CHECK(std::isnan(Jbuf[k]), "jac_all wrote after J");
    for (long long rr = 0; rr < m; ++rr)
        for (long long k = 0; k < p; ++k) {
            int l = 0;
            while (l + 1 < L && k >= tab.l[l + 1].w_off) ++l;
            const JacLayer<T>& Ly = tab.l[l];
            long long e = k - Ly.w_off, nw = (long long)Ly.fan_out * Ly.fan_in;
            T want = e < nw ? (Ly.sw * G[l][rr * Ly.fan_out + e / Ly.fan_in]) * A[l][(rr / C) * Ly.fan_in + e % Ly.fan_in]
                            : Ly.sb * G[l][rr * Ly.fan_out + e - nw];
            T got = J[rr * p + k];
            CHECK(got == want, "jac_all r=%lld k=%lld got %g want %g (off %d, grid %u x %u)", rr, k, (double)got, (double)want, off, gx, bx);
        }
}

template <class T> void test_col_sum(long long rows, int cols, long long rows_per, unsigned gy) {
    mt19937 r(6); uniform_real_distribution<double> U(-1, 1);
    vector<T> x(rows * cols);
    for (auto& v : x) v = U(r);
    long long parts = (rows + rows_per - 1) / rows_per;
    vector<T> ws(parts * cols, NAN), out(cols, NAN);
    launch((cols + 31) / 32, gy, 64, [&] { col_sum_part_impl<T>(x.data(), rows, cols, rows_per, ws.data()); });
    launch(1, 1, 32, [&] { col_sum_final_impl<T>(ws.data(), parts, cols, T(0.5), out.data()); });
    for (int j = 0; j < cols; ++j) {
        double want = 0; for (long long i = 0; i < rows; ++i) want += x[i * cols + j];
        want *= 0.5;
        CHECK(fabs(out[j] - want) <= 1e-5 * (1 + fabs(want)), "col_sum j=%d got %g want %g", j, (double)out[j], want);
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

// Fused assembly: Theta = Theta*(2AAt+0.5) + GG*(3AAg+0.25) + [eye]*(AAe-1), from a Theta
// holding a Gram (tmode 2), then tmode 1 and 0 with parts dropped; misaligned GG (shift).
template <class T> void test_ntk_fused(int n, int C, int shift) {
    long long m = (long long)n * C;
    mt19937 r(7); uniform_real_distribution<double> U(-1, 1);
    vector<T> g0(m * m), ggb(m * m + 4), at(n * n), ag(n * n), ae(n * n);
    for (auto& x : g0) x = U(r);
    for (auto& x : ggb) x = U(r);
    for (auto& x : at) x = U(r);
    for (auto& x : ag) x = U(r);
    for (auto& x : ae) x = U(r);
    const T* gg = ggb.data() + shift;
    for (int tmode = 0; tmode < 3; ++tmode)
        for (int parts = 0; parts < 4; ++parts) {
            bool use_g = parts & 1, use_e = parts & 2;
            vector<T> th = g0;
            if (tmode == 0) for (auto& x : th) x = NAN;
            launch(2, 3, 32, [&] {
                ntk_fused_impl<T>(th.data(), use_g ? gg : nullptr, at.data(), ag.data(), use_e ? ae.data() : nullptr, m, C,
                                  T(2), T(0.5), T(3), T(0.25), T(1), T(-1), tmode);
            });
            for (long long i = 0; i < m; ++i) for (long long j = 0; j < m; ++j) {
                long long a = (i / C) * n + j / C;
                double want = tmode == 0 ? 0.0 : (tmode == 2 ? g0[i * m + j] * (2 * at[a] + 0.5) : g0[i * m + j]);
                if (use_g) want += gg[i * m + j] * (3 * ag[a] + 0.25);
                if (use_e && i % C == j % C) want += ae[a] - 1;
                CHECK(fabs(th[i * m + j] - want) < 1e-5 * (1 + fabs(want)), "ntk_fused %lld %lld tmode %d parts %d shift %d got %g want %g",
                      i, j, tmode, parts, shift, (double)th[i * m + j], want);
            }
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
    // fill: misaligned starts, lengths below and above a packet, few threads (grid-stride)
    for (int off = 0; off < 3; ++off)
        for (long long n : {0LL, 1LL, 3LL, 17LL, 70LL}) {
            vector<T> f(n + 8, NAN);
            launch(2, 1, 8, [&] { fill_impl<T>(f.data() + off, n, T(2.5)); });
            for (long long i = 0; i < (long long)f.size(); ++i) {
                bool inside = i >= off && i < off + n;
                CHECK(inside ? f[i] == T(2.5) : std::isnan(f[i]), "fill off=%d n=%lld i=%lld", off, n, i);
            }
        }
}

// v4 (weight stripes + gaps): J 16-byte aligned (shift = whole packets before it). The stripes
// of every layer and the gaps are run into two separate NaN-filled copies: the elements each
// writes must be disjoint, together cover J exactly, and equal the direct formula bit for bit.
// `cap` bounds the slots per block (forces several column chunks), `rpb_groups` the weight-row
// groups per block (forces a split over blockIdx.z).
template <class T> void test_jac_stripes(int n, int C, vector<int> widths, int shift, int cap, int rpb_groups, unsigned gap_blocks, int rmin = 1, int unroll = 0) {
    constexpr int W = PackWidth<T>::value;
    long long m = (long long)n * C, p = 0;
    int L = (int)widths.size() - 1;
    mt19937 r(13);
    uniform_real_distribution<double> U(-1, 1);
    vector<vector<T>> A(L), G(L);
    JacLayers<T> tab{};
    tab.count = L; tab.C = C;
    for (int l = 0; l < L; ++l) {
        int fi = widths[l], fo = widths[l + 1];
        A[l].resize((size_t)n * fi); G[l].resize((size_t)m * fo);
        for (auto& a : A[l]) a = U(r);
        for (auto& g : G[l]) g = U(r);
        tab.l[l] = JacLayer<T>{A[l].data(), G[l].data(), p, fi, fo, T(0.5 + l), T(1.5 - 0.25 * l)};
        p += (long long)fo * (fi + 1);
    }
    const long long pad = 2 * W;
    vector<T> Sbuf(m * p + 2 * pad, NAN), Gbuf(m * p + 2 * pad, NAN);
    T* JS = Sbuf.data() + shift * W;
    T* JG = Gbuf.data() + shift * W;
    CHECK(((uintptr_t)JS & 15) == 0 && ((uintptr_t)JG & 15) == 0, "v4 test: J not 16-byte aligned");
    for (int l = 0; l < L; ++l) {
        const JacLayer<T>& Ly = tab.l[l];
        const int tpr = Ly.fan_in / W;
        const int tc = tpr < cap ? tpr : cap;
        const int chunks = (tpr + tc - 1) / tc;
        const int R0 = tc < 256 ? 256 / tc : 1;
        const int R = rmin < 0 ? -rmin : (R0 > rmin ? R0 : rmin);  // rmin < 0: exactly -rmin
        const int groups = (Ly.fan_out + R - 1) / R;
        const int g_per = rpb_groups < groups ? rpb_groups : groups;
        const int rpb = g_per * R;
        const int zs = (Ly.fan_out + rpb - 1) / rpb;
        gridDim.x = (unsigned)(m * zs); gridDim.y = chunks; blockDim.x = tc * R;
        for (unsigned y = 0; y < (unsigned)chunks; ++y)
            for (unsigned x = 0; x < gridDim.x; ++x)
                for (unsigned t = 0; t < blockDim.x; ++t) {
                    blockIdx.x = x; blockIdx.y = y; threadIdx.x = t;
                    if (unroll == 1) jacobian_stripes_impl<T, 1>(JS, p, C, Ly.a, Ly.g, Ly.w_off, Ly.fan_in, Ly.fan_out, Ly.sw, tc, rpb, zs);
                    else jacobian_stripes_impl<T, ITLIN_STRIPE_UNROLL>(JS, p, C, Ly.a, Ly.g, Ly.w_off, Ly.fan_in, Ly.fan_out, Ly.sw, tc, rpb, zs);
                }
    }
    gridDim.y = gridDim.z = 1; blockIdx.y = blockIdx.z = 0;
    launch(gap_blocks, 1, 32, [&] { jacobian_gaps_impl<T>(JG, m, p, tab); });
    for (long long k = 0; k < (long long)Sbuf.size(); ++k) {
        const long long f = k - shift * W;
        if (f >= 0 && f < m * p) continue;
        CHECK(std::isnan(Sbuf[k]) && std::isnan(Gbuf[k]), "jac_stripes wrote outside J at %lld", f);
    }
    long long n_stripes = 0;
    for (long long rr = 0; rr < m; ++rr)
        for (long long k = 0; k < p; ++k) {
            int l = 0;
            while (l + 1 < L && k >= tab.l[l + 1].w_off) ++l;
            const JacLayer<T>& Ly = tab.l[l];
            long long e = k - Ly.w_off, nw = (long long)Ly.fan_out * Ly.fan_in;
            T want = e < nw ? (Ly.sw * G[l][rr * Ly.fan_out + e / Ly.fan_in]) * A[l][(rr / C) * Ly.fan_in + e % Ly.fan_in]
                            : Ly.sb * G[l][rr * Ly.fan_out + e - nw];
            T s = JS[rr * p + k], g = JG[rr * p + k];
            n_stripes += !std::isnan(s);
            CHECK(std::isnan(s) != std::isnan(g), "jac_stripes r=%lld k=%lld written by %s", rr, k, std::isnan(s) ? "neither kernel" : "both kernels");
            T got = std::isnan(s) ? g : s;
            CHECK(got == want, "jac_stripes r=%lld k=%lld got %g want %g (shift %d, cap %d)", rr, k, (double)got, (double)want, shift, cap);
        }
    CHECK(n_stripes > 0 || m * p < 4 * W, "jac_stripes: the stripes wrote nothing");
}

// ---- kernels/optim.cu: the device-resident first-order inner step ----------------------------
#include "optim.cu"

// Rows gathered by index (repeats, an out-of-range index -> NaN row), odd sizes, grids smaller
// and larger than the work; guard elements around the output stay untouched.
template <class T> void test_optim_gather(long long src_rows, int cols, vector<unsigned> idx, unsigned gx, unsigned bx) {
    mt19937 r(21); uniform_real_distribution<double> U(-1, 1);
    vector<T> src(src_rows * cols);
    for (auto& v : src) v = U(r);
    const long long b = (long long)idx.size();
    vector<T> buf(b * cols + 6, T(-7));
    T* out = buf.data() + 3;
    launch(gx, 1, bx, [&] { gather_rows_impl<T>(src.data(), src_rows, idx.data(), b, cols, out); });
    for (int k = 0; k < 3; ++k) CHECK(buf[k] == T(-7) && buf[buf.size() - 1 - k] == T(-7), "gather wrote outside");
    for (long long i = 0; i < b; ++i)
        for (int j = 0; j < cols; ++j) {
            T got = out[i * cols + j];
            if (idx[i] >= src_rows) { CHECK(std::isnan(got), "gather: bad index %u must give NaN", idx[i]); continue; }
            CHECK(got == src[idx[i] * cols + j], "gather i=%lld j=%d got %g", i, j, (double)got);
        }
}

// Loss gradients against the formulas: MSE (f0 + jv - y)/B, CE softmax(f0 + jv) - y over B,
// the softmax by log-sum-exp (another formula than the kernel's), with and without jv.
template <class T> void test_optim_loss_grad(long long rows, int C, unsigned gx, unsigned bx) {
    mt19937 r(22); uniform_real_distribution<double> U(-3, 3);
    vector<T> f0(rows * C), jv(rows * C), y(rows * C, T(0));
    for (auto& v : f0) v = U(r);
    for (auto& v : jv) v = U(r) * 0.1;
    for (long long i = 0; i < rows; ++i) y[i * C + (i * 7) % C] = T(1);
    const T inv_b = T(1.0 / rows);
    const double tol = sizeof(T) == 4 ? 2e-6 : 1e-14;
    for (int kind = 0; kind < 2; ++kind)
        for (int with_jv = 0; with_jv < 2; ++with_jv) {
            vector<T> buf(rows * C + 4, NAN);
            T* g = buf.data() + 2;
            buf[0] = buf[1] = buf[rows * C + 2] = buf[rows * C + 3] = T(-7);
            launch(gx, 1, bx, [&] { loss_grad_impl<T>(f0.data(), with_jv ? jv.data() : nullptr, y.data(), rows, C, kind, inv_b, g); });
            CHECK(buf[0] == T(-7) && buf[1] == T(-7) && buf[rows * C + 2] == T(-7) && buf[rows * C + 3] == T(-7), "loss_grad wrote outside");
            for (long long i = 0; i < rows; ++i) {
                double lse = -1e308, mx = -1e308;
                for (int c = 0; c < C; ++c) mx = max(mx, (double)(T)(f0[i * C + c] + (with_jv ? jv[i * C + c] : T(0))));
                double s = 0;
                for (int c = 0; c < C; ++c) s += exp((double)(T)(f0[i * C + c] + (with_jv ? jv[i * C + c] : T(0))) - mx);
                lse = mx + log(s);
                for (int c = 0; c < C; ++c) {
                    const long long k = i * C + c;
                    const double f = (double)(T)(f0[k] + (with_jv ? jv[k] : T(0)));
                    const double want = kind == 0 ? (f - (double)y[k]) / rows : (exp(f - lse) - (double)y[k]) / rows;
                    CHECK(!std::isnan(g[k]) && fabs(g[k] - want) <= tol * (1 + fabs(want)),
                          "loss_grad kind %d jv %d r=%lld c=%d got %.17g want %.17g", kind, with_jv, i, c, (double)g[k], want);
                }
            }
        }
}

template <class T> void test_optim_nonfinite(long long n, unsigned gx, unsigned bx) {
    mt19937 r(23); uniform_real_distribution<double> U(-1, 1);
    vector<T> x(n);
    for (auto& v : x) v = U(r);
    unsigned flag = 0;
    launch(gx, 1, bx, [&] { nonfinite_impl<T>(x.data(), n, &flag); });
    CHECK(flag == 0, "nonfinite: finite input flagged (n=%lld)", n);
    const T bad[3] = {T(NAN), T(INFINITY), T(-INFINITY)};
    const long long where[3] = {n - 1, 0, n / 2};
    for (int b = 0; b < 3; ++b)
        for (int w = 0; w < 3; ++w) {
            vector<T> y = x;
            y[where[w]] = bad[b];
            flag = 0;
            launch(gx, 1, bx, [&] { nonfinite_impl<T>(y.data(), n, &flag); });
            CHECK(flag == 1, "nonfinite: missed %g at %lld (n=%lld, grid %u x %u)", (double)bad[b], where[w], n, gx, bx);
        }
}

// SGD modes 0/1/2 with and without weight decay, three steps, against OptState::update's loop
// (transcribed: fma for the axpy of weight decay and plain SGD, every other operation rounded);
// then a set flag must leave theta and the velocity untouched bit for bit.
template <class T> void test_optim_sgd(long long n, unsigned gx, unsigned bx) {
    mt19937 r(24); uniform_real_distribution<double> U(-1, 1);
    vector<T> th0(n), g(n);
    for (auto& v : th0) v = U(r);
    for (auto& v : g) v = U(r);
    const T eta = T(0.3), mu = T(0.9), wd = T(5e-4);
    for (int mode = 0; mode < 3; ++mode)
        for (int use_wd = 0; use_wd < 2; ++use_wd) {
            vector<T> th = th0, m(n, T(0)), th_ref = th0, m_ref(n, T(0));
            unsigned flag = 0;
            for (int step = 0; step < 3; ++step) {
                launch(gx, 1, bx, [&] { sgd_update_impl<T>(th.data(), g.data(), mode ? m.data() : nullptr, n, mode, use_wd, wd, eta, mu, &flag); });
                for (long long i = 0; i < n; ++i) {
                    T gi = g[i];
                    if (use_wd) gi = fma(wd, th_ref[i], gi);
                    if (mode == 0) { th_ref[i] = fma(-eta, gi, th_ref[i]); continue; }
                    m_ref[i] = mu * m_ref[i] + gi;
                    const T d = mode == 2 ? gi + mu * m_ref[i] : m_ref[i];
                    th_ref[i] -= eta * d;
                }
            }
            for (long long i = 0; i < n; ++i) {
                CHECK(th[i] == th_ref[i] && th[i] != th0[i], "sgd mode %d wd %d i=%lld got %.17g want %.17g", mode, use_wd, i, (double)th[i], (double)th_ref[i]);
                if (mode) CHECK(m[i] == m_ref[i], "sgd velocity mode %d i=%lld", mode, i);
            }
            const vector<T> th_keep = th, m_keep = m;
            flag = 1;
            launch(gx, 1, bx, [&] { sgd_update_impl<T>(th.data(), g.data(), mode ? m.data() : nullptr, n, mode, use_wd, wd, eta, mu, &flag); });
            CHECK(th == th_keep && m == m_keep, "sgd mode %d: a set flag must change nothing", mode);
        }
}

// Adam, three steps with the host-computed scalars of OptState::update, against its loop;
// and against the textbook formula in double (loose), then the flag gate.
template <class T> void test_optim_adam(long long n, unsigned gx, unsigned bx) {
    mt19937 r(25); uniform_real_distribution<double> U(-1, 1);
    vector<T> th0(n), g(n);
    for (auto& v : th0) v = U(r);
    for (auto& v : g) v = U(r);
    const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, lr = 1e-2;
    for (int use_wd = 0; use_wd < 2; ++use_wd) {
        const T wd = T(1e-2);
        vector<T> th = th0, m(n, T(0)), v(n, T(0)), th_ref = th0, m_ref(n, T(0)), v_ref(n, T(0));
        vector<double> thd(th0.begin(), th0.end()), md(n, 0), vd(n, 0);
        unsigned flag = 0;
        for (int t = 1; t <= 3; ++t) {
            const double bc1 = 1 - pow(beta1, t), bc2 = 1 - pow(beta2, t);
            const T b1 = T(beta1), b2 = T(beta2), ob1 = T(1 - beta1), ob2 = T(1 - beta2), step = T(lr / bc1), ibc2 = T(1 / bc2), e = T(eps);
            launch(gx, 1, bx, [&] { adam_update_impl<T>(th.data(), g.data(), m.data(), v.data(), n, use_wd, wd, b1, b2, ob1, ob2, step, ibc2, e, &flag); });
            for (long long i = 0; i < n; ++i) {
                T gi = g[i];
                if (use_wd) gi = fma(wd, th_ref[i], gi);
                m_ref[i] = b1 * m_ref[i] + ob1 * gi;
                v_ref[i] = b2 * v_ref[i] + ob2 * gi * gi;
                const T denom = sqrt(v_ref[i] * ibc2) + e;
                th_ref[i] -= step * m_ref[i] / denom;
                double gd = (double)g[i] + (use_wd ? (double)wd * thd[i] : 0.0);
                md[i] = beta1 * md[i] + (1 - beta1) * gd;
                vd[i] = beta2 * vd[i] + (1 - beta2) * gd * gd;
                thd[i] -= lr * (md[i] / bc1) / (sqrt(vd[i] / bc2) + eps);
            }
        }
        const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
        for (long long i = 0; i < n; ++i) {
            CHECK(th[i] == th_ref[i] && m[i] == m_ref[i] && v[i] == v_ref[i], "adam wd %d i=%lld got %.17g want %.17g", use_wd, i, (double)th[i], (double)th_ref[i]);
            CHECK(fabs(th[i] - thd[i]) <= tol * (1 + fabs(thd[i])), "adam vs formula i=%lld got %.17g want %.17g", i, (double)th[i], thd[i]);
        }
        const vector<T> th_keep = th, m_keep = m, v_keep = v;
        flag = 1;
        launch(gx, 1, bx, [&] { adam_update_impl<T>(th.data(), g.data(), m.data(), v.data(), n, use_wd, wd, T(0.9), T(0.999), T(0.1), T(0.001), T(1), T(1), T(1e-8), &flag); });
        CHECK(th == th_keep && m == m_keep && v == v_keep, "adam: a set flag must change nothing");
    }
}

template <class T> void test_optim() {
    test_optim_gather<T>(13, 5, {0, 12, 3, 3, 7, 1, 12}, 1, 32);
    test_optim_gather<T>(13, 5, {4, 13, 2}, 3, 32);          // index 13 is out of range
    test_optim_gather<T>(1, 1, {0}, 2, 32);
    test_optim_gather<T>(9, 17, {8, 0, 4, 4, 1}, 1000, 64);  // more threads than elements
    for (int C : {1, 3, 10}) {
        test_optim_loss_grad<T>(9, C, 1, 32);
        test_optim_loss_grad<T>(37, C, 3, 32);
    }
    test_optim_nonfinite<T>(1, 1, 32);
    test_optim_nonfinite<T>(37, 1, 32);
    test_optim_nonfinite<T>(1001, 3, 64);
    test_optim_sgd<T>(37, 1, 32);
    test_optim_sgd<T>(1001, 3, 64);
    test_optim_adam<T>(37, 1, 32);
    test_optim_adam<T>(1001, 3, 64);
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
    test_jtu<float>(37, 18, 6, 2, 2);   // 8-byte accesses (p % 4 == 2), 4 rows in flight
    test_jtu<float>(41, 18, 41, 2, 3);  // one chunk of 41 rows: remainder after groups of 4
    test_jtu<double>(40, 18, 7, 2, 2);  // 16-byte accesses
    test_jtu<double>(40, 17, 40, 1, 1);
    for (int off = 0; off < 4; ++off) {
        test_jac_all<float>(3, 3, {7, 5, 4, 3}, off, 2, 32);
        test_jac_all<double>(2, 10, {9, 6, 10}, off, 3, 32);
        test_jac_all<float>(3, 2, {5, 3}, off, 1, 32);
        test_jac_all<float>(4, 10, {11, 8, 8, 10}, off, 7, 64);  // p % 4 == 2, as 784-128-128-10
        test_jac_all<double>(3, 3, {7, 5, 4, 3}, off, 1000, 64);  // more threads than packets
    }
    for (int shift = 0; shift < 2; ++shift) {
        // v4: weight stripes + gaps. p % 4 == 2 (as 784-128-128-10), odd p, spilling slots,
        // several column chunks (cap), weight rows split over z (rpb_groups), fan_out = 1.
        test_jac_stripes<float>(4, 10, {12, 8, 8, 12}, shift, 1024, 1000, 3);
        test_jac_stripes<float>(3, 3, {8, 4, 12, 3}, shift, 2, 1, 2);
        test_jac_stripes<float>(5, 1, {4, 1}, shift, 1024, 1000, 1);
        test_jac_stripes<float>(2, 2, {20, 4, 8, 1}, shift, 3, 2, 4);
        test_jac_stripes<double>(2, 10, {8, 6, 10}, shift, 1024, 1000, 3);
        test_jac_stripes<double>(3, 3, {6, 4, 4, 3}, shift, 2, 1, 1);
        test_jac_stripes<double>(3, 2, {2, 6, 3}, shift, 1, 3, 2);
        test_jac_stripes<float>(4, 10, {12, 8, 8, 12}, shift, 1024, 1, 3, 2);  // 2 weight rows at once
        test_jac_stripes<double>(3, 3, {6, 4, 4, 3}, shift, 1024, 1, 2, 3);    // R = 3 (odd)
        // more weight rows than the unrolled iteration (4): unrolled body plus remainder
        // (one row at a time, R = 1, as for fan_in >= 1024 in f32)
        test_jac_stripes<float>(3, 3, {8, 12, 11}, shift, 1024, 3, 2, -1);    // 11 rows, 3 per block
        test_jac_stripes<float>(3, 3, {8, 12, 11}, shift, 1024, 1000, 2, -1); // 11 rows in one block
        test_jac_stripes<double>(2, 2, {4, 6, 13}, shift, 1024, 1000, 2, -2); // R = 2, 13 rows
        test_jac_stripes<double>(2, 3, {4, 6, 13}, shift, 1024, 2, 2, -1);    // R = 1, 2 rows per block
        // the loop without unrolling (U = 1) writes the same
        test_jac_stripes<float>(4, 10, {12, 8, 8, 12}, shift, 1024, 1000, 3, 1, 1);
        test_jac_stripes<float>(3, 3, {8, 12, 11}, shift, 1024, 1000, 2, -1, 1);
        test_jac_stripes<double>(3, 3, {6, 4, 14, 3}, shift, 2, 3, 2, 1, 1);
    }
    test_col_sum<float>(37, 45, 8, 2);
    test_col_sum<double>(100, 10, 7, 1);
    test_col_sum<float>(5, 3, 64, 3);
    for (int shift = 0; shift < 3; ++shift) {
        test_ntk_fused<float>(3, 3, shift);
        test_ntk_fused<double>(5, 2, shift);
        test_ntk_fused<float>(7, 10, shift);
    }
    test_elem<float>();
    test_elem<double>();
    test_optim<float>(); test_optim<double>();
    printf("%s: %d failures\n", fails ? "FAIL" : "OK", fails);
    return fails != 0;
}

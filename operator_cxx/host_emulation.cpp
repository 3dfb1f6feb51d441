// Runs the CUDA kernels of this directory on the host, one emulated thread after another,
// so that machines without a GPU can still test their indexing and arithmetic against the
// NumPy reference (tests/test_operators.py builds this with the system C++ compiler).
// Not a CPU implementation: it is serial and only as fast as a test needs.
#include <algorithm>
#include <cmath>
using std::fabs;
using std::floor;
using std::min;

struct Dim3 {
    unsigned x;
};
static Dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
template <typename T>
inline T atomicAdd(T* address, T value) {
    const T old = *address;
    *address += value;
    return old;
}

#include "correlation.cu"
#include "flow_warp.cu"

template <typename Kernel>
static void launch(long long total, Kernel kernel) {
    blockDim.x = 128;
    gridDim.x = (unsigned)((total + blockDim.x - 1) / blockDim.x);
    for (blockIdx.x = 0; blockIdx.x < gridDim.x; ++blockIdx.x)
        for (threadIdx.x = 0; threadIdx.x < blockDim.x; ++threadIdx.x) kernel();
}

// Same arguments as the kernels (double only) plus the number of threads to emulate;
// p holds the 14 CORR_PARAM_ARGS in order.
extern "C" {
void warp_forward(const double* feat, const double* flow, double* out, int N, int C, int H,
                  int W) {
    launch((long long)N * C * H * W,
           [&] { flow_warp_forward<double>(feat, flow, out, N, C, H, W); });
}

void warp_backward(const double* feat, const double* flow, const double* grad_out,
                   double* grad_feat, double* grad_flow, int N, int C, int H, int W,
                   int channels_per_thread) {
    const long long blocks = (C + channels_per_thread - 1) / channels_per_thread;
    launch(N * blocks * H * W, [&] {
        flow_warp_backward<double>(feat, flow, grad_out, grad_feat, grad_flow, N, C, H, W,
                                   channels_per_thread);
    });
}

void corr_forward(const double* data1, const double* data2, double* out, long long total,
                  const int* p) {
    launch(total, [&] {
        correlation_forward<double>(data1, data2, out, p[0], p[1], p[2], p[3], p[4], p[5],
                                    p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13]);
    });
}

void corr_backward(const double* data1, const double* data2, const double* grad_out,
                   double* grad, int which, long long total, const int* p) {
    launch(total, [&] {
        correlation_backward<double>(data1, data2, grad_out, grad, which, p[0], p[1], p[2],
                                     p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11],
                                     p[12], p[13]);
    });
}
}

// Runs the CUDA kernels of this directory on the host, one emulated thread after another,
// so that machines without a GPU can still test their indexing and arithmetic against the
// NumPy reference (tests/test_operators.py builds this with the system C++ compiler).
// Not a CPU implementation: it is serial and only as fast as a test needs.
#include <algorithm>
#include <cmath>
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

#include "flow_warp.cu"

template <typename Kernel>
static void launch(long long total, Kernel kernel) {
    blockDim.x = 128;
    gridDim.x = (unsigned)((total + blockDim.x - 1) / blockDim.x);
    for (blockIdx.x = 0; blockIdx.x < gridDim.x; ++blockIdx.x)
        for (threadIdx.x = 0; threadIdx.x < blockDim.x; ++threadIdx.x) kernel();
}

// Same arguments as the kernels (double only).
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
}

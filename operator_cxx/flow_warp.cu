// Fused flow warp: bilinear sampling of NCHW features by a flow field in feature pixels.
//
// Same semantics as MXNet's GridGenerator(transform_type='warp') + BilinearSampler
// (align-corners, neighbours outside the image contribute zero), computed directly in
// pixels instead of going through the normalised [-1, 1] grid. Compiled at run time by
// CuPy (lib/accel/operators/cuda.py); the NumPy reference is
// lib/accel/operators/reference.py.
//
// feat, out, grad_out, grad_feat: (N, C, H, W); flow, grad_flow: (N, 2, H, W), channel 0 = x.

template <typename T>
struct Bilinear {
    int x0, y0;
    T wx0, wx1, wy0, wy1;
};

template <typename T>
__device__ __forceinline__ Bilinear<T> sample_at(const T* flow, int n, int y, int x,
                                                 int H, int W) {
    const long long plane = (long long)H * W;
    const long long at = (long long)n * 2 * plane + (long long)y * W + x;
    const T xr = (T)x + flow[at];
    const T yr = (T)y + flow[at + plane];
    Bilinear<T> b;
    const T fx = floor(xr), fy = floor(yr);
    b.x0 = (int)fx;
    b.y0 = (int)fy;
    b.wx1 = xr - fx;
    b.wy1 = yr - fy;
    b.wx0 = (T)1 - b.wx1;
    b.wy0 = (T)1 - b.wy1;
    return b;
}

__device__ __forceinline__ bool inside(int y, int x, int H, int W) {
    return y >= 0 && y < H && x >= 0 && x < W;
}

// One thread per output element; consecutive threads walk along x, so reads of flow and
// writes of out are coalesced.
template <typename T>
__global__ void flow_warp_forward(const T* __restrict__ feat, const T* __restrict__ flow,
                                  T* __restrict__ out, int N, int C, int H, int W) {
    const long long total = (long long)N * C * H * W;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(i % W);
        const int y = (int)((i / W) % H);
        const long long nc = i / ((long long)H * W);
        const int n = (int)(nc / C);
        const Bilinear<T> b = sample_at(flow, n, y, x, H, W);
        const T* f = feat + nc * H * W;
        const int x1 = b.x0 + 1, y1 = b.y0 + 1;
        T v = 0;
        if (inside(b.y0, b.x0, H, W)) v += b.wy0 * b.wx0 * f[(long long)b.y0 * W + b.x0];
        if (inside(b.y0, x1, H, W)) v += b.wy0 * b.wx1 * f[(long long)b.y0 * W + x1];
        if (inside(y1, b.x0, H, W)) v += b.wy1 * b.wx0 * f[(long long)y1 * W + b.x0];
        if (inside(y1, x1, H, W)) v += b.wy1 * b.wx1 * f[(long long)y1 * W + x1];
        out[i] = v;
    }
}

// One thread per (n, channel block, y, x): it scatters grad_out into grad_feat (atomics:
// several output pixels may read one input pixel) and accumulates the flow gradient over
// its channel block in registers, so only one atomic per block reaches grad_flow.
// grad_feat and grad_flow must be zeroed by the caller.
template <typename T>
__global__ void flow_warp_backward(const T* __restrict__ feat, const T* __restrict__ flow,
                                   const T* __restrict__ grad_out, T* __restrict__ grad_feat,
                                   T* __restrict__ grad_flow, int N, int C, int H, int W,
                                   int channels_per_thread) {
    const int blocks = (C + channels_per_thread - 1) / channels_per_thread;
    const long long plane = (long long)H * W;
    const long long total = (long long)N * blocks * plane;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(i % W);
        const int y = (int)((i / W) % H);
        const int cb = (int)((i / plane) % blocks);
        const int n = (int)(i / (plane * blocks));
        const Bilinear<T> b = sample_at(flow, n, y, x, H, W);
        const int x1 = b.x0 + 1, y1 = b.y0 + 1;
        const bool in00 = inside(b.y0, b.x0, H, W), in01 = inside(b.y0, x1, H, W);
        const bool in10 = inside(y1, b.x0, H, W), in11 = inside(y1, x1, H, W);
        const long long o00 = (long long)b.y0 * W + b.x0, o01 = (long long)b.y0 * W + x1;
        const long long o10 = (long long)y1 * W + b.x0, o11 = (long long)y1 * W + x1;
        const int c_end = min(C, (cb + 1) * channels_per_thread);
        T gx = 0, gy = 0;
        for (int c = cb * channels_per_thread; c < c_end; ++c) {
            const long long base = ((long long)n * C + c) * plane;
            const T g = grad_out[base + (long long)y * W + x];
            const T* f = feat + base;
            T* gf = grad_feat + base;
            const T v00 = in00 ? f[o00] : (T)0, v01 = in01 ? f[o01] : (T)0;
            const T v10 = in10 ? f[o10] : (T)0, v11 = in11 ? f[o11] : (T)0;
            if (in00) atomicAdd(gf + o00, g * b.wy0 * b.wx0);
            if (in01) atomicAdd(gf + o01, g * b.wy0 * b.wx1);
            if (in10) atomicAdd(gf + o10, g * b.wy1 * b.wx0);
            if (in11) atomicAdd(gf + o11, g * b.wy1 * b.wx1);
            gx += g * ((v01 - v00) * b.wy0 + (v11 - v10) * b.wy1);
            gy += g * ((v10 - v00) * b.wx0 + (v11 - v01) * b.wx1);
        }
        const long long at = (long long)n * 2 * plane + (long long)y * W + x;
        atomicAdd(grad_flow + at, gx);
        atomicAdd(grad_flow + at + plane, gy);
    }
}

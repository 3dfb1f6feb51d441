// FlowNetC correlation with the semantics of mx.sym.Correlation, forward and backward.
//
// Inputs are (N, C, H, W) and are read as if zero-padded by pad_size on each side (no
// padded copy is made). Output (N, grid*grid, top_h, top_w), grid = 2 * radius + 1,
// radius = max_displacement / stride2. Output (i, j) compares the kernel window whose
// top-left corner, in padded coordinates, is (i * stride1 + max_displacement,
// j * stride1 + max_displacement) in data1 with the same window displaced by
// ((ty - radius) * stride2, (tx - radius) * stride2) in data2, channel = ty * grid + tx;
// the sum over window and channels is divided by sumelems = kernel_size^2 * C.
// Compiled at run time by CuPy (lib/accel/operators/cuda.py); the NumPy reference is
// lib/accel/operators/reference.py.

struct CorrParams {
    int N, C, H, W;
    int top_h, top_w, grid, radius;
    int kernel_size, max_displacement, stride1, stride2, pad;
    int is_multiply;
};

// Kernels take the parameters as plain ints (what CuPy passes most portably) in this order.
#define CORR_PARAM_ARGS                                                                 \
    int N, int C, int H, int W, int top_h, int top_w, int grid, int radius,             \
        int kernel_size, int max_displacement, int stride1, int stride2, int pad,       \
        int is_multiply
#define CORR_PARAMS                                                                     \
    const CorrParams p = {N,           C,                H,       W,       top_h,      \
                          top_w,       grid,             radius,  kernel_size,          \
                          max_displacement, stride1,     stride2, pad,     is_multiply}

// Value of an (N, C, H, W) tensor at padded coordinates (py, px): zero in the padding.
template <typename T>
__device__ __forceinline__ T padded(const T* plane, int py, int px, const CorrParams& p) {
    const int y = py - p.pad, x = px - p.pad;
    return (y >= 0 && y < p.H && x >= 0 && x < p.W) ? plane[(long long)y * p.W + x] : (T)0;
}

// One thread per output element.
template <typename T>
__global__ void correlation_forward(const T* __restrict__ data1, const T* __restrict__ data2,
                                    T* __restrict__ out, CORR_PARAM_ARGS) {
    CORR_PARAMS;
    const long long out_plane = (long long)p.top_h * p.top_w;
    const long long total = (long long)p.N * p.grid * p.grid * out_plane;
    const long long in_plane = (long long)p.H * p.W;
    const T sumelems = (T)(p.kernel_size * p.kernel_size * p.C);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int j = (int)(i % p.top_w);
        const int r = (int)((i / p.top_w) % p.top_h);
        const int ch = (int)((i / out_plane) % (p.grid * p.grid));
        const int n = (int)(i / (out_plane * p.grid * p.grid));
        const int y1 = r * p.stride1 + p.max_displacement;
        const int x1 = j * p.stride1 + p.max_displacement;
        const int dy = (ch / p.grid - p.radius) * p.stride2;
        const int dx = (ch % p.grid - p.radius) * p.stride2;
        T acc = 0;
        for (int c = 0; c < p.C; ++c) {
            const T* a = data1 + ((long long)n * p.C + c) * in_plane;
            const T* b = data2 + ((long long)n * p.C + c) * in_plane;
            for (int ky = 0; ky < p.kernel_size; ++ky) {
                for (int kx = 0; kx < p.kernel_size; ++kx) {
                    const T va = padded(a, y1 + ky, x1 + kx, p);
                    const T vb = padded(b, y1 + ky + dy, x1 + kx + dx, p);
                    acc += p.is_multiply ? va * vb : fabs(va - vb);
                }
            }
        }
        out[i] = acc / sumelems;
    }
}

// Output rows (or columns) whose kernel window covers padded coordinate q: [lo, hi].
__device__ __forceinline__ void covering(int q, int top, const CorrParams& p, int* lo,
                                         int* hi) {
    const int first = q - p.max_displacement - (p.kernel_size - 1);
    const int last = q - p.max_displacement;
    *lo = first <= 0 ? 0 : (first + p.stride1 - 1) / p.stride1;
    *hi = last < 0 ? -1 : min(last / p.stride1, top - 1);
}

// Sum of grad_out over the output positions of channel ch whose data1 window covers
// padded coordinate (py, px).
template <typename T>
__device__ __forceinline__ T window_grad(const T* grad_out, int n, int ch, int py, int px,
                                         const CorrParams& p) {
    int ylo, yhi, xlo, xhi;
    covering(py, p.top_h, p, &ylo, &yhi);
    covering(px, p.top_w, p, &xlo, &xhi);
    const T* g = grad_out + ((long long)n * p.grid * p.grid + ch) * p.top_h * p.top_w;
    T s = 0;
    for (int r = ylo; r <= yhi; ++r)
        for (int j = xlo; j <= xhi; ++j) s += g[(long long)r * p.top_w + j];
    return s;
}

// One thread per element of data1 (which = 0) or data2 (which = 1). The partner element
// of a displacement does not depend on the output position, so each displacement costs
// one partner read plus a sum of grad_out over the covering window positions.
template <typename T>
__global__ void correlation_backward(const T* __restrict__ data1, const T* __restrict__ data2,
                                     const T* __restrict__ grad_out, T* __restrict__ grad,
                                     int which, CORR_PARAM_ARGS) {
    CORR_PARAMS;
    const long long in_plane = (long long)p.H * p.W;
    const long long total = (long long)p.N * p.C * in_plane;
    const T sumelems = (T)(p.kernel_size * p.kernel_size * p.C);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(i % p.W);
        const int y = (int)((i / p.W) % p.H);
        const long long nc = i / in_plane;
        const int n = (int)(nc / p.C);
        const T* a = data1 + nc * in_plane;
        const T* b = data2 + nc * in_plane;
        const T self = which == 0 ? a[(long long)y * p.W + x] : b[(long long)y * p.W + x];
        const int py = y + p.pad, px = x + p.pad;
        T acc = 0;
        for (int ch = 0; ch < p.grid * p.grid; ++ch) {
            const int dy = (ch / p.grid - p.radius) * p.stride2;
            const int dx = (ch % p.grid - p.radius) * p.stride2;
            // data1 at (qy, qx) meets data2 at (qy + dy, qx + dx)
            const int qy = which == 0 ? py : py - dy, qx = which == 0 ? px : px - dx;
            const T g = window_grad(grad_out, n, ch, qy, qx, p);
            if (g == (T)0) continue;
            const T partner = which == 0 ? padded(b, py + dy, px + dx, p)
                                         : padded(a, qy, qx, p);
            if (p.is_multiply) {
                acc += g * partner;
            } else {
                const T va = which == 0 ? self : partner, vb = which == 0 ? partner : self;
                const T sign = va >= vb ? (T)1 : (T)-1;  // MXNet: +1 where a == b
                acc += which == 0 ? g * sign : -g * sign;
            }
        }
        grad[i] = acc / sumelems;
    }
}

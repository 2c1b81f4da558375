// relu(max_pool2d(batch_norm(x), 2)) for a channels_last CPU tensor in training mode, forward and
// backward, each in one or two passes over x. Loaded by anil_engine/fused.py with
// torch.utils.cpp_extension.load; the eager PyTorch ops it replaces need about seven passes.
//
// Layout: x is (N, C, H, W) in channels_last memory, i.e. rows of C contiguous values per pixel.
// The pooled output, the pooled x values and the window positions are (N, C, OH, OW), also
// channels_last. Ties inside a window go to the first maximum in row-major order, and NaN wins,
// as in PyTorch's max_pool2d.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kGrain = 16;

// Two per-channel sums over `rows` rows: add_row(r, a, b) adds row r's terms to a[0..c) and b[0..c).
// Rows are summed in T within blocks of kBlock rows (vectorised over channels), blocks and threads in
// double; returns the totals in `first` and `second`.
constexpr int64_t kBlock = 64;

template <typename T, typename AddRow>
void channel_sums(int64_t rows, int64_t c, std::vector<double>& first, std::vector<double>& second, AddRow add_row) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / kGrain));
  std::vector<double> sa(chunks * c, 0.0), sb(chunks * c, 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> ba(c), bb(c);
    for (int64_t k = begin; k < end; ++k) {
      const int64_t r0 = rows * k / chunks, r1 = rows * (k + 1) / chunks;
      for (int64_t b0 = r0; b0 < r1; b0 += kBlock) {
        std::fill(ba.begin(), ba.end(), T(0));
        std::fill(bb.begin(), bb.end(), T(0));
        for (int64_t r = b0; r < std::min(b0 + kBlock, r1); ++r) {
          add_row(r, ba.data(), bb.data());
        }
        for (int64_t j = 0; j < c; ++j) {
          sa[k * c + j] += ba[j];
          sb[k * c + j] += bb[j];
        }
      }
    }
  });
  first.assign(c, 0.0);
  second.assign(c, 0.0);
  for (int64_t k = 0; k < chunks; ++k) {
    for (int64_t j = 0; j < c; ++j) {
      first[j] += sa[k * c + j];
      second[j] += sb[k * c + j];
    }
  }
}

// Per-channel batch mean and biased variance, shifted by the first pixel for accuracy.
template <typename T>
void channel_stats(const T* x, int64_t rows, int64_t c, std::vector<double>& mean, std::vector<double>& var) {
  std::vector<double> sums, squares;
  channel_sums<T>(rows, c, sums, squares, [&](int64_t r, T* __restrict__ ps, T* __restrict__ pq) {
    const T* __restrict__ row = x + r * c;
    const T* __restrict__ shift = x;
    for (int64_t j = 0; j < c; ++j) {
      const T d = row[j] - shift[j];
      ps[j] += d;
      pq[j] += d * d;
    }
  });
  mean.assign(c, 0.0);
  var.assign(c, 0.0);
  for (int64_t j = 0; j < c; ++j) {
    const double m = sums[j] / rows;
    mean[j] = m + static_cast<double>(x[j]);
    var[j] = std::max(squares[j] / rows - m * m, 0.0);
  }
}

// One pooling window for every channel: the 2x2 pixels p0 p1 / p2 p3 (rows of c values), normalised
// as alpha * x + beta; the first maximum wins and NaN wins (as in max_pool2d); ReLU after.
template <typename T>
inline void pool_window(
    const T* __restrict__ p0,
    const T* __restrict__ p1,
    const T* __restrict__ p2,
    const T* __restrict__ p3,
    const T* __restrict__ alpha,
    const T* __restrict__ beta,
    T* __restrict__ out,
    T* __restrict__ xsel,
    T* __restrict__ pos,
    int64_t c) {
  for (int64_t j = 0; j < c; ++j) {
    const T a = alpha[j], b = beta[j];
    const T x0 = p0[j], x1 = p1[j], x2 = p2[j], x3 = p3[j];
    const T v0 = x0 * a + b, v1 = x1 * a + b, v2 = x2 * a + b, v3 = x3 * a + b;
    T best = v0, bx = x0, at = T(0);
    const bool t1 = v1 > best || v1 != v1;
    best = t1 ? v1 : best;
    bx = t1 ? x1 : bx;
    at = t1 ? T(1) : at;
    const bool t2 = v2 > best || v2 != v2;
    best = t2 ? v2 : best;
    bx = t2 ? x2 : bx;
    at = t2 ? T(2) : at;
    const bool t3 = v3 > best || v3 != v3;
    best = t3 ? v3 : best;
    bx = t3 ? x3 : bx;
    at = t3 ? T(3) : at;
    out[j] = (best > T(0) || best != best) ? best : T(0);
    xsel[j] = bx;
    pos[j] = at;
  }
}

template <typename T>
std::vector<at::Tensor> forward_impl(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh = h / 2, ow = w / 2;
  const T* xp = x.data_ptr<T>();
  std::vector<double> mean, var;
  channel_stats(xp, n * h * w, c, mean, var);
  auto opts = x.options();
  auto out = at::empty({n, c, oh, ow}, opts.memory_format(at::MemoryFormat::ChannelsLast));
  auto xsel = at::empty({n, c, oh, ow}, opts.memory_format(at::MemoryFormat::ChannelsLast));
  auto pos = at::empty({n, c, oh, ow}, opts.memory_format(at::MemoryFormat::ChannelsLast));
  auto mean_t = at::empty({c}, opts), invstd_t = at::empty({c}, opts), var_t = at::empty({c}, opts);
  std::vector<T> alpha(c), beta(c);
  const T* wp = weight.data_ptr<T>();
  const T* bp = bias.data_ptr<T>();
  for (int64_t j = 0; j < c; ++j) {
    const T m = static_cast<T>(mean[j]);
    const T invstd = static_cast<T>(1.0 / std::sqrt(var[j] + eps));
    mean_t.data_ptr<T>()[j] = m;
    invstd_t.data_ptr<T>()[j] = invstd;
    var_t.data_ptr<T>()[j] = static_cast<T>(var[j]);
    alpha[j] = invstd * wp[j];
    beta[j] = bp[j] - m * alpha[j];
  }
  T* op = out.data_ptr<T>();
  T* sp = xsel.data_ptr<T>();
  T* pp = pos.data_ptr<T>();
  at::parallel_for(0, n * oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t i = r / oh, y = r % oh;
      for (int64_t x_ = 0; x_ < ow; ++x_) {
        const T* __restrict__ p0 = xp + ((i * h + 2 * y) * w + 2 * x_) * c;
        const T* __restrict__ p1 = p0 + c;
        const T* __restrict__ p2 = p0 + w * c;
        const T* __restrict__ p3 = p2 + c;
        const int64_t o = (r * ow + x_) * c;
        pool_window(p0, p1, p2, p3, alpha.data(), beta.data(), op + o, sp + o, pp + o, c);
      }
    }
  });
  return {out, xsel, pos, mean_t, invstd_t, var_t};
}

template <typename T>
std::vector<at::Tensor> backward_impl(
    const at::Tensor& grad,
    const at::Tensor& x,
    const at::Tensor& out,
    const at::Tensor& xsel,
    const at::Tensor& pos,
    const at::Tensor& weight,
    const at::Tensor& mean,
    const at::Tensor& invstd) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh = h / 2, ow = w / 2;
  const int64_t pooled_rows = n * oh * ow;
  const T* gp = grad.data_ptr<T>();
  const T* op = out.data_ptr<T>();
  const T* sp = xsel.data_ptr<T>();
  const T* pp = pos.data_ptr<T>();
  const T* mp = mean.data_ptr<T>();
  const T* ip = invstd.data_ptr<T>();
  const T* wp = weight.data_ptr<T>();
  // Reductions over the pooled elements (the only ones with a gradient): sum g and sum g * (x - mean).
  std::vector<double> sums, dots;
  channel_sums<T>(pooled_rows, c, sums, dots, [&](int64_t r, T* __restrict__ ps, T* __restrict__ pd) {
    const T* __restrict__ go = gp + r * c;
    const T* __restrict__ oo = op + r * c;
    const T* __restrict__ so = sp + r * c;
    const T* __restrict__ mu = mp;
    for (int64_t j = 0; j < c; ++j) {
      const T g = oo[j] > T(0) ? go[j] : T(0);
      ps[j] += g;
      pd[j] += g * (so[j] - mu[j]);
    }
  });
  auto opts = x.options();
  auto dweight = at::empty({c}, opts), dbias = at::empty({c}, opts);
  std::vector<T> k(c), b(c), cc(c);
  const double m = static_cast<double>(n * h * w);
  for (int64_t j = 0; j < c; ++j) {
    const double s = sums[j], d = dots[j];
    const double inv = static_cast<double>(ip[j]);
    const double sum_gxhat = d * inv;
    dweight.data_ptr<T>()[j] = static_cast<T>(sum_gxhat);
    dbias.data_ptr<T>()[j] = static_cast<T>(s);
    const double kk = static_cast<double>(wp[j]) * inv;
    // dx = k * (g - sum_g / m - xhat * sum_gxhat / m) = k * g + b * x + cc
    k[j] = static_cast<T>(kk);
    b[j] = static_cast<T>(-kk * inv * sum_gxhat / m);
    cc[j] = static_cast<T>(kk * (inv * sum_gxhat * static_cast<double>(mp[j]) - s) / m);
  }
  auto dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  T* dp = dx.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  at::parallel_for(0, n * h, 1, [&](int64_t begin, int64_t end) {
    const T* __restrict__ kk = k.data();
    const T* __restrict__ bb = b.data();
    const T* __restrict__ c0 = cc.data();
    for (int64_t r = begin; r < end; ++r) {
      const int64_t i = r / h, y = r % h;
      const bool pooled_row = y < 2 * oh;
      for (int64_t x_ = 0; x_ < w; ++x_) {
        const int64_t e = (r * w + x_) * c;
        T* __restrict__ de = dp + e;
        const T* __restrict__ xe = xp + e;
        if (!pooled_row || x_ >= 2 * ow) {
          for (int64_t j = 0; j < c; ++j) {
            de[j] = bb[j] * xe[j] + c0[j];
          }
          continue;
        }
        const T here = static_cast<T>((y % 2) * 2 + x_ % 2);
        const int64_t o = ((i * oh + y / 2) * ow + x_ / 2) * c;
        const T* __restrict__ pa = pp + o;
        const T* __restrict__ oo = op + o;
        const T* __restrict__ go = gp + o;
        for (int64_t j = 0; j < c; ++j) {
          const T g = (pa[j] == here && oo[j] > T(0)) ? go[j] : T(0);
          de[j] = bb[j] * xe[j] + c0[j] + kk[j] * g;
        }
      }
    }
  });
  return {dx, dweight, dbias};
}

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be 4-D channels_last");
}

}  // namespace

std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  check(x, "x");
  TORCH_CHECK(x.size(2) >= 2 && x.size(3) >= 2, "x must be at least 2x2");
  auto w = weight.contiguous(), b = bias.contiguous();
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_block_forward", [&] { result = forward_impl<scalar_t>(x, w, b, eps); });
  return result;
}

std::vector<at::Tensor> backward(
    const at::Tensor& grad,
    const at::Tensor& x,
    const at::Tensor& out,
    const at::Tensor& xsel,
    const at::Tensor& pos,
    const at::Tensor& weight,
    const at::Tensor& mean,
    const at::Tensor& invstd) {
  check(x, "x");
  auto g = grad.contiguous(at::MemoryFormat::ChannelsLast);
  auto w = weight.contiguous();
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_block_backward", [&] {
    result = backward_impl<scalar_t>(g, x, out, xsel, pos, w, mean, invstd);
  });
  return result;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "relu(max_pool2d(batch_norm(x), 2)), training mode, channels_last CPU");
  m.def("backward", &backward, "its backward: dx, dweight, dbias");
}

//! A depthwise convolution (one filter per channel) on f32 NCHW tensors.
//!
//! Written here rather than taken from a crate: tract 0.23's `DepthWiseConv` walks every output
//! point through its patch zones and runs EfficientNet-Lite's depthwise layers at 1-3 GMAC/s,
//! about 60% of the built-in model's time (docs/BENCHMARKS.md, *Where tract spends the time*);
//! no maintained crate offers a depthwise kernel on plain slices. Two loop orders, chosen by
//! output width: wide rows are computed a channel at a time, each tap adding a contiguous run of
//! a zero-padded copy of the channel's plane to the output row; narrow layers, where such rows
//! are too short to vectorise, are copied once into zero-padded channel-last order and each
//! output point adds up its taps 16 channels at a time in registers, as channel-last engines do.
//!
//! An activation that clamps (the ReLU6 after every depthwise layer of EfficientNet-Lite) is
//! applied to each output row or point while it is still in cache, instead of by a separate
//! pass over the tensor.
//!
//! On x86_64 a copy compiled for AVX2 and FMA is chosen at run time when the CPU has them (the
//! default target guarantees only SSE2); aarch64 always has NEON and FMA.

/// Channels summed at a time in registers.
const LANES: usize = 16;

/// The shape of one depthwise convolution. Padding below and right is implied by the output
/// size; padded points read zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// Bounds every output is clamped to (ReLU6: 0 and 6). Kept as bit patterns so that an
/// operator holding one can be `Eq`, as tract's operators must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Clamp {
    lo: u32,
    hi: u32,
}

impl Clamp {
    pub fn new(lo: f32, hi: f32) -> Self {
        Self {
            lo: lo.to_bits(),
            hi: hi.to_bits(),
        }
    }

    pub fn lo(&self) -> f32 {
        f32::from_bits(self.lo)
    }

    pub fn hi(&self) -> f32 {
        f32::from_bits(self.hi)
    }

    #[inline(always)]
    fn apply(self, values: &mut [f32]) {
        let (lo, hi) = (self.lo(), self.hi());
        for v in values {
            *v = v.max(lo).min(hi);
        }
    }
}

impl Geometry {
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.channels * self.out_h * self.out_w
    }

    pub fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }

    /// Rows and columns of the padded input that the outputs read.
    fn padded(&self) -> (usize, usize) {
        (
            (self.out_h - 1) * self.stride_h + self.kernel_h,
            (self.out_w - 1) * self.stride_w + self.kernel_w,
        )
    }
}

/// One layer's parameters: `taps` tap-major, `[kernel_h * kernel_w][channels]`, one `bias` per
/// channel, and the clamp applied to every output, if any.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    pub taps: &'a [f32],
    pub bias: &'a [f32],
    pub clamp: Option<Clamp>,
}

/// `out = depthwise(input)` with layer `w`. Panics if a slice length does not match the
/// geometry (the caller builds both from the same facts).
pub fn depthwise(g: &Geometry, w: Weights, input: &[f32], out: &mut [f32]) {
    assert_eq!(input.len(), g.input_len());
    assert_eq!(out.len(), g.output_len());
    assert_eq!(w.taps.len(), g.taps() * g.channels);
    assert_eq!(w.bias.len(), g.channels);
    assert!(g.stride_h > 0 && g.stride_w > 0 && g.out_h > 0 && g.out_w > 0);
    let by_rows = g.out_w >= PLANAR_MIN_WIDTH;
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { depthwise_avx2(g, w, input, out, by_rows) };
    }
    // aarch64 always has FMA; other targets without a detected FMA take plain multiply-adds.
    #[cfg(target_arch = "aarch64")]
    run::<true>(g, w, input, out, by_rows);
    #[cfg(not(target_arch = "aarch64"))]
    run::<false>(g, w, input, out, by_rows);
}

/// The instructions [`depthwise`] runs with on this CPU.
pub fn instructions() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        return "AVX2+FMA";
    }
    if cfg!(target_arch = "aarch64") {
        "NEON FMA"
    } else {
        "no FMA"
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_avx2(g: &Geometry, w: Weights, input: &[f32], out: &mut [f32], by_rows: bool) {
    run::<true>(g, w, input, out, by_rows)
}

/// Output rows at least this wide are computed a channel at a time along the rows; narrower
/// ones a point at a time across the channels (the layout change then costs less than short
/// rows would).
const PLANAR_MIN_WIDTH: usize = 12;

/// `FUSED`: multiply-adds as single FMA instructions (only where the CPU has them: without,
/// `mul_add` is a slow library call). `by_rows`: the loop order (see the module doc).
#[inline(always)]
fn run<const FUSED: bool>(g: &Geometry, w: Weights, input: &[f32], out: &mut [f32], by_rows: bool) {
    // Taken out and put back rather than borrowed in a closure: a closure would not inherit
    // the caller's target features, and `mul_add` would become a library call.
    let mut scratch = SCRATCH.take();
    let plane_in = g.height * g.width;
    let plane_out = g.out_h * g.out_w;
    let images = input
        .chunks_exact(g.channels * plane_in)
        .zip(out.chunks_exact_mut(g.channels * plane_out));
    if by_rows {
        for (image, result) in images {
            planar::<FUSED>(g, w, image, result, &mut scratch);
        }
    } else {
        let (ph, pw) = g.padded();
        scratch.resize(ph * pw * g.channels, 0.0);
        let mut acc = vec![0f32; g.channels];
        for (image, result) in images {
            to_padded_channel_last(g, image, &mut scratch, pw);
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    acc.copy_from_slice(w.bias);
                    point::<FUSED>(g, &scratch, pw, w.taps, oy, ox, &mut acc);
                    if let Some(c) = w.clamp {
                        c.apply(&mut acc);
                    }
                    let at = oy * g.out_w + ox;
                    for (ch, v) in acc.iter().enumerate() {
                        result[ch * plane_out + at] = *v;
                    }
                }
            }
        }
    }
    SCRATCH.set(scratch);
}

std::thread_local! {
    /// Padded copies of the input, kept between calls: a fresh allocation of a few hundred KiB
    /// per call is fresh pages and their faults every time.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// One image a channel at a time: the channel's plane is copied zero-padded and split into
/// `stride_w` column phases (column `j * stride_w + p` of the padded plane is column `j` of
/// phase `p`), so that every tap adds a contiguous run of one phase row to the output row.
#[inline(always)]
fn planar<const FUSED: bool>(
    g: &Geometry,
    w: Weights,
    image: &[f32],
    result: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (ph, pw) = g.padded();
    let sw = g.stride_w;
    let qw = pw.div_ceil(sw);
    scratch.resize(sw * ph * qw, 0.0);
    let plane_in = g.height * g.width;
    let plane_out = g.out_h * g.out_w;
    let n_taps = g.taps();
    let mut weights = vec![0f32; n_taps];
    for ch in 0..g.channels {
        scratch.fill(0.0);
        let plane = &image[ch * plane_in..][..plane_in];
        for (y, row) in plane.chunks_exact(g.width).enumerate() {
            let py = y + g.pad_top;
            if py >= ph {
                break;
            }
            if sw == 1 {
                let n = g.width.min(pw - g.pad_left.min(pw));
                scratch[py * qw + g.pad_left..][..n].copy_from_slice(&row[..n]);
                continue;
            }
            for phase in 0..sw {
                let dst = &mut scratch[(phase * ph + py) * qw..][..qw];
                // Column j of this phase is padded column j * sw + phase, input column
                // j * sw + phase - pad_left: the first j in the input, then every sw-th value.
                let first = g.pad_left.saturating_sub(phase).div_ceil(sw);
                let end = (pw - phase.min(pw)).div_ceil(sw);
                let x0 = first * sw + phase - g.pad_left;
                if first < end && x0 < g.width {
                    for (d, v) in dst[first..end].iter_mut().zip(row[x0..].iter().step_by(sw)) {
                        *d = *v;
                    }
                }
            }
        }
        for (t, v) in weights.iter_mut().enumerate() {
            *v = w.taps[t * g.channels + ch];
        }
        let out = &mut result[ch * plane_out..][..plane_out];
        for (oy, orow) in out.chunks_exact_mut(g.out_w).enumerate() {
            orow.fill(w.bias[ch]);
            for ky in 0..g.kernel_h {
                let iy = oy * g.stride_h + ky;
                for kx in 0..g.kernel_w {
                    let tap = weights[ky * g.kernel_w + kx];
                    let src = &scratch[((kx % sw) * ph + iy) * qw + kx / sw..][..g.out_w];
                    for (o, s) in orow.iter_mut().zip(src) {
                        *o = mul_add::<FUSED>(tap, *s, *o);
                    }
                }
            }
            if let Some(c) = w.clamp {
                c.apply(orow);
            }
        }
    }
}

/// Copies one NCHW image into `padded` (`[padded rows][pw][channels]`, zeros around it), a
/// few columns of every channel at a time so that reads and writes both stay in cache.
#[inline(always)]
fn to_padded_channel_last(g: &Geometry, image: &[f32], padded: &mut [f32], pw: usize) {
    const COLUMNS: usize = 8;
    let c = g.channels;
    let ph = padded.len() / (pw * c);
    padded.fill(0.0);
    let rows = g.height.min(ph.saturating_sub(g.pad_top));
    let cols = g.width.min(pw.saturating_sub(g.pad_left));
    let plane = g.height * g.width;
    for y in 0..rows {
        let out_row = (y + g.pad_top) * pw + g.pad_left;
        for x0 in (0..cols).step_by(COLUMNS) {
            let n = COLUMNS.min(cols - x0);
            for ch in 0..c {
                let src = &image[ch * plane + y * g.width + x0..][..n];
                for (j, v) in src.iter().enumerate() {
                    padded[(out_row + x0 + j) * c + ch] = *v;
                }
            }
        }
    }
}

/// Adds every tap of output point (oy, ox) into `acc` (which holds the bias).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn point<const FUSED: bool>(
    g: &Geometry,
    padded: &[f32],
    pw: usize,
    taps: &[f32],
    oy: usize,
    ox: usize,
    acc: &mut [f32],
) {
    let c = g.channels;
    let whole = c - c % LANES;
    for start in (0..whole).step_by(LANES) {
        let mut lanes = [0f32; LANES];
        lanes.copy_from_slice(&acc[start..start + LANES]);
        for ky in 0..g.kernel_h {
            let row = (oy * g.stride_h + ky) * pw + ox * g.stride_w;
            for kx in 0..g.kernel_w {
                let src = &padded[(row + kx) * c + start..][..LANES];
                let w = &taps[(ky * g.kernel_w + kx) * c + start..][..LANES];
                for i in 0..LANES {
                    lanes[i] = mul_add::<FUSED>(w[i], src[i], lanes[i]);
                }
            }
        }
        acc[start..start + LANES].copy_from_slice(&lanes);
    }
    for ch in whole..c {
        let mut sum = acc[ch];
        for ky in 0..g.kernel_h {
            let row = (oy * g.stride_h + ky) * pw + ox * g.stride_w;
            for kx in 0..g.kernel_w {
                let w = taps[(ky * g.kernel_w + kx) * c + ch];
                sum = mul_add::<FUSED>(w, padded[(row + kx) * c + ch], sum);
            }
        }
        acc[ch] = sum;
    }
}

#[inline(always)]
fn mul_add<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, one output at a time.
    fn reference(g: &Geometry, input: &[f32], taps: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; g.output_len()];
        for n in 0..g.batch {
            for ch in 0..g.channels {
                for oy in 0..g.out_h {
                    for ox in 0..g.out_w {
                        let mut sum = bias[ch] as f64;
                        for ky in 0..g.kernel_h {
                            for kx in 0..g.kernel_w {
                                let y = (oy * g.stride_h + ky) as isize - g.pad_top as isize;
                                let x = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
                                if y < 0 || x < 0 || y >= g.height as isize || x >= g.width as isize
                                {
                                    continue;
                                }
                                let v = input[((n * g.channels + ch) * g.height + y as usize)
                                    * g.width
                                    + x as usize];
                                sum += (taps[(ky * g.kernel_w + kx) * g.channels + ch] * v) as f64;
                            }
                        }
                        out[((n * g.channels + ch) * g.out_h + oy) * g.out_w + ox] = sum as f32;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (i as f32 * 0.37 + seed as f32).sin() * 2.0)
            .collect()
    }

    /// Output size of a convolution with the given padding on both sides.
    fn out_size(size: usize, kernel: usize, stride: usize, before: usize, after: usize) -> usize {
        (size + before + after - kernel) / stride + 1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_the_definition(
            batch in 1usize..3,
            channels in 1usize..40,
            height in 1usize..12,
            width in 1usize..30,
            kernel in prop::sample::select(vec![1usize, 3, 5]),
            stride in 1usize..3,
            pads in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
            clamped in any::<bool>(),
        ) {
            let (top, bottom, left, right) = pads;
            prop_assume!(height + top + bottom >= kernel && width + left + right >= kernel);
            let g = Geometry {
                batch, channels, height, width,
                kernel_h: kernel, kernel_w: kernel,
                stride_h: stride, stride_w: stride,
                pad_top: top, pad_left: left,
                out_h: out_size(height, kernel, stride, top, bottom),
                out_w: out_size(width, kernel, stride, left, right),
            };
            let input = values(g.input_len(), 1);
            let taps = values(g.taps() * channels, 2);
            let bias = values(channels, 3);
            let clamp = clamped.then(|| Clamp::new(-0.5, 1.5));
            let mut expected = reference(&g, &input, &taps, &bias);
            if let Some(c) = clamp {
                c.apply(&mut expected);
            }
            let mut out = vec![f32::NAN; g.output_len()];
            let w = Weights { taps: &taps, bias: &bias, clamp };
            depthwise(&g, w, &input, &mut out);
            for by_rows in [false, true] {
                let mut plain = vec![f32::NAN; g.output_len()];
                run::<false>(&g, w, &input, &mut plain, by_rows);
                for (i, ((a, p), b)) in out.iter().zip(&plain).zip(&expected).enumerate() {
                    prop_assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "output {i}: {a} vs {b}");
                    prop_assert!((p - b).abs() <= 1e-4 * (1.0 + b.abs()), "output {i}: {p} vs {b}");
                }
            }
        }
    }
}

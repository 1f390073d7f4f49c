//! Building blocks shared by every method: reading tensors chunk by chunk straight from the
//! memory map (converting to f32 on the fly), writing the output chunk by chunk in its dtype,
//! exact streaming top-k by radix selection, and a counter-based random stream that gives the
//! same bits whatever the thread count.

use std::borrow::Cow;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;
use weightspace_io::DType;

/// Elements per chunk: the unit of parallel work and of the random stream.
pub const CHUNK: usize = 1 << 16;

/// Number of chunks covering `n` elements.
pub fn n_chunks(n: usize) -> usize {
    n.div_ceil(CHUNK)
}

/// One input tensor: its bytes (borrowed from the memory map when possible) and how to read
/// them as f32, optionally cropped to a leading sub-matrix (embedding rows/columns).
pub struct Src<'a> {
    bytes: Cow<'a, [u8]>,
    dtype: DType,
    /// Decoded values for dtypes that cannot be decoded chunk-wise.
    owned: Option<Vec<f32>>,
    /// Columns in the stored tensor (for cropping 2-D tensors).
    src_cols: usize,
    /// Columns seen by the merge.
    cols: usize,
    /// Elements seen by the merge.
    n: usize,
}

impl<'a> Src<'a> {
    /// Wraps tensor bytes. `crop`: `Some((rows, cols))` of the leading sub-matrix to expose
    /// (for 2-D tensors whose shape is `[_, src_cols]`).
    pub fn new(
        bytes: Cow<'a, [u8]>,
        dtype: DType,
        shape: &[usize],
        crop: Option<(usize, usize)>,
    ) -> Result<Src<'a>, String> {
        let numel: usize = shape.iter().product();
        let (src_cols, cols, n) = match crop {
            Some((r, c)) if shape.len() == 2 => (shape[1], c, r * c),
            _ => (1, 1, numel),
        };
        let owned = match dtype {
            DType::F32 | DType::F16 | DType::BF16 | DType::F64 => None,
            d if d.is_float() => {
                let view = weightspace_io::TensorView {
                    name: "",
                    dtype,
                    shape,
                    bytes: Cow::Borrowed(&bytes),
                };
                Some(view.to_f32().map_err(|e| e.to_string())?)
            }
            d => return Err(format!("dtype {d} cannot be merged (not a float type)")),
        };
        Ok(Src {
            bytes,
            dtype,
            owned,
            src_cols,
            cols,
            n,
        })
    }

    /// Number of elements exposed.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Reads elements `start..start + out.len()` (of the possibly cropped view) into `out`.
    pub fn read(&self, start: usize, out: &mut [f32]) {
        if self.cols != self.src_cols {
            for (k, o) in out.iter_mut().enumerate() {
                let i = start + k;
                let (r, c) = (i / self.cols, i % self.cols);
                *o = self.at(r * self.src_cols + c);
            }
            return;
        }
        self.read_contig(start, out)
    }

    fn at(&self, i: usize) -> f32 {
        let mut v = [0f32];
        self.read_contig(i, &mut v);
        v[0]
    }

    fn read_contig(&self, start: usize, out: &mut [f32]) {
        if let Some(v) = &self.owned {
            out.copy_from_slice(&v[start..start + out.len()]);
            return;
        }
        let n = out.len();
        match self.dtype {
            DType::F32 => {
                let b = &self.bytes[start * 4..(start + n) * 4];
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            DType::F16 => {
                let b = &self.bytes[start * 2..(start + n) * 2];
                for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            DType::BF16 => {
                let b = &self.bytes[start * 2..(start + n) * 2];
                for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
                }
            }
            DType::F64 => {
                let b = &self.bytes[start * 8..(start + n) * 8];
                for (o, c) in out.iter_mut().zip(b.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    *o = f64::from_le_bytes(a) as f32;
                }
            }
            _ => unreachable!("other dtypes are decoded up front"),
        }
    }

    /// The whole (cropped) tensor as f32.
    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = vec![0f32; self.n];
        v.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, o)| self.read(c * CHUNK, o));
        v
    }
}

/// Encodes f32 values into `out` (little-endian bytes of `dtype`: F32, F16, BF16 or F64).
pub fn encode_into(vals: &[f32], dtype: DType, out: &mut [u8]) {
    match dtype {
        DType::F32 => {
            for (v, o) in vals.iter().zip(out.chunks_exact_mut(4)) {
                o.copy_from_slice(&v.to_le_bytes())
            }
        }
        DType::F16 => {
            for (v, o) in vals.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes())
            }
        }
        DType::BF16 => {
            for (v, o) in vals.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&half::bf16::from_f32(*v).to_le_bytes())
            }
        }
        DType::F64 => {
            for (v, o) in vals.iter().zip(out.chunks_exact_mut(8)) {
                o.copy_from_slice(&(*v as f64).to_le_bytes())
            }
        }
        d => unreachable!("output dtype {d} is checked at planning"),
    }
}

/// Computes an output tensor of `n` elements chunk by chunk in parallel: `f(chunk_index,
/// start, inputs, out)` gets the inputs' values for the chunk (decoded into reused buffers)
/// and fills `out`; the result is encoded into `dtype` bytes.
pub fn map_chunks<F>(srcs: &[&Src], n: usize, dtype: DType, f: F) -> Vec<u8>
where
    F: Fn(usize, usize, &[Vec<f32>], &mut [f32]) + Sync,
{
    map_chunks_with(
        srcs,
        n,
        dtype,
        || (),
        |_, c, start, ins, out| f(c, start, ins, out),
    )
}

/// [`map_chunks`] with per-thread scratch state made by `init` (reused across the chunks a
/// thread handles, so the per-chunk work allocates nothing).
pub fn map_chunks_with<S, I, F>(srcs: &[&Src], n: usize, dtype: DType, init: I, f: F) -> Vec<u8>
where
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, usize, &[Vec<f32>], &mut [f32]) + Sync,
{
    let es = dtype.size().expect("plain dtype");
    let mut bytes = vec![0u8; n * es];
    bytes.par_chunks_mut(CHUNK * es).enumerate().for_each_init(
        || (vec![Vec::new(); srcs.len()], Vec::new(), init()),
        |(ins, out, scratch), (c, ob)| {
            let start = c * CHUNK;
            let len = ob.len() / es;
            for (buf, s) in ins.iter_mut().zip(srcs) {
                buf.resize(len, 0.0);
                s.read(start, buf);
            }
            out.resize(len, 0.0);
            f(scratch, c, start, ins, out);
            encode_into(out, dtype, ob);
        },
    );
    bytes
}

/// Encodes a whole f32 buffer (for methods that materialise their result).
pub fn encode(vals: &[f32], dtype: DType) -> Vec<u8> {
    let es = dtype.size().expect("plain dtype");
    let mut bytes = vec![0u8; vals.len() * es];
    bytes
        .par_chunks_mut(CHUNK * es)
        .zip(vals.par_chunks(CHUNK))
        .for_each(|(o, v)| encode_into(v, dtype, o));
    bytes
}

/// A parallel reduction over chunks: `f(chunk, start, inputs)` returns a partial vector of
/// `k` f64 sums, which are added up.
pub fn reduce_chunks<F>(srcs: &[&Src], n: usize, k: usize, f: F) -> Vec<f64>
where
    F: Fn(usize, usize, &[Vec<f32>]) -> Vec<f64> + Sync,
{
    (0..n_chunks(n))
        .into_par_iter()
        .map_init(
            || vec![Vec::new(); srcs.len()],
            |ins, c| {
                let start = c * CHUNK;
                let len = CHUNK.min(n - start);
                for (buf, s) in ins.iter_mut().zip(srcs) {
                    buf.resize(len, 0.0);
                    s.read(start, buf);
                }
                f(c, start, ins)
            },
        )
        .reduce(
            || vec![0.0; k],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// The order-preserving key of a magnitude: the bits of `|x|` (NaN sorts above infinity).
#[inline]
pub fn mag_key(x: f32) -> u32 {
    x.to_bits() & 0x7fff_ffff
}

/// The result of selecting a rank: the key at that (ascending) rank and how many keys are
/// strictly smaller, and how many are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// Key at the rank.
    pub key: u32,
    /// Number of keys strictly below it.
    pub below: u64,
    /// Number of keys equal to it.
    pub equal: u64,
}

/// Exact selection of several ascending ranks over a key stream, in two histogram passes (top
/// 16 bits, then low 16 bits), without storing the keys. `pass(visit)` must call `visit` with
/// every key (it is called twice and must produce the same keys each time); partial
/// histograms are built in parallel by the caller through [`Hist`].
pub fn select_ranks<P>(ranks: &[u64], pass: P) -> Vec<Selected>
where
    P: Fn(&(dyn Fn(&mut Hist, u32) + Sync)) -> Hist,
{
    // Pass 1: high halves.
    let hi = pass(&|h: &mut Hist, k: u32| h.0[(k >> 16) as usize] += 1);
    let mut targets = Vec::with_capacity(ranks.len());
    for &r in ranks {
        let mut cum = 0u64;
        let mut bin = 0usize;
        for (b, &c) in hi.0.iter().enumerate() {
            if cum + c > r {
                bin = b;
                break;
            }
            cum += c;
        }
        targets.push((bin as u32, cum));
    }
    // Pass 2: low halves within each target bin (one histogram per distinct bin).
    let mut bins: Vec<u32> = targets.iter().map(|t| t.0).collect();
    bins.sort_unstable();
    bins.dedup();
    let nb = bins.len();
    let bins_ref = &bins;
    let lo = pass(&move |h: &mut Hist, k: u32| {
        let top = k >> 16;
        if let Ok(i) = bins_ref.binary_search(&top) {
            h.0[i * 65536 + (k & 0xffff) as usize] += 1;
        }
    });
    let _ = nb;
    ranks
        .iter()
        .zip(&targets)
        .map(|(&r, &(bin, cum_hi))| {
            let i = bins.binary_search(&bin).expect("bin");
            let h = &lo.0[i * 65536..(i + 1) * 65536];
            let mut cum = cum_hi;
            for (l, &c) in h.iter().enumerate() {
                if cum + c > r {
                    return Selected {
                        key: (bin << 16) | l as u32,
                        below: cum,
                        equal: c,
                    };
                }
                cum += c;
            }
            unreachable!("rank {r} is below the number of keys")
        })
        .collect()
}

/// A histogram of 65536·m bins (m = number of target bins in the second pass).
#[derive(Debug, Clone)]
pub struct Hist(pub Vec<u64>);

impl Hist {
    /// An empty histogram large enough for `ranks` target bins.
    pub fn new(ranks: usize) -> Hist {
        Hist(vec![0; 65536 * ranks.max(1)])
    }
    /// Adds another histogram.
    pub fn merged(mut self, o: Hist) -> Hist {
        self.0.iter_mut().zip(o.0).for_each(|(a, b)| *a += b);
        self
    }
}

/// Which elements of a key stream are kept: those whose ascending rank, ties broken by
/// position, lies in `[lo, hi)`. Built from [`select_ranks`]; when a boundary key is shared by
/// kept and dropped elements, `tie_offsets` holds, per chunk, how many elements equal to the
/// lower / upper boundary key come before the chunk.
#[derive(Debug, Clone)]
pub struct RankKeep {
    /// First kept rank.
    pub lo: u64,
    /// One past the last kept rank.
    pub hi: u64,
    /// Boundary at rank `lo`.
    pub low: Selected,
    /// Boundary at rank `hi − 1`.
    pub high: Selected,
    /// Per chunk: (#elements == low.key before it, #elements == high.key before it); empty
    /// when no tie needs breaking.
    pub tie_offsets: Vec<(u64, u64)>,
}

impl RankKeep {
    /// True when elements equal to a boundary key are split between kept and dropped, so
    /// their positions matter.
    pub fn needs_ties(&self) -> bool {
        let low_split = self.lo > self.low.below;
        let high_split = self.hi < self.high.below + self.high.equal;
        low_split || high_split
    }

    /// Fills `keep` for a chunk of keys (chunk index `c`).
    pub fn chunk(
        &self,
        c: usize,
        keys: impl Iterator<Item = u32>,
        mut keep: impl FnMut(usize, bool),
    ) {
        let (mut nl, mut nh) = self.tie_offsets.get(c).copied().unwrap_or((0, 0));
        let ties = !self.tie_offsets.is_empty();
        for (j, k) in keys.enumerate() {
            let kept = if k < self.low.key || k > self.high.key {
                false
            } else if k > self.low.key && k < self.high.key {
                true
            } else if !ties {
                // Boundary keys, all on the kept side.
                true
            } else {
                let rank = if k == self.low.key {
                    self.low.below + nl
                } else {
                    self.high.below + nh
                };
                self.lo <= rank && rank < self.hi
            };
            if k == self.low.key {
                nl += 1;
            }
            if k == self.high.key {
                nh += 1;
            }
            keep(j, kept);
        }
    }
}

/// Builds a [`RankKeep`] for the ascending ranks `[lo, hi)` of the keys of `n` elements,
/// where `keys(c, out)` fills the keys of chunk `c` (deterministic; called up to three
/// times per chunk). `lo < hi ≤ n` must hold.
pub fn rank_keep<K>(n: usize, lo: u64, hi: u64, keys: K) -> RankKeep
where
    K: Fn(usize, &mut Vec<u32>) + Sync,
{
    assert!(lo < hi && hi <= n as u64);
    let nc = n_chunks(n);
    let pass = |visit: &(dyn Fn(&mut Hist, u32) + Sync)| -> Hist {
        (0..nc)
            .into_par_iter()
            .fold(
                || (Hist::new(2), Vec::new()),
                |(mut h, mut buf), c| {
                    keys(c, &mut buf);
                    for &k in &buf {
                        visit(&mut h, k);
                    }
                    (h, buf)
                },
            )
            .map(|(h, _)| h)
            .reduce(|| Hist::new(2), Hist::merged)
    };
    let sel = select_ranks(&[lo, hi - 1], pass);
    let mut rk = RankKeep {
        lo,
        hi,
        low: sel[0],
        high: sel[1],
        tie_offsets: Vec::new(),
    };
    if rk.needs_ties() {
        let counts: Vec<(u64, u64)> = (0..nc)
            .into_par_iter()
            .map_init(Vec::new, |buf, c| {
                keys(c, buf);
                let l = buf.iter().filter(|&&k| k == rk.low.key).count() as u64;
                let h = buf.iter().filter(|&&k| k == rk.high.key).count() as u64;
                (l, h)
            })
            .collect();
        let mut acc = (0u64, 0u64);
        rk.tie_offsets = counts
            .into_iter()
            .map(|(l, h)| {
                let before = acc;
                acc = (acc.0 + l, acc.1 + h);
                before
            })
            .collect();
    }
    rk
}

/// A keyed random stream: uniform numbers in [0, 1) addressed by element index, so any
/// chunk can be generated on any thread and the bits depend only on the seed and the key.
#[derive(Clone)]
pub struct Stream {
    seed: [u8; 32],
}

impl Stream {
    /// A stream for `seed` and a label (tensor name, model, purpose).
    pub fn new(seed: u64, label: &str) -> Stream {
        let mut h = blake3::Hasher::new_derive_key("weightspace-merge random stream v1");
        h.update(&seed.to_le_bytes());
        h.update(label.as_bytes());
        Stream {
            seed: *h.finalize().as_bytes(),
        }
    }

    /// Fills `out` with the raw 32-bit words of elements `start..start + out.len()` (the
    /// uniform of an element is `(word >> 8) / 2^24`).
    pub fn words(&self, start: usize, out: &mut [u32]) {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_word_pos(start as u128);
        for o in out.iter_mut() {
            *o = rng.next_u32();
        }
    }

    /// Fills `out` with the uniforms of elements `start..start + out.len()`.
    pub fn uniforms(&self, start: usize, out: &mut [f32]) {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_word_pos(start as u128);
        for o in out.iter_mut() {
            *o = (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_set(keys: &[u32], lo: u64, hi: u64) -> Vec<bool> {
        let n = keys.len();
        let rk = rank_keep(n, lo, hi, |c, out| {
            out.clear();
            out.extend_from_slice(&keys[c * CHUNK..((c + 1) * CHUNK).min(n)]);
        });
        let mut res = vec![false; n];
        for c in 0..n_chunks(n) {
            let s = c * CHUNK;
            let e = ((c + 1) * CHUNK).min(n);
            rk.chunk(c, keys[s..e].iter().copied(), |j, k| res[s + j] = k);
        }
        res
    }

    fn reference(keys: &[u32], lo: u64, hi: u64) -> Vec<bool> {
        let mut idx: Vec<usize> = (0..keys.len()).collect();
        idx.sort_by_key(|&i| (keys[i], i));
        let mut res = vec![false; keys.len()];
        for &i in &idx[lo as usize..hi as usize] {
            res[i] = true;
        }
        res
    }

    #[test]
    fn rank_keep_matches_a_stable_sort() {
        let s = Stream::new(1, "t");
        let n = CHUNK * 2 + 1234;
        let mut u = vec![0f32; n];
        s.uniforms(0, &mut u);
        // Many ties: only 300 distinct values, some spanning chunk boundaries.
        let keys: Vec<u32> = u.iter().map(|x| (x * 300.0) as u32 * 70_001).collect();
        for (lo, hi) in [
            (0, 10),
            (n as u64 - 500, n as u64),
            (17, n as u64 - 17),
            (0, n as u64),
            (5000, 5001),
        ] {
            assert_eq!(
                keep_set(&keys, lo, hi),
                reference(&keys, lo, hi),
                "{lo}..{hi}"
            );
        }
        let distinct: Vec<u32> = u.iter().map(|x| mag_key(*x - 0.5)).collect();
        assert_eq!(
            keep_set(&distinct, 100, 60_000),
            reference(&distinct, 100, 60_000)
        );
    }

    #[test]
    fn stream_is_addressable() {
        let s = Stream::new(7, "x");
        let mut a = vec![0f32; 1000];
        s.uniforms(0, &mut a);
        let mut b = vec![0f32; 10];
        s.uniforms(500, &mut b);
        assert_eq!(&a[500..510], &b[..]);
        let mean: f32 = a.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05);
        assert!(a.iter().all(|&x| (0.0..1.0).contains(&x)));
    }
}

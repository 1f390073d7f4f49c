//! Datasets: the bundled 8×8 digits, MNIST/Fashion-MNIST IDX files, CIFAR-10 binary batches,
//! synthetic tasks, and the per-model views (class subsets, label permutation, label noise,
//! train fraction, augmentation) that a zoo applies on top of them.
//!
//! Inputs are `f32` in `[0, 1]` for images (stored per sample as `[C, H, W]`, PyTorch's
//! order), raw values for synthetic tasks. Targets are class indices (stored as `f32`) for
//! classification and real vectors for regression.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::rng::Rng;

static DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// What a dataset asks of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Softmax cross-entropy over this many classes; accuracy is top-1.
    Classification {
        /// Number of classes (the output width).
        classes: usize,
    },
    /// Mean squared error over this many outputs; "accuracy" is the fraction of samples whose
    /// every output is within 0.1 of the target.
    Regression {
        /// Number of outputs.
        outputs: usize,
    },
}

impl Task {
    /// The width of a model's output layer.
    pub fn outputs(&self) -> usize {
        match *self {
            Task::Classification { classes } => classes,
            Task::Regression { outputs } => outputs,
        }
    }

    /// Width of one target row in [`Dataset::y`]: 1 for classification.
    pub fn target_width(&self) -> usize {
        match *self {
            Task::Classification { .. } => 1,
            Task::Regression { outputs } => outputs,
        }
    }
}

/// Samples with their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Per-sample input shape: `[C, H, W]` for images, `[D]` for vectors.
    pub shape: Vec<usize>,
    /// Inputs, `len() * dim()` values, sample-major.
    pub x: Vec<f32>,
    /// Targets, `len() * task.target_width()` values (class indices as `f32`).
    pub y: Vec<f32>,
    /// The task.
    pub task: Task,
}

impl Dataset {
    /// Number of values in one input.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        let d = self.dim();
        self.x.len().checked_div(d).unwrap_or(0)
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when inputs are images (`[C, H, W]`).
    pub fn is_image(&self) -> bool {
        self.shape.len() == 3
    }

    /// The samples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let d = self.dim();
        let t = self.task.target_width();
        let mut x = Vec::with_capacity(idx.len() * d);
        let mut y = Vec::with_capacity(idx.len() * t);
        for &i in idx {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
            y.extend_from_slice(&self.y[i * t..(i + 1) * t]);
        }
        Dataset {
            shape: self.shape.clone(),
            x,
            y,
            task: self.task,
        }
    }

    /// Class label of sample `i` (classification only).
    pub fn label(&self, i: usize) -> usize {
        self.y[i] as usize
    }
}

/// A fixed train/test split.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training samples.
    pub train: Dataset,
    /// Held-out samples.
    pub test: Dataset,
}

/// Where a zoo's data comes from (the `dataset` key and its companions).
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The bundled 8×8 digits (1,797 images, 10 classes). The split is fixed and stratified:
    /// within each class, in file order, every fifth image is a test image (355 test, 1,442
    /// train).
    Digits,
    /// MNIST or Fashion-MNIST IDX files in a folder: `train-images-idx3-ubyte`,
    /// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
    /// optionally gzipped (`.gz`).
    Idx(PathBuf),
    /// CIFAR-10 binary batches in a folder: `data_batch_1.bin` … `data_batch_5.bin` (those
    /// present) and `test_batch.bin`.
    Cifar10(PathBuf),
    /// Isotropic Gaussian blobs: class means drawn from N(0, 4·I), samples with unit variance.
    Blobs {
        /// Classes.
        classes: usize,
        /// Input dimension.
        dim: usize,
        /// Training samples.
        n_train: usize,
        /// Test samples.
        n_test: usize,
        /// Generator seed.
        seed: u64,
    },
    /// Two interleaving half circles (scikit-learn's `make_moons`) with Gaussian noise.
    Moons {
        /// Noise standard deviation.
        noise: f64,
        /// Training samples.
        n_train: usize,
        /// Test samples.
        n_test: usize,
        /// Generator seed.
        seed: u64,
    },
    /// Regression: `y = sin(3x)` (1-D) or `y = sin(πx₁)·cos(πx₂)` (2-D), `x` uniform in
    /// `[-1, 1]^d`, plus Gaussian noise on the training targets.
    Regression {
        /// Input dimension, 1 or 2.
        dim: usize,
        /// Target noise standard deviation.
        noise: f64,
        /// Training samples.
        n_train: usize,
        /// Test samples.
        n_test: usize,
        /// Generator seed.
        seed: u64,
    },
}

impl Source {
    /// Loads (or generates) the split.
    pub fn load(&self) -> Result<Split> {
        match self {
            Source::Digits => digits(),
            Source::Idx(p) => read_idx_dir(p),
            Source::Cifar10(p) => read_cifar10_dir(p),
            &Source::Blobs {
                classes,
                dim,
                n_train,
                n_test,
                seed,
            } => Ok(blobs(classes, dim, n_train, n_test, seed)),
            &Source::Moons {
                noise,
                n_train,
                n_test,
                seed,
            } => Ok(moons(noise, n_train, n_test, seed)),
            &Source::Regression {
                dim,
                noise,
                n_train,
                n_test,
                seed,
            } => Ok(regression(dim, noise, n_train, n_test, seed)),
        }
    }
}

/// The bundled digits with their fixed stratified split (see [`Source::Digits`]).
pub fn digits() -> Result<Split> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::data("<bundled digits.csv.gz>", e.to_string()))?;
    let shape = vec![1, 8, 8];
    let task = Task::Classification { classes: 10 };
    let mut train = Dataset {
        shape: shape.clone(),
        x: vec![],
        y: vec![],
        task,
    };
    let mut test = train.clone();
    let mut seen = [0usize; 10];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::data("<bundled digits.csv.gz>", e.to_string()))?;
        if vals.len() != 65 {
            return Err(Error::data(
                "<bundled digits.csv.gz>",
                "row without 65 values",
            ));
        }
        let label = vals[64] as usize;
        let dst = if seen[label] % 5 == 4 {
            &mut test
        } else {
            &mut train
        };
        seen[label] += 1;
        dst.x.extend(vals[..64].iter().map(|v| v / 16.0));
        dst.y.push(label as f32);
    }
    Ok(Split { train, test })
}

fn read_maybe_gz(base: &Path) -> Result<Vec<u8>> {
    let gz = PathBuf::from(format!("{}.gz", base.display()));
    if base.exists() {
        std::fs::read(base).map_err(|e| Error::io(base, e))
    } else if gz.exists() {
        let f = std::fs::File::open(&gz).map_err(|e| Error::io(&gz, e))?;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(f)
            .read_to_end(&mut out)
            .map_err(|e| Error::data(&gz, format!("not a gzip file: {e}")))?;
        Ok(out)
    } else {
        Err(Error::data(
            base,
            "file not found (nor with a .gz suffix); expected the IDX files of MNIST or Fashion-MNIST",
        ))
    }
}

/// Parses an IDX file: returns the dimensions and the `u8` payload.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(path, "not an IDX file (bad magic)"));
    }
    if bytes[2] != 0x08 {
        return Err(Error::data(
            path,
            format!(
                "IDX element type 0x{:02x} unsupported (only unsigned bytes)",
                bytes[2]
            ),
        ));
    }
    let nd = bytes[3] as usize;
    let head = 4 + 4 * nd;
    if nd == 0 || bytes.len() < head {
        return Err(Error::data(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::data(path, "IDX dimensions overflow"))?;
    if bytes.len() - head != n {
        return Err(Error::data(
            path,
            format!(
                "IDX payload has {} bytes, dimensions {:?} need {n}",
                bytes.len() - head,
                dims
            ),
        ));
    }
    Ok((dims, bytes[head..].to_vec()))
}

fn idx_pair(dir: &Path, prefix: &str) -> Result<Dataset> {
    let ip = dir.join(format!("{prefix}-images-idx3-ubyte"));
    let lp = dir.join(format!("{prefix}-labels-idx1-ubyte"));
    let (idims, ibytes) = parse_idx(&ip, &read_maybe_gz(&ip)?)?;
    let (ldims, lbytes) = parse_idx(&lp, &read_maybe_gz(&lp)?)?;
    if idims.len() != 3 {
        return Err(Error::data(
            &ip,
            format!("expected 3 dimensions, found {idims:?}"),
        ));
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        return Err(Error::data(
            &lp,
            format!(
                "{} labels for {} images",
                ldims.first().unwrap_or(&0),
                idims[0]
            ),
        ));
    }
    if let Some(&bad) = lbytes.iter().find(|&&l| l > 9) {
        return Err(Error::data(&lp, format!("label {bad} out of range 0..=9")));
    }
    Ok(Dataset {
        shape: vec![1, idims[1], idims[2]],
        x: ibytes.iter().map(|&b| b as f32 / 255.0).collect(),
        y: lbytes.iter().map(|&l| l as f32).collect(),
        task: Task::Classification { classes: 10 },
    })
}

/// Reads MNIST / Fashion-MNIST IDX files from `dir` (see [`Source::Idx`]).
pub fn read_idx_dir(dir: &Path) -> Result<Split> {
    Ok(Split {
        train: idx_pair(dir, "train")?,
        test: idx_pair(dir, "t10k")?,
    })
}

fn cifar_file(path: &Path, out: &mut Dataset) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    const REC: usize = 1 + 3072;
    if bytes.is_empty() || bytes.len() % REC != 0 {
        return Err(Error::data(
            path,
            format!(
                "{} bytes is not a whole number of 3,073-byte CIFAR-10 records",
                bytes.len()
            ),
        ));
    }
    for rec in bytes.chunks_exact(REC) {
        if rec[0] > 9 {
            return Err(Error::data(
                path,
                format!("label {} out of range 0..=9", rec[0]),
            ));
        }
        out.y.push(rec[0] as f32);
        out.x.extend(rec[1..].iter().map(|&b| b as f32 / 255.0));
    }
    Ok(())
}

/// Reads CIFAR-10 binary batches from `dir` (see [`Source::Cifar10`]).
pub fn read_cifar10_dir(dir: &Path) -> Result<Split> {
    let empty = Dataset {
        shape: vec![3, 32, 32],
        x: vec![],
        y: vec![],
        task: Task::Classification { classes: 10 },
    };
    let mut train = empty.clone();
    for k in 1..=5 {
        let p = dir.join(format!("data_batch_{k}.bin"));
        if p.exists() {
            cifar_file(&p, &mut train)?;
        }
    }
    if train.is_empty() {
        return Err(Error::data(
            dir,
            "no data_batch_<k>.bin file (CIFAR-10 binary version)",
        ));
    }
    let mut test = empty;
    cifar_file(&dir.join("test_batch.bin"), &mut test)?;
    Ok(Split { train, test })
}

fn blobs(classes: usize, dim: usize, n_train: usize, n_test: usize, seed: u64) -> Split {
    let mut rng = Rng::derived(seed, &["blobs"]);
    let means: Vec<f64> = (0..classes * dim).map(|_| 2.0 * rng.normal()).collect();
    let mut gen_set = |n: usize| {
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % classes;
            for d in 0..dim {
                x.push((means[c * dim + d] + rng.normal()) as f32);
            }
            y.push(c as f32);
        }
        Dataset {
            shape: vec![dim],
            x,
            y,
            task: Task::Classification { classes },
        }
    };
    let train = gen_set(n_train);
    let test = gen_set(n_test);
    Split { train, test }
}

fn moons(noise: f64, n_train: usize, n_test: usize, seed: u64) -> Split {
    let mut rng = Rng::derived(seed, &["moons"]);
    let mut gen_set = |n: usize| {
        let mut x = Vec::with_capacity(n * 2);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % 2;
            let t = std::f64::consts::PI * rng.f64();
            let (a, b) = if c == 0 {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            x.push((a + noise * rng.normal()) as f32);
            x.push((b + noise * rng.normal()) as f32);
            y.push(c as f32);
        }
        Dataset {
            shape: vec![2],
            x,
            y,
            task: Task::Classification { classes: 2 },
        }
    };
    let train = gen_set(n_train);
    let test = gen_set(n_test);
    Split { train, test }
}

fn regression(dim: usize, noise: f64, n_train: usize, n_test: usize, seed: u64) -> Split {
    let mut rng = Rng::derived(seed, &["regression", &dim.to_string()]);
    let mut gen_set = |n: usize, noise: f64| {
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let p: Vec<f64> = (0..dim).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let t = if dim == 1 {
                (3.0 * p[0]).sin()
            } else {
                (std::f64::consts::PI * p[0]).sin() * (std::f64::consts::PI * p[1]).cos()
            };
            x.extend(p.iter().map(|&v| v as f32));
            y.push((t + noise * rng.normal()) as f32);
        }
        Dataset {
            shape: vec![dim],
            x,
            y,
            task: Task::Regression { outputs: 1 },
        }
    };
    let train = gen_set(n_train, noise);
    let test = gen_set(n_test, 0.0);
    Split { train, test }
}

/// Per-model changes to a dataset (the data hyper-parameters of a zoo model).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DataOptions {
    /// Keep only these classes, relabelled `0..k` in the order given.
    pub classes: Option<Vec<usize>>,
    /// Permute the labels (train and test alike) with a permutation drawn from this seed.
    pub label_permutation: Option<u64>,
    /// Fraction of training labels replaced by a uniformly random label.
    pub label_noise: f64,
    /// Fraction of the training set kept (a random subset).
    pub train_fraction: f64,
    /// Random input augmentation while training: images shift by up to one pixel in each
    /// direction (zero fill), vectors get Gaussian noise of standard deviation 0.05.
    pub augment: bool,
}

impl DataOptions {
    /// No changes (`train_fraction` 1).
    pub fn none() -> DataOptions {
        DataOptions {
            train_fraction: 1.0,
            ..Default::default()
        }
    }
}

fn relabel(ds: &Dataset, classes: &[usize]) -> Dataset {
    let keep: Vec<usize> = (0..ds.len())
        .filter(|&i| classes.contains(&ds.label(i)))
        .collect();
    let mut out = ds.select(&keep);
    for v in out.y.iter_mut() {
        *v = classes.iter().position(|&c| c == *v as usize).unwrap() as f32;
    }
    out.task = Task::Classification {
        classes: classes.len(),
    };
    out
}

/// Applies `opts` to a split. `rng` draws the train subset and the label noise (the test set
/// only sees class selection and the permutation). Regression tasks accept only
/// `train_fraction` and `augment`.
pub fn apply_options(split: &Split, opts: &DataOptions, rng: &mut Rng) -> Split {
    let mut train = split.train.clone();
    let mut test = split.test.clone();
    if let Task::Classification { .. } = split.train.task {
        if let Some(c) = &opts.classes {
            train = relabel(&train, c);
            test = relabel(&test, c);
        }
        let k = train.task.outputs();
        if let Some(seed) = opts.label_permutation {
            let mut perm: Vec<usize> = (0..k).collect();
            Rng::derived(seed, &["label_permutation"]).shuffle(&mut perm);
            for v in train.y.iter_mut().chain(test.y.iter_mut()) {
                *v = perm[*v as usize] as f32;
            }
        }
        if opts.label_noise > 0.0 {
            for v in train.y.iter_mut() {
                if rng.f64() < opts.label_noise {
                    *v = rng.below(k as u64) as f32;
                }
            }
        }
    }
    if opts.train_fraction < 1.0 {
        let n = train.len();
        let keep_n = ((n as f64 * opts.train_fraction).round() as usize).clamp(1, n);
        let mut idx: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut idx);
        idx.truncate(keep_n);
        idx.sort_unstable();
        train = train.select(&idx);
    }
    Split { train, test }
}

/// Writes augmented copies of `x` (a batch of `shape` inputs) into `out`.
pub(crate) fn augment_batch(shape: &[usize], x: &[f32], out: &mut [f32], rng: &mut Rng) {
    if shape.len() == 3 {
        let (c, h, w) = (shape[0], shape[1], shape[2]);
        let d = c * h * w;
        for (src, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let dy = rng.below(3) as isize - 1;
            let dx = rng.below(3) as isize - 1;
            for ch in 0..c {
                for i in 0..h as isize {
                    for j in 0..w as isize {
                        let (si, sj) = (i - dy, j - dx);
                        let v = if si >= 0 && si < h as isize && sj >= 0 && sj < w as isize {
                            src[ch * h * w + si as usize * w + sj as usize]
                        } else {
                            0.0
                        };
                        dst[ch * h * w + i as usize * w + j as usize] = v;
                    }
                }
            }
        }
    } else {
        for (s, o) in x.iter().zip(out.iter_mut()) {
            *o = s + 0.05 * rng.normal() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_split_is_fixed_and_stratified() {
        let s = digits().unwrap();
        assert_eq!(s.train.len() + s.test.len(), 1797);
        assert_eq!(s.test.len(), 355);
        assert_eq!(s.train.shape, vec![1, 8, 8]);
        let mut counts = [0; 10];
        for i in 0..s.test.len() {
            counts[s.test.label(i)] += 1;
        }
        assert!(counts.iter().all(|&c| (34..=37).contains(&c)), "{counts:?}");
        assert!(s.train.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn options_subset_permute_noise_fraction() {
        let s = digits().unwrap();
        let opts = DataOptions {
            classes: Some(vec![3, 7]),
            label_permutation: Some(5),
            label_noise: 0.0,
            train_fraction: 0.5,
            augment: false,
        };
        let v = apply_options(&s, &opts, &mut Rng::new(1));
        assert_eq!(v.train.task, Task::Classification { classes: 2 });
        assert!(v.test.y.iter().all(|&y| y == 0.0 || y == 1.0));
        let full = apply_options(
            &s,
            &DataOptions {
                train_fraction: 1.0,
                label_permutation: None,
                ..opts.clone()
            },
            &mut Rng::new(1),
        );
        assert_eq!(
            v.train.len(),
            (full.train.len() as f64 * 0.5).round() as usize
        );
        let noisy = apply_options(
            &s,
            &DataOptions {
                label_noise: 1.0,
                ..DataOptions::none()
            },
            &mut Rng::new(2),
        );
        let changed = noisy
            .train
            .y
            .iter()
            .zip(&s.train.y)
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed > s.train.len() / 2);
    }

    #[test]
    fn synthetic_sets_have_the_asked_sizes() {
        let s = Source::Moons {
            noise: 0.1,
            n_train: 100,
            n_test: 40,
            seed: 0,
        }
        .load()
        .unwrap();
        assert_eq!((s.train.len(), s.test.len()), (100, 40));
        let b = Source::Blobs {
            classes: 3,
            dim: 5,
            n_train: 30,
            n_test: 9,
            seed: 1,
        }
        .load()
        .unwrap();
        assert_eq!(b.train.dim(), 5);
        let r = Source::Regression {
            dim: 2,
            noise: 0.0,
            n_train: 10,
            n_test: 5,
            seed: 1,
        }
        .load()
        .unwrap();
        assert_eq!(r.train.task, Task::Regression { outputs: 1 });
    }

    #[test]
    fn augmentation_shifts_images() {
        let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut out = vec![0.0; 9];
        let mut rng = Rng::new(0);
        for _ in 0..10 {
            augment_batch(&[1, 3, 3], &x, &mut out, &mut rng);
            assert!(out.iter().all(|v| x.contains(v)));
        }
    }
}

//! Task vectors (Ilharco et al., "Editing models with task arithmetic"): the difference between
//! a fine-tuned checkpoint and its base, stored as a checkpoint of its own, and applied back to a
//! base with a scale (a negative scale negates: "forgetting" a task).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weightspace_io::{Checkpoint, DType, TensorInfo, write_sharded};

use crate::error::{Error, Result};
use crate::kernels::{self, Src};

/// What a task-vector command wrote.
#[derive(Debug, Clone, Default)]
pub struct TaskVecReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Tensors computed.
    pub tensors: usize,
    /// Tensors skipped or copied unchanged, with the reason.
    pub skipped: Vec<(String, String)>,
}

fn src<'a>(ck: &'a Checkpoint, name: &str) -> Result<Src<'a>> {
    let v = ck.tensor(name)?;
    Src::new(v.bytes, v.dtype, v.shape, None).map_err(|msg| Error::Tensor {
        tensor: name.to_string(),
        msg: format!("in {}: {msg}", ck.path().display()),
    })
}

fn out_float(d: DType) -> DType {
    match d {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => d,
        _ => DType::F32,
    }
}

/// Checks that tensor `i` of the fine-tune `ft` is in `base` with the same shape (a difference
/// needs both): an error naming the tensor and both files otherwise.
pub(crate) fn same_in_base(base: &Checkpoint, ft: &Checkpoint, i: &TensorInfo) -> Result<()> {
    match base.info(&i.name) {
        None => Err(Error::Tensor {
            tensor: i.name.clone(),
            msg: format!(
                "in {} but not in the base {}",
                ft.path().display(),
                base.path().display()
            ),
        }),
        Some(b) if b.shape != i.shape => Err(Error::Tensor {
            tensor: i.name.clone(),
            msg: format!(
                "shape {:?} in {} but {:?} in the base {}",
                i.shape,
                ft.path().display(),
                b.shape,
                base.path().display()
            ),
        }),
        Some(_) => Ok(()),
    }
}

/// `taskvec extract`: writes `ft − base` for every float tensor of `ft` (in `ft`'s order) to
/// `out`, in `dtype` (default f32: a difference stored in bf16 loses most of its bits).
/// Every float tensor of `ft` must exist in `base` with the same shape; non-float tensors are
/// skipped.
pub fn extract(
    base: &Checkpoint,
    ft: &Checkpoint,
    out: &Path,
    dtype: Option<DType>,
    max_shard_bytes: Option<u64>,
) -> Result<TaskVecReport> {
    let mut report = TaskVecReport::default();
    let mut infos = Vec::new();
    for i in ft.infos() {
        if !i.dtype.is_float() {
            report
                .skipped
                .push((i.name.clone(), format!("{} is not a float tensor", i.dtype)));
            continue;
        }
        same_in_base(base, ft, i)?;
        infos.push(TensorInfo {
            name: i.name.clone(),
            dtype: dtype.unwrap_or(DType::F32),
            shape: i.shape.clone(),
        });
    }
    for b in base.infos() {
        if !ft.contains(&b.name) {
            report
                .skipped
                .push((b.name.clone(), "only in the base".into()));
        }
    }
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("weightspace.kind".to_string(), "task_vector".to_string()),
        ("base".to_string(), base.path().display().to_string()),
        ("finetuned".to_string(), ft.path().display().to_string()),
    ]);
    let failure = std::cell::RefCell::new(None);
    let keep = |e: Error| {
        let p = weightspace_io::Error::invalid(out, e.to_string());
        *failure.borrow_mut() = Some(e);
        p
    };
    report.files = write_sharded(out, &infos, &metadata, max_shard_bytes, |i| {
        let info = &infos[i];
        let a = src(ft, &info.name).map_err(keep)?;
        let b = src(base, &info.name).map_err(keep)?;
        Ok(Cow::Owned(kernels::map_chunks(
            &[&a, &b],
            a.len(),
            info.dtype,
            |_, _, ins, o| {
                o.iter_mut()
                    .zip(ins[0].iter().zip(&ins[1]))
                    .for_each(|(o, (x, y))| *o = x - y)
            },
        )))
    })
    .map_err(|e| failure.borrow_mut().take().unwrap_or(Error::Io(e)))?;
    report.tensors = infos.len();
    Ok(report)
}

/// `taskvec apply`: writes `base + scale · Σ tvs` to `out` in the base's dtypes. Base tensors no
/// task vector touches (and non-float ones) are copied; a task-vector tensor missing from the
/// base, or of another shape, is an error.
pub fn apply(
    base: &Checkpoint,
    tvs: &[Checkpoint],
    scale: f64,
    out: &Path,
    max_shard_bytes: Option<u64>,
) -> Result<TaskVecReport> {
    if tvs.is_empty() {
        return Err(Error::Usage("give at least one task vector".into()));
    }
    if !scale.is_finite() {
        return Err(Error::Usage(format!(
            "--scale {scale} is not a finite number"
        )));
    }
    for tv in tvs {
        for i in tv.infos() {
            match base.info(&i.name) {
                None => {
                    return Err(Error::Tensor {
                        tensor: i.name.clone(),
                        msg: format!(
                            "in the task vector {} but not in the base {}",
                            tv.path().display(),
                            base.path().display()
                        ),
                    });
                }
                Some(b) if b.shape != i.shape => {
                    return Err(Error::Tensor {
                        tensor: i.name.clone(),
                        msg: format!(
                            "shape {:?} in the task vector {} but {:?} in the base",
                            i.shape,
                            tv.path().display(),
                            b.shape
                        ),
                    });
                }
                _ => {}
            }
        }
    }
    let mut report = TaskVecReport::default();
    let infos: Vec<TensorInfo> = base
        .infos()
        .map(|i| TensorInfo {
            name: i.name.clone(),
            dtype: if i.dtype.is_float() {
                out_float(i.dtype)
            } else {
                i.dtype
            },
            shape: i.shape.clone(),
        })
        .collect();
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "weightspace.task_vectors".to_string(),
            tvs.iter()
                .map(|t| t.path().display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("weightspace.scale".to_string(), scale.to_string()),
    ]);
    let failure = std::cell::RefCell::new(None);
    let keep = |e: Error| {
        let p = weightspace_io::Error::invalid(out, e.to_string());
        *failure.borrow_mut() = Some(e);
        p
    };
    let s = scale as f32;
    report.files = write_sharded(out, &infos, &metadata, max_shard_bytes, |i| {
        let info = &infos[i];
        let v = base.tensor(&info.name)?;
        let touching: Vec<&Checkpoint> = tvs.iter().filter(|t| t.contains(&info.name)).collect();
        if !info.dtype.is_float() || touching.is_empty() {
            report
                .skipped
                .push((info.name.clone(), "copied from the base".into()));
            if v.dtype == info.dtype {
                return Ok(v.bytes);
            }
            let b = src(base, &info.name).map_err(keep)?;
            return Ok(Cow::Owned(kernels::encode(&b.to_vec(), info.dtype)));
        }
        report.tensors += 1;
        let mut srcs = vec![src(base, &info.name).map_err(keep)?];
        for t in &touching {
            srcs.push(src(t, &info.name).map_err(keep)?);
        }
        let refs: Vec<&Src> = srcs.iter().collect();
        Ok(Cow::Owned(kernels::map_chunks(
            &refs,
            srcs[0].len(),
            info.dtype,
            |_, _, ins, o| {
                for (j, v) in o.iter_mut().enumerate() {
                    let d: f32 = ins[1..].iter().map(|t| t[j]).sum();
                    *v = ins[0][j] + s * d;
                }
            },
        )))
    })
    .map_err(|e| failure.borrow_mut().take().unwrap_or(Error::Io(e)))?;
    Ok(report)
}

//! Reading a finished zoo back: re-evaluating its checkpoints and exporting it as one `.npz`
//! (`np.load("zoo.npz")["weights"]`, one row per model state, plus one array per catalog
//! column).

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::{self, Catalog, CatalogProblem};
use crate::config::{HyperParams, ZooConfig, model_seed};
use crate::data;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::store;

/// Reads `DIR/catalog.parquet` as flat rows, checked (columns, types, ids, and that every
/// row's file exists; see [`Catalog`]).
pub fn read_catalog(dir: &Path) -> Result<Vec<Map<String, Value>>> {
    Ok(Catalog::open(dir)?.rows)
}

/// One re-evaluated model state.
#[derive(Clone, Debug, Serialize)]
pub struct EvalRow {
    /// Model id.
    pub model_id: String,
    /// Epoch.
    pub epoch: i64,
    /// Test accuracy in the catalog.
    pub catalog_test_accuracy: f64,
    /// Test loss recomputed from the checkpoint file.
    pub test_loss: f64,
    /// Test accuracy recomputed from the checkpoint file.
    pub test_accuracy: f64,
    /// True when the recomputed accuracy equals the catalog's (both NaN counts as equal).
    pub matches: bool,
}

/// Loads every checkpoint of a zoo, rebuilds each model's test set from its hyper-parameters
/// and re-evaluates it: checks that files and catalog agree.
pub fn eval_zoo(dir: &Path) -> Result<Vec<EvalRow>> {
    let rows = read_catalog(dir)?;
    let toml = dir.join("zoo.toml");
    if !toml.is_file() {
        return Err(Error::OutputDir {
            path: dir.to_path_buf(),
            msg: "no zoo.toml: re-evaluating rebuilds each model's test set from the config that made the zoo, so only zoos made by `weightspace zoo train` can be re-evaluated".into(),
        });
    }
    let cfg = ZooConfig::from_file(&toml)?;
    let plans = cfg.plan()?;
    let mut cache = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id = Catalog::model_id(&r).to_string();
        let plan = plans
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Error::OutputDir {
                path: dir.to_path_buf(),
                msg: format!("catalog model `{id}` is not in zoo.toml"),
            })?;
        let hp: &HyperParams = &plan.hp;
        let key = format!("{:?}", hp.source());
        if !cache.contains_key(&key) {
            cache.insert(key.clone(), hp.source().load()?);
        }
        let view = data::apply_options(
            &cache[&key],
            &hp.data_options(),
            &mut Rng::new(model_seed(cfg.seed, hp.seed, "data")),
        );
        let (net, st) = store::load_model(&dir.join(Catalog::file(&r)))?;
        let m = net.evaluate(&st, &view.test);
        let cat = r
            .get("test_accuracy")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        out.push(EvalRow {
            model_id: id,
            epoch: Catalog::epoch(&r),
            catalog_test_accuracy: cat,
            test_loss: m.loss,
            test_accuracy: m.accuracy,
            matches: (m.accuracy - cat).abs() < 1e-9 || (m.accuracy.is_nan() && cat.is_nan()),
        });
    }
    Ok(out)
}

fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// What [`export_npz`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    /// Model states (rows of `weights`).
    pub states: usize,
    /// Columns of `weights` (the largest parameter count; smaller models are NaN-padded).
    pub max_params: usize,
    /// Arrays written besides `weights`.
    pub columns: Vec<String>,
}

/// Writes the zoo as an uncompressed `.npz`: `weights` (`float32`, `[states, max_params]`,
/// each row the model's trainable parameters flattened in `state_dict` order, NaN-padded) and
/// one 1-D array per catalog column (numbers as `int64`/`float64`, nulls as NaN, booleans as
/// `bool`, text as fixed-width unicode). Loads with `np.load(path)` (no pickle). Atomic.
///
/// Zoos from other tools export too: checkpoints without the zoo's metadata contribute every
/// tensor but BatchNorm buffers in file order, and without a `num_params` column the row width
/// is the largest checkpoint's parameter count.
pub fn export_npz(dir: &Path, path: &Path) -> Result<ExportSummary> {
    let cat = Catalog::open(dir)?;
    let rows = &cat.rows;
    let n = rows.len();
    if let Some(c) = cat.column("weights") {
        return Err(Error::BadCatalog {
            path: cat.path.clone(),
            problem: CatalogProblem::ColumnType {
                column: c.name.clone(),
                found: c.arrow_type.clone(),
                expected:
                    "no column named `weights`: the export's `weights` array would collide with it"
                        .into(),
            },
        });
    }
    // The row width: the catalog's `num_params` when every row has it (checked against each
    // file below), else a first pass over the files.
    let counts: Option<Vec<usize>> = rows
        .iter()
        .map(|r| {
            r.get("num_params")
                .and_then(Value::as_u64)
                .map(|v| v as usize)
        })
        .collect();
    let max_params = match counts {
        Some(c) => c.into_iter().max().unwrap_or(0),
        None => {
            let mut m = 0;
            for r in rows {
                let ck = weightspace_io::Checkpoint::open(dir.join(Catalog::file(r)))?;
                m = m.max(
                    ck.infos()
                        .filter(|t| !is_buffer(&t.name))
                        .map(|t| t.shape.iter().product::<usize>())
                        .sum(),
                );
            }
            m
        }
    };
    let mut af = weightspace_io::AtomicFile::create(path)?;
    let werr = |e: zip::result::ZipError| Error::io(path, std::io::Error::other(e.to_string()));
    let ioerr = |e: std::io::Error| Error::io(path, e);
    let columns: Vec<String> = cat.columns.iter().map(|c| c.name.clone()).collect();
    {
        let mut z = zip::ZipWriter::new(af.file());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(n * max_params * 4 > u32::MAX as usize / 2);
        z.start_file("weights.npy", opts).map_err(werr)?;
        z.write_all(&npy_header("<f4", &[n, max_params]))
            .map_err(ioerr)?;
        let mut buf = Vec::with_capacity(max_params * 4);
        for (row, r) in rows.iter().enumerate() {
            let file = Catalog::file(r);
            let params = trainable_params(&dir.join(file))?;
            if params.len() > max_params {
                return Err(Error::BadCatalog {
                    path: cat.path.clone(),
                    problem: CatalogProblem::BadValue {
                        column: "num_params".into(),
                        row,
                        model_id: Some(Catalog::model_id(r).into()),
                        msg: format!(
                            "file `{file}` has {} parameters, more than the largest `num_params` ({max_params})",
                            params.len()
                        ),
                    },
                });
            }
            buf.clear();
            for i in 0..max_params {
                let v = params.get(i).copied().unwrap_or(f32::NAN);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            z.write_all(&buf).map_err(ioerr)?;
        }
        for c in &columns {
            let vals: Vec<&Value> = rows
                .iter()
                .map(|r| r.get(c).unwrap_or(&Value::Null))
                .collect();
            let first = vals.iter().find(|v| !v.is_null());
            let mut bytes;
            match first {
                Some(Value::Bool(_)) => {
                    bytes = npy_header("|b1", &[n]);
                    bytes.extend(vals.iter().map(|v| v.as_bool().unwrap_or(false) as u8));
                }
                Some(Value::Number(_)) => {
                    let all_int = vals.iter().all(|v| v.is_i64());
                    if all_int {
                        bytes = npy_header("<i8", &[n]);
                        for v in &vals {
                            bytes.extend_from_slice(&v.as_i64().unwrap().to_le_bytes());
                        }
                    } else {
                        bytes = npy_header("<f8", &[n]);
                        for v in &vals {
                            bytes.extend_from_slice(&v.as_f64().unwrap_or(f64::NAN).to_le_bytes());
                        }
                    }
                }
                _ => {
                    let strs: Vec<Vec<char>> = vals
                        .iter()
                        .map(|v| v.as_str().unwrap_or("").chars().collect())
                        .collect();
                    let w = strs.iter().map(Vec::len).max().unwrap_or(0).max(1);
                    bytes = npy_header(&format!("<U{w}"), &[n]);
                    for s in &strs {
                        for i in 0..w {
                            let ch = s.get(i).map_or(0u32, |&c| c as u32);
                            bytes.extend_from_slice(&ch.to_le_bytes());
                        }
                    }
                }
            }
            z.start_file(format!("{c}.npy"), opts).map_err(werr)?;
            z.write_all(&bytes).map_err(ioerr)?;
        }
        z.finish().map_err(werr)?;
    }
    af.commit()?;
    Ok(ExportSummary {
        states: n,
        max_params,
        columns,
    })
}

/// BatchNorm running statistics and batch counters: state, not trainable parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean")
        || name.ends_with(".running_var")
        || name.ends_with(".num_batches_tracked")
}

/// A checkpoint's trainable parameters flattened: through the zoo's runtime for its own
/// checkpoints (`state_dict` order), else every tensor but BatchNorm buffers in file order,
/// as f32 (checkpoints from other tools).
fn trainable_params(path: &Path) -> Result<Vec<f32>> {
    let ck = weightspace_io::Checkpoint::open(path)?;
    if ck.metadata().contains_key(store::META_ARCH) {
        return Ok(store::load_model(path)?.1.params);
    }
    let mut out = Vec::new();
    for t in ck.infos().filter(|t| !is_buffer(&t.name)) {
        out.extend(ck.tensor_f32(&t.name)?);
    }
    Ok(out)
}

/// Summary of a finished zoo's catalog (`DIR/catalog.parquet`): model and state counts and
/// the final test-accuracy distribution. Prints nicely with `Display`.
pub fn catalog_summary(dir: &Path) -> Result<catalog::CatalogSummary> {
    Ok(catalog::summary(&read_catalog(dir)?))
}

//! The catalog: one row per model state, written as `catalog.parquet` (readable by pandas,
//! polars, duckdb) and kept as JSON lines in the training ledger.
//!
//! Stable columns other tools rely on: `model_id`, `parent_id` (null for roots), `epoch`,
//! `seed`, `train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`, `num_params`,
//! `file`, `weights_hash`; plus `group`, `generalization_gap` (train − test accuracy) and one
//! column per hyper-parameter (see [`crate::config::KEYS`]; list values as JSON text,
//! architecture keys that do not apply to the model's `arch` are null).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::HyperParams;
use crate::error::{Error, Result};

/// One model state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogRow {
    /// Model id.
    pub model_id: String,
    /// Parent model id (fine-tune trees), `None` for roots.
    pub parent_id: Option<String>,
    /// Parent checkpoint epoch the model started from.
    pub parent_epoch: Option<usize>,
    /// Group name.
    pub group: String,
    /// Epoch of this state (0 = before training).
    pub epoch: usize,
    /// Hyper-parameters.
    pub hp: HyperParams,
    /// Training-set loss (evaluation mode).
    #[serde(with = "nan_as_null")]
    pub train_loss: f64,
    /// Training-set accuracy.
    #[serde(with = "nan_as_null")]
    pub train_accuracy: f64,
    /// Test-set loss.
    #[serde(with = "nan_as_null")]
    pub test_loss: f64,
    /// Test-set accuracy.
    #[serde(with = "nan_as_null")]
    pub test_accuracy: f64,
    /// Train accuracy − test accuracy.
    #[serde(with = "nan_as_null")]
    pub generalization_gap: f64,
    /// Trainable parameters.
    pub num_params: usize,
    /// Checkpoint path relative to the zoo folder.
    pub file: String,
    /// BLAKE3 model hash of the checkpoint (hex).
    pub weights_hash: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Json,
}

/// Column names and kinds, in order.
const COLUMNS: &[(&str, Kind)] = &[
    ("model_id", Kind::Str),
    ("parent_id", Kind::Str),
    ("parent_epoch", Kind::Int),
    ("group", Kind::Str),
    ("epoch", Kind::Int),
    ("seed", Kind::Int),
    ("dataset", Kind::Str),
    ("data_path", Kind::Str),
    ("n_train", Kind::Int),
    ("n_test", Kind::Int),
    ("noise", Kind::Float),
    ("data_seed", Kind::Int),
    ("blob_classes", Kind::Int),
    ("blob_dim", Kind::Int),
    ("classes", Kind::Json),
    ("label_permutation", Kind::Int),
    ("label_noise", Kind::Float),
    ("train_fraction", Kind::Float),
    ("augment", Kind::Bool),
    ("arch", Kind::Str),
    ("hidden", Kind::Json),
    ("channels", Kind::Json),
    ("kernel", Kind::Int),
    ("stride", Kind::Int),
    ("padding", Kind::Int),
    ("batchnorm", Kind::Bool),
    ("activation", Kind::Str),
    ("dropout", Kind::Float),
    ("init", Kind::Str),
    ("init_scale", Kind::Float),
    ("optimizer", Kind::Str),
    ("lr", Kind::Float),
    ("batch_size", Kind::Int),
    ("weight_decay", Kind::Float),
    ("epochs", Kind::Int),
    ("checkpoints", Kind::Json),
    ("train_loss", Kind::Float),
    ("train_accuracy", Kind::Float),
    ("test_loss", Kind::Float),
    ("test_accuracy", Kind::Float),
    ("generalization_gap", Kind::Float),
    ("num_params", Kind::Int),
    ("file", Kind::Str),
    ("weights_hash", Kind::Str),
];

const SYNTHETIC_ONLY: [&str; 6] = [
    "n_train",
    "n_test",
    "noise",
    "data_seed",
    "blob_classes",
    "blob_dim",
];
const CNN_ONLY: [&str; 5] = ["channels", "kernel", "stride", "padding", "batchnorm"];

impl CatalogRow {
    /// The row as a flat JSON object with the catalog's column names (inapplicable keys null).
    pub fn to_flat(&self) -> Map<String, Value> {
        let mut m = match serde_json::to_value(&self.hp).expect("JSON") {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let top = serde_json::to_value(self).expect("JSON");
        for (k, v) in top.as_object().unwrap() {
            if k != "hp" {
                m.insert(k.clone(), v.clone());
            }
        }
        let synthetic = matches!(
            self.hp.dataset.as_str(),
            "blobs" | "moons" | "regression1d" | "regression2d"
        );
        if !synthetic {
            for k in SYNTHETIC_ONLY {
                m.insert(k.into(), Value::Null);
            }
        } else if self.hp.dataset != "blobs" {
            m.insert("blob_classes".into(), Value::Null);
            m.insert("blob_dim".into(), Value::Null);
        }
        if self.hp.arch == "cnn" {
            m.insert("hidden".into(), Value::Null);
        } else {
            for k in CNN_ONLY {
                m.insert(k.into(), Value::Null);
            }
        }
        m
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(n, k)| {
                let dt = match k {
                    Kind::Str | Kind::Json => DataType::Utf8,
                    Kind::Int => DataType::Int64,
                    Kind::Float => DataType::Float64,
                    Kind::Bool => DataType::Boolean,
                };
                let required = matches!(
                    *n,
                    "model_id"
                        | "group"
                        | "epoch"
                        | "seed"
                        | "num_params"
                        | "file"
                        | "weights_hash"
                );
                Field::new(*n, dt, !required)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Builds an Arrow record batch of `rows` with the catalog schema.
pub fn to_record_batch(rows: &[CatalogRow]) -> RecordBatch {
    let flat: Vec<Map<String, Value>> = rows.iter().map(|r| r.to_flat()).collect();
    let cols: Vec<ArrayRef> = COLUMNS
        .iter()
        .map(|(name, kind)| -> ArrayRef {
            let vals = flat.iter().map(|m| m.get(*name).unwrap_or(&Value::Null));
            match kind {
                Kind::Str => {
                    let mut b = StringBuilder::new();
                    for v in vals {
                        match v.as_str() {
                            Some(s) => b.append_value(s),
                            None => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
                Kind::Json => {
                    let mut b = StringBuilder::new();
                    for v in vals {
                        if v.is_null() {
                            b.append_null()
                        } else {
                            b.append_value(v.to_string())
                        }
                    }
                    Arc::new(b.finish())
                }
                Kind::Int => {
                    let mut b = Int64Builder::new();
                    for v in vals {
                        b.append_option(v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)));
                    }
                    Arc::new(b.finish())
                }
                Kind::Float => {
                    let mut b = Float64Builder::new();
                    for v in vals {
                        // serde_json writes NaN as null: keep NaN for metrics of diverged nets.
                        b.append_option(match v {
                            Value::Null
                                if name.ends_with("loss")
                                    || name.contains("accuracy")
                                    || *name == "generalization_gap" =>
                            {
                                Some(f64::NAN)
                            }
                            other => other.as_f64(),
                        });
                    }
                    Arc::new(b.finish())
                }
                Kind::Bool => {
                    let mut b = BooleanBuilder::new();
                    for v in vals {
                        b.append_option(v.as_bool());
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    RecordBatch::try_new(schema(), cols).expect("columns match the schema")
}

/// Writes `rows` to `path` as Parquet (zstd), atomically.
pub fn write_parquet(path: &Path, rows: &[CatalogRow]) -> Result<()> {
    let batch = to_record_batch(rows);
    let err = |e: String| Error::Catalog {
        path: path.to_path_buf(),
        msg: e,
    };
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_created_by("weightspace-zoo".into())
        .build();
    let mut buf = Vec::new();
    {
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
            .map_err(|e| err(e.to_string()))?;
        w.write(&batch).map_err(|e| err(e.to_string()))?;
        w.close().map_err(|e| err(e.to_string()))?;
    }
    weightspace_io::write_atomic(path, &buf)?;
    Ok(())
}

/// Reads a catalog written by [`write_parquet`] back as flat JSON rows (column → value).
pub fn read_parquet(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let err = |e: String| Error::Catalog {
        path: path.to_path_buf(),
        msg: e,
    };
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| err(e.to_string()))?
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let start = out.len();
        out.extend((0..batch.num_rows()).map(|_| Map::new()));
        for (fi, field) in batch.schema().fields().iter().enumerate() {
            let col = batch.column(fi);
            for r in 0..batch.num_rows() {
                let v = if col.is_null(r) {
                    Value::Null
                } else if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
                    Value::String(a.value(r).to_string())
                } else if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
                    Value::from(a.value(r))
                } else if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
                    serde_json::Number::from_f64(a.value(r))
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                } else if let Some(a) = col.as_any().downcast_ref::<BooleanArray>() {
                    Value::Bool(a.value(r))
                } else {
                    return Err(err(format!(
                        "column `{}` has an unsupported type",
                        field.name()
                    )));
                };
                out[start + r].insert(field.name().clone(), v);
            }
        }
    }
    Ok(out)
}

/// A short description of a catalog: counts and the test-accuracy distribution of the last
/// checkpoint of every model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogSummary {
    /// Distinct models.
    pub models: usize,
    /// Rows (model states).
    pub states: usize,
    /// Models with a parent.
    pub fine_tuned: usize,
    /// Per group: (name, models).
    pub groups: Vec<(String, usize)>,
    /// Test accuracy of each model's last state: min, 10th, 25th, 50th, 75th, 90th
    /// percentile, max, mean (NaN counts as 0).
    pub final_test_accuracy: [f64; 8],
    /// Histogram of final test accuracy in ten bins [0, 0.1), …, [0.9, 1.0].
    pub histogram: [usize; 10],
}

/// Summarises flat catalog rows (as [`read_parquet`] returns or [`CatalogRow::to_flat`]
/// makes).
pub fn summary(rows: &[Map<String, Value>]) -> CatalogSummary {
    use std::collections::BTreeMap;
    let mut last: BTreeMap<String, (i64, f64, String, bool)> = BTreeMap::new();
    for r in rows {
        let id = r
            .get("model_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let epoch = r.get("epoch").and_then(Value::as_i64).unwrap_or(0);
        let acc = r
            .get("test_accuracy")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let group = r
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let child = r.get("parent_id").is_some_and(|v| !v.is_null());
        let e = last.entry(id).or_insert((epoch, acc, group, child));
        if epoch >= e.0 {
            e.0 = epoch;
            e.1 = acc;
        }
    }
    let mut accs: Vec<f64> = last.values().map(|v| v.1).collect();
    accs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| -> f64 {
        if accs.is_empty() {
            return f64::NAN;
        }
        let i = ((accs.len() - 1) as f64 * p).round() as usize;
        accs[i]
    };
    let mean = if accs.is_empty() {
        f64::NAN
    } else {
        accs.iter().sum::<f64>() / accs.len() as f64
    };
    let mut histogram = [0usize; 10];
    for a in &accs {
        histogram[((a * 10.0) as usize).min(9)] += 1;
    }
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for v in last.values() {
        *groups.entry(v.2.clone()).or_default() += 1;
    }
    CatalogSummary {
        models: last.len(),
        states: rows.len(),
        fine_tuned: last.values().filter(|v| v.3).count(),
        groups: groups.into_iter().collect(),
        final_test_accuracy: [
            q(0.0),
            q(0.1),
            q(0.25),
            q(0.5),
            q(0.75),
            q(0.9),
            q(1.0),
            mean,
        ],
        histogram,
    }
}

impl std::fmt::Display for CatalogSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} models ({} fine-tuned), {} states",
            self.models, self.fine_tuned, self.states
        )?;
        for (g, n) in &self.groups {
            writeln!(f, "  group {g}: {n} models")?;
        }
        let a = &self.final_test_accuracy;
        writeln!(
            f,
            "final test accuracy: min {:.3}  p10 {:.3}  p25 {:.3}  median {:.3}  p75 {:.3}  p90 {:.3}  max {:.3}  mean {:.3}",
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
        )?;
        write!(f, "histogram (0.0–1.0 in tenths): {:?}", self.histogram)
    }
}

/// JSON has no NaN: diverged networks' metrics are stored as `null` in the ledger and read
/// back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

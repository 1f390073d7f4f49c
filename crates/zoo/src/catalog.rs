//! The catalog: one row per model state, written as `catalog.parquet` (readable by pandas,
//! polars, duckdb) and kept as JSON lines in the training ledger.
//!
//! Stable columns other tools rely on: `model_id`, `parent_id` (null for roots), `epoch`,
//! `seed`, `train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`, `num_params`,
//! `file`, `weights_hash`; plus `group`, `generalization_gap` (train − test accuracy) and one
//! column per hyper-parameter (see [`crate::config::KEYS`]; list values as JSON text,
//! architecture keys that do not apply to the model's `arch` are null).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, RecordBatch, StringBuilder,
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

/// Reads a catalog back as flat JSON rows (column → value), checked like [`Catalog::read`]
/// (no file checks: the rows' files are not looked at).
pub fn read_parquet(path: &Path) -> Result<Vec<Map<String, Value>>> {
    Ok(Catalog::read(path)?.rows)
}

/// The columns a catalog must have, whoever made it: what each means.
pub const REQUIRED_COLUMNS: &[(&str, &str)] = &[
    ("model_id", "the model's id, text"),
    (
        "file",
        "the checkpoint path relative to the zoo folder, text",
    ),
];

/// How a catalog column's values are read (whatever Arrow type of that family it has).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ColumnKind {
    /// Utf8, LargeUtf8, Utf8View or a dictionary of strings: JSON strings.
    Text,
    /// Any signed or unsigned integer type: JSON integers.
    Int,
    /// Float16/32/64 or decimal: JSON numbers (NaN as null).
    Float,
    /// Boolean.
    Bool,
    /// Anything else (lists, structs, timestamps, binary, ...): Arrow's display text, so that it
    /// can be listed and exported but not used as a number.
    Other,
}

/// One column of a catalog as read from disk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The Arrow type in the file, as Arrow prints it (`Int64`, `Utf8`, `List(Int64)`, ...).
    pub arrow_type: String,
    /// How its values are read.
    pub kind: ColumnKind,
}

/// Columns holding model ids: text, or integers that are read as text.
const ID_COLUMNS: [&str; 2] = ["model_id", "parent_id"];

/// What a known column must hold, for the type check on reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Text,
    /// A model id: text, or integers (read as their decimal text).
    Id,
    Int,
    Number,
}

impl Expect {
    fn accepts(self, k: ColumnKind) -> bool {
        matches!(
            (self, k),
            (Expect::Text, ColumnKind::Text)
                | (Expect::Id, ColumnKind::Text | ColumnKind::Int)
                | (Expect::Int, ColumnKind::Int)
                | (Expect::Number, ColumnKind::Int | ColumnKind::Float)
        )
    }
    fn describe(self) -> &'static str {
        match self {
            Expect::Text => "text (Utf8, LargeUtf8, Utf8View or a dictionary of strings)",
            Expect::Id => "text or an integer",
            Expect::Int => "an integer (Int8…Int64 or UInt8…UInt64)",
            Expect::Number => "a number (an integer or Float16/32/64)",
        }
    }
}

/// Columns whose values some command interprets (listing, summaries, exports, learning), with
/// the type they must have. Every other column, the hyper-parameters included, is read
/// whatever its type: another tool may well store `hidden` as a list or `seed` as text.
const TYPED_COLUMNS: &[(&str, Expect)] = &[
    ("model_id", Expect::Id),
    ("parent_id", Expect::Id),
    ("file", Expect::Text),
    ("epoch", Expect::Int),
    ("group", Expect::Text),
    ("activation", Expect::Text),
    ("num_params", Expect::Int),
    ("train_loss", Expect::Number),
    ("train_accuracy", Expect::Number),
    ("test_loss", Expect::Number),
    ("test_accuracy", Expect::Number),
    ("generalization_gap", Expect::Number),
];

/// The type column `name` must have; `None` when any type is read.
fn expected_kind(name: &str) -> Option<Expect> {
    TYPED_COLUMNS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| *e)
}

/// What is wrong with a catalog read from disk. Rows are counted from 0, as pandas and polars
/// number them.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CatalogProblem {
    /// The file is not a Parquet file Arrow can read.
    #[error("not a readable Parquet file: {0}")]
    Unreadable(String),
    /// A column every catalog needs is absent.
    #[error("missing column `{column}` ({meaning}); the catalog has: {present}")]
    MissingColumn {
        /// The column.
        column: String,
        /// What it holds.
        meaning: String,
        /// The columns it does have, comma-separated.
        present: String,
    },
    /// Two columns share a name.
    #[error("column `{column}` appears more than once")]
    DuplicateColumn {
        /// The column.
        column: String,
    },
    /// A column has an Arrow type its meaning does not allow.
    #[error("column `{column}` has Arrow type {found}, expected {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// The Arrow type in the file.
        found: String,
        /// What it must be.
        expected: String,
    },
    /// A column that needs a value in every row has a null.
    #[error("row {row}{}: column `{column}` is null", model(.model_id))]
    Null {
        /// The column.
        column: String,
        /// Row index (from 0).
        row: usize,
        /// The row's model id, when it has one.
        model_id: Option<String>,
    },
    /// A value that its column cannot hold (a negative epoch, an empty file name).
    #[error("row {row}{}: column `{column}`: {msg}", model(.model_id))]
    BadValue {
        /// The column.
        column: String,
        /// Row index (from 0).
        row: usize,
        /// The row's model id, when it has one.
        model_id: Option<String>,
        /// What is wrong.
        msg: String,
    },
    /// Two rows describe the same model state.
    #[error("model `{model_id}`{} appears twice, in rows {first} and {second}", .epoch.map(|e| format!(" at epoch {e}")).unwrap_or_default())]
    DuplicateId {
        /// The model id.
        model_id: String,
        /// The epoch (when the catalog has an `epoch` column).
        epoch: Option<i64>,
        /// First row.
        first: usize,
        /// Second row.
        second: usize,
    },
    /// Two rows point to the same checkpoint file.
    #[error("rows {first} and {second} both have file `{file}`")]
    DuplicateFile {
        /// The file, as written in the catalog.
        file: String,
        /// First row.
        first: usize,
        /// Second row.
        second: usize,
    },
    /// A row's checkpoint file is not there.
    #[error("row {row} (model `{model_id}`): file `{file}` does not exist in the zoo folder {}", .dir.display())]
    MissingFile {
        /// The file, as written in the catalog (relative to the zoo folder).
        file: String,
        /// Row index (from 0).
        row: usize,
        /// The row's model id.
        model_id: String,
        /// The zoo folder.
        dir: PathBuf,
    },
}

fn model(id: &Option<String>) -> String {
    id.as_ref()
        .map(|m| format!(" (model `{m}`)"))
        .unwrap_or_default()
}

/// A catalog read from disk and checked: the columns with their types, and one flat JSON row
/// per model state.
///
/// [`Catalog::read`] checks what every command relies on, so that a catalog written by another
/// tool either reads or is refused with a [`CatalogProblem`] naming the column, row or file:
/// the required columns (`model_id`, `file`; see [`REQUIRED_COLUMNS`]) are present, text and
/// never null; `epoch`, when present, is a non-negative integer in every row; the columns
/// commands interpret have their type (`test_accuracy` a number, `group` text, ...); no two
/// columns share a name; no (model id, epoch) pair and no file appears twice. Every other
/// column (hyper-parameters, other tools' columns) is read whatever its type.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// The catalog file.
    pub path: PathBuf,
    /// The columns, in file order.
    pub columns: Vec<ColumnInfo>,
    /// The rows: column → value (null where the file has a null).
    pub rows: Vec<Map<String, Value>>,
}

impl Catalog {
    /// Reads and checks a catalog file (see [`Catalog`] for what is checked).
    pub fn read(path: &Path) -> Result<Catalog> {
        let bad = |problem: CatalogProblem| Error::BadCatalog {
            path: path.to_path_buf(),
            problem,
        };
        let unreadable = |e: String| bad(CatalogProblem::Unreadable(e));
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| unreadable(e.to_string()))?;
        let schema = builder.schema().clone();
        let mut columns: Vec<ColumnInfo> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            if columns.iter().any(|c| c.name == *field.name()) {
                return Err(bad(CatalogProblem::DuplicateColumn {
                    column: field.name().clone(),
                }));
            }
            columns.push(ColumnInfo {
                name: field.name().clone(),
                arrow_type: field.data_type().to_string(),
                kind: kind_of(field.data_type()),
            });
        }
        for (name, meaning) in REQUIRED_COLUMNS {
            if !columns.iter().any(|c| c.name == *name) {
                return Err(bad(CatalogProblem::MissingColumn {
                    column: name.to_string(),
                    meaning: meaning.to_string(),
                    present: columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }));
            }
        }
        for c in &columns {
            if let Some(want) = expected_kind(&c.name)
                && !want.accepts(c.kind)
            {
                return Err(bad(CatalogProblem::ColumnType {
                    column: c.name.clone(),
                    found: c.arrow_type.clone(),
                    expected: want.describe().to_string(),
                }));
            }
        }
        let reader = builder.build().map_err(|e| unreadable(e.to_string()))?;
        let mut rows: Vec<Map<String, Value>> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| unreadable(e.to_string()))?;
            let start = rows.len();
            rows.extend((0..batch.num_rows()).map(|_| Map::new()));
            for (ci, info) in columns.iter().enumerate() {
                let mut vals = column_values(batch.column(ci).as_ref(), info.kind)
                    .map_err(|e| unreadable(format!("column `{}`: {e}", info.name)))?;
                if ID_COLUMNS.contains(&info.name.as_str()) && info.kind == ColumnKind::Int {
                    for v in &mut vals {
                        if let Value::Number(n) = v {
                            *v = Value::String(n.to_string());
                        }
                    }
                }
                for (r, v) in vals.into_iter().enumerate() {
                    rows[start + r].insert(info.name.clone(), v);
                }
            }
        }
        let cat = Catalog {
            path: path.to_path_buf(),
            columns,
            rows,
        };
        cat.check_rows().map_err(bad)?;
        Ok(cat)
    }

    /// Reads `DIR/catalog.parquet` and also checks that every row's file exists in `DIR`.
    pub fn open(dir: &Path) -> Result<Catalog> {
        let p = dir.join("catalog.parquet");
        if !p.is_file() {
            return Err(Error::OutputDir {
                path: dir.to_path_buf(),
                msg: if dir.is_dir() {
                    "no catalog.parquet: not a zoo folder, or its training has not finished (a zoo from another tool needs catalog.parquet with at least the columns model_id and file)".into()
                } else {
                    "not a folder (expected a zoo folder holding catalog.parquet)".into()
                },
            });
        }
        let cat = Catalog::read(&p)?;
        for (row, r) in cat.rows.iter().enumerate() {
            let file = Catalog::file(r);
            if !dir.join(file).is_file() {
                return Err(Error::BadCatalog {
                    path: p.clone(),
                    problem: CatalogProblem::MissingFile {
                        file: file.to_string(),
                        row,
                        model_id: Catalog::model_id(r).to_string(),
                        dir: dir.to_path_buf(),
                    },
                });
            }
        }
        Ok(cat)
    }

    /// The column named `name`, if the catalog has it.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A checked row's model id (integer ids read as their decimal text).
    pub fn model_id(row: &Map<String, Value>) -> &str {
        row.get("model_id").and_then(Value::as_str).unwrap_or("")
    }

    /// A checked row's file (relative to the zoo folder).
    pub fn file(row: &Map<String, Value>) -> &str {
        row.get("file").and_then(Value::as_str).unwrap_or("")
    }

    /// A checked row's epoch: 0 when the catalog has no `epoch` column (one state per model).
    pub fn epoch(row: &Map<String, Value>) -> i64 {
        row.get("epoch").and_then(Value::as_i64).unwrap_or(0)
    }

    fn check_rows(&self) -> std::result::Result<(), CatalogProblem> {
        use std::collections::HashMap;
        let has_epoch = self.column("epoch").is_some();
        let mut states: HashMap<(&str, i64), usize> = HashMap::new();
        // Files by their path without `.` components: `a.safetensors` and `./a.safetensors` are
        // one file (two models on one file could land on both sides of a train/test split).
        let mut files: HashMap<std::path::PathBuf, usize> = HashMap::new();
        for (row, r) in self.rows.iter().enumerate() {
            let id = r.get("model_id").and_then(Value::as_str);
            let null = |column: &str| CatalogProblem::Null {
                column: column.into(),
                row,
                model_id: id.map(String::from),
            };
            let bad_value = |column: &str, msg: &str| CatalogProblem::BadValue {
                column: column.into(),
                row,
                model_id: id.map(String::from),
                msg: msg.into(),
            };
            let id = id.ok_or_else(|| null("model_id"))?;
            if id.is_empty() {
                return Err(bad_value("model_id", "empty id"));
            }
            let file = r
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| null("file"))?;
            if file.is_empty() {
                return Err(bad_value("file", "empty file name"));
            }
            let epoch = if has_epoch {
                match r.get("epoch") {
                    Some(Value::Number(n)) => match n.as_i64() {
                        Some(e) if e >= 0 => e,
                        _ => {
                            return Err(bad_value(
                                "epoch",
                                &format!("{n} is not an epoch (0 or more)"),
                            ));
                        }
                    },
                    _ => return Err(null("epoch")),
                }
            } else {
                0
            };
            if let Some(first) = states.insert((id, epoch), row) {
                return Err(CatalogProblem::DuplicateId {
                    model_id: id.into(),
                    epoch: has_epoch.then_some(epoch),
                    first,
                    second: row,
                });
            }
            let key: std::path::PathBuf = std::path::Path::new(file)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            if let Some(first) = files.insert(key, row) {
                return Err(CatalogProblem::DuplicateFile {
                    file: file.into(),
                    first,
                    second: row,
                });
            }
        }
        Ok(())
    }
}

fn kind_of(dt: &DataType) -> ColumnKind {
    use DataType as D;
    match dt {
        D::Utf8 | D::LargeUtf8 | D::Utf8View => ColumnKind::Text,
        D::Dictionary(_, v) if matches!(**v, D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
            ColumnKind::Text
        }
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => {
            ColumnKind::Int
        }
        D::Float16 | D::Float32 | D::Float64 | D::Decimal128(..) | D::Decimal256(..) => {
            ColumnKind::Float
        }
        D::Boolean => ColumnKind::Bool,
        _ => ColumnKind::Other,
    }
}

/// One column's values as JSON (null where the array is null; NaN floats as null).
fn column_values(
    col: &dyn Array,
    kind: ColumnKind,
) -> std::result::Result<Vec<Value>, arrow::error::ArrowError> {
    use arrow::array::{AsArray, UInt64Array};
    use arrow::compute::cast;
    let n = col.len();
    let nulls = col.logical_nulls();
    let is_null = |r: usize| nulls.as_ref().is_some_and(|b| b.is_null(r));
    let mut out = Vec::with_capacity(n);
    match kind {
        ColumnKind::Text => {
            let a = cast(col, &DataType::Utf8)?;
            let a = a.as_string::<i32>();
            for r in 0..n {
                out.push(if is_null(r) || a.is_null(r) {
                    Value::Null
                } else {
                    Value::String(a.value(r).to_string())
                });
            }
        }
        ColumnKind::Int => {
            if let Some(a) = col.as_any().downcast_ref::<UInt64Array>() {
                for r in 0..n {
                    out.push(if is_null(r) {
                        Value::Null
                    } else {
                        Value::from(a.value(r))
                    });
                }
            } else {
                let a = cast(col, &DataType::Int64)?;
                let a = a
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("cast to Int64");
                for r in 0..n {
                    out.push(if is_null(r) || a.is_null(r) {
                        Value::Null
                    } else {
                        Value::from(a.value(r))
                    });
                }
            }
        }
        ColumnKind::Float => {
            let a = cast(col, &DataType::Float64)?;
            let a = a
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64");
            for r in 0..n {
                out.push(if is_null(r) || a.is_null(r) {
                    Value::Null
                } else {
                    serde_json::Number::from_f64(a.value(r))
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                });
            }
        }
        ColumnKind::Bool => {
            let a = col
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("Boolean column");
            for r in 0..n {
                out.push(if is_null(r) {
                    Value::Null
                } else {
                    Value::Bool(a.value(r))
                });
            }
        }
        ColumnKind::Other => {
            let opts = arrow::util::display::FormatOptions::default();
            let f = arrow::util::display::ArrayFormatter::try_new(col, &opts)?;
            for r in 0..n {
                out.push(if is_null(r) {
                    Value::Null
                } else {
                    Value::String(f.value(r).to_string())
                });
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
        // A catalog without groups (another tool's) has one unnamed group: nothing to list.
        for (g, n) in self.groups.iter().filter(|(g, _)| !g.is_empty()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, epoch: usize, acc: f64) -> CatalogRow {
        let cfg = crate::config::ZooConfig::from_toml_str("[[models]]\narch = \"cnn\"").unwrap();
        CatalogRow {
            model_id: id.into(),
            parent_id: None,
            parent_epoch: None,
            group: "g0".into(),
            epoch,
            hp: cfg.plan().unwrap()[0].hp.clone(),
            train_loss: f64::NAN,
            train_accuracy: 0.1,
            test_loss: f64::NAN,
            test_accuracy: acc,
            generalization_gap: 0.1 - acc,
            num_params: 10,
            file: format!("models/{id}/epoch_{epoch}.safetensors"),
            weights_hash: "00".into(),
        }
    }

    #[test]
    fn typed_columns_are_catalog_columns() {
        for (n, _) in TYPED_COLUMNS {
            assert!(COLUMNS.iter().any(|(c, _)| c == n), "{n}");
        }
    }

    #[test]
    fn nan_metrics_survive_the_ledger_and_parquet() {
        let r = row("a", 0, 0.5);
        let back: CatalogRow = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(back.train_loss.is_nan() && back.test_accuracy == 0.5);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.parquet");
        write_parquet(&p, &[r, row("a", 1, 0.9), row("b", 3, 0.2)]).unwrap();
        let rows = read_parquet(&p).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0]["parent_id"].is_null());
        assert!(
            rows[0]["hidden"].is_null(),
            "MLP-only column is null for a CNN"
        );
        assert_eq!(rows[0]["channels"], "[16,16,16]");
        let s = summary(&rows);
        assert_eq!((s.models, s.states), (2, 3));
        assert_eq!(s.final_test_accuracy[6], 0.9);
        assert_eq!(s.histogram[2] + s.histogram[9], 2);
    }
}

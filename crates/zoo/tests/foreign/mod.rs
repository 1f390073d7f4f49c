//! Zoos as other tools write them: `catalog.parquet` with any columns of any Arrow type, and
//! plain safetensors MLPs without the zoo's metadata, no `zoo.toml`. Shared by the zoo, learn
//! and CLI tests (included with `#[path]`), which feed malformed catalogs to every reader.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, Int64Builder,
    LargeStringArray, ListBuilder, RecordBatch, StringArray,
};
use arrow::datatypes::{Field, Schema};

/// A column's values, with the Arrow type they are written as.
#[derive(Clone, Debug)]
pub enum Data {
    /// Utf8.
    Str(Vec<Option<String>>),
    /// LargeUtf8 (polars writes these).
    LargeStr(Vec<Option<String>>),
    /// Int64.
    I64(Vec<Option<i64>>),
    /// Int32.
    I32(Vec<Option<i32>>),
    /// Float64.
    F64(Vec<Option<f64>>),
    /// Float32.
    F32(Vec<Option<f32>>),
    /// Boolean.
    Bool(Vec<Option<bool>>),
    /// List<Int64>, a type catalogs do not use.
    List(Vec<Vec<i64>>),
}

impl Data {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Data::Str(v) | Data::LargeStr(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::List(v) => v.len(),
        }
    }

    /// Sets row `r` to null (a list row becomes empty).
    pub fn set_null(&mut self, r: usize) {
        match self {
            Data::Str(v) | Data::LargeStr(v) => v[r] = None,
            Data::I64(v) => v[r] = None,
            Data::I32(v) => v[r] = None,
            Data::F64(v) => v[r] = None,
            Data::F32(v) => v[r] = None,
            Data::Bool(v) => v[r] = None,
            Data::List(v) => v[r].clear(),
        }
    }

    /// `n` values of type number `t` (0..8, see [`Data`]'s variants in order), derived from
    /// the row index.
    pub fn of_type(t: usize, n: usize) -> Data {
        match t % 8 {
            0 => Data::Str((0..n).map(|i| Some(format!("v{i}"))).collect()),
            1 => Data::LargeStr((0..n).map(|i| Some(format!("w{i}"))).collect()),
            2 => Data::I64((0..n).map(|i| Some(i as i64 * 3)).collect()),
            3 => Data::I32((0..n).map(|i| Some(i as i32 + 1)).collect()),
            4 => Data::F64((0..n).map(|i| Some(i as f64 * 0.5)).collect()),
            5 => Data::F32((0..n).map(|i| Some(i as f32 * 0.25)).collect()),
            6 => Data::Bool((0..n).map(|i| Some(i % 2 == 0)).collect()),
            _ => Data::List((0..n).map(|i| vec![i as i64, 16]).collect()),
        }
    }

    /// True for the text types.
    pub fn is_text(&self) -> bool {
        matches!(self, Data::Str(_) | Data::LargeStr(_))
    }

    /// True for the integer types.
    pub fn is_int(&self) -> bool {
        matches!(self, Data::I64(_) | Data::I32(_))
    }

    /// True for the integer and float types.
    pub fn is_number(&self) -> bool {
        matches!(
            self,
            Data::I64(_) | Data::I32(_) | Data::F64(_) | Data::F32(_)
        )
    }

    fn array(&self) -> ArrayRef {
        match self {
            Data::Str(v) => Arc::new(StringArray::from(v.clone())),
            Data::LargeStr(v) => Arc::new(LargeStringArray::from(v.clone())),
            Data::I64(v) => Arc::new(Int64Array::from(v.clone())),
            Data::I32(v) => Arc::new(Int32Array::from(v.clone())),
            Data::F64(v) => Arc::new(Float64Array::from(v.clone())),
            Data::F32(v) => Arc::new(Float32Array::from(v.clone())),
            Data::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Data::List(v) => {
                let mut b = ListBuilder::new(Int64Builder::new());
                for row in v {
                    for x in row {
                        b.values().append_value(*x);
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
        }
    }
}

/// One named column.
#[derive(Clone, Debug)]
pub struct Col {
    /// Column name.
    pub name: String,
    /// Values.
    pub data: Data,
}

impl Col {
    /// A column.
    pub fn new(name: &str, data: Data) -> Col {
        Col {
            name: name.into(),
            data,
        }
    }
}

/// Writes the columns as a Parquet file (every field nullable, names as given, duplicates too).
pub fn write_catalog(path: &Path, cols: &[Col]) {
    let arrays: Vec<ArrayRef> = cols.iter().map(|c| c.data.array()).collect();
    let fields: Vec<Field> = cols
        .iter()
        .zip(&arrays)
        .map(|(c, a)| Field::new(&c.name, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = if cols.is_empty() {
        RecordBatch::new_empty(schema.clone())
    } else {
        RecordBatch::try_new(schema.clone(), arrays).unwrap()
    };
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Writes a plain MLP (4 → 8 → 3, `net.0`/`net.2` as a PyTorch `nn.Sequential` with a ReLU
/// names them), no metadata; values from `seed`.
pub fn write_mlp(path: &Path, seed: u64) {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut vals = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let tensors = vec![
        ("net.0.weight", vec![8, 4], vals(32)),
        ("net.0.bias", vec![8], vals(8)),
        ("net.2.weight", vec![3, 8], vals(24)),
        ("net.2.bias", vec![3], vals(3)),
    ];
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    weightspace_io::write_f32_safetensors(path, &tensors, &BTreeMap::new()).unwrap();
}

/// Writes `n` MLPs under `dir/weights/` and returns the catalog columns another tool would
/// write for them: `model_id` (`m0`, …), `file` (`weights/m0.safetensors`, …) and
/// `test_accuracy` (a number per model). Writes no catalog.
pub fn make_models(dir: &Path, n: usize) -> Vec<Col> {
    let ids: Vec<Option<String>> = (0..n).map(|i| Some(format!("m{i}"))).collect();
    let files: Vec<Option<String>> = (0..n)
        .map(|i| Some(format!("weights/m{i}.safetensors")))
        .collect();
    for (i, f) in files.iter().enumerate() {
        write_mlp(&dir.join(f.as_ref().unwrap()), i as u64);
    }
    let acc = (0..n)
        .map(|i| Some(0.3 + 0.6 * (i as f64) / (n as f64)))
        .collect();
    vec![
        Col::new("model_id", Data::Str(ids)),
        Col::new("file", Data::Str(files)),
        Col::new("test_accuracy", Data::F64(acc)),
    ]
}

/// A foreign zoo in `dir`: `n` MLPs and their catalog (`model_id`, `file`, `test_accuracy`).
pub fn make_zoo(dir: &Path, n: usize) {
    let cols = make_models(dir, n);
    write_catalog(&dir.join("catalog.parquet"), &cols);
}

/// One thing wrong (or unusual but fine) with a foreign catalog. Columns are numbered as
/// [`base_columns`] returns them: 0 `model_id`, 1 `file`, 2 `test_accuracy`, 3 `epoch`.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Nothing: the catalog is valid.
    Nothing,
    /// The column is dropped.
    Drop(usize),
    /// The column is rewritten with values of type `t` (see [`Data::of_type`]).
    Retype(usize, usize),
    /// One value of the column is null.
    Null(usize, usize),
    /// Row `b` gets row `a`'s model id and epoch.
    DuplicateId(usize, usize),
    /// Row `b` gets row `a`'s file.
    DuplicateFile(usize, usize),
    /// Row r's checkpoint file is deleted.
    MissingFile(usize),
    /// The column appears twice.
    DuplicateColumn(usize),
    /// An extra column of type `t` that no zoo reader knows: harmless.
    Extra(usize),
    /// A `num_params` column (which `zoo export` reads as an integer) holding text.
    KnownColumnAsText,
}

/// The columns another tool writes for `n` models in `dir` (making the files): `model_id`,
/// `file`, `test_accuracy`, `epoch` (Int64, 0–2: one state per model).
pub fn base_columns(dir: &Path, n: usize) -> Vec<Col> {
    let mut cols = make_models(dir, n);
    cols.push(Col::new(
        "epoch",
        Data::I64((0..n).map(|i| Some((i % 3) as i64)).collect()),
    ));
    cols
}

/// Applies `fault` to the columns (and to the files in `dir`), with `extra` harmless extra
/// columns and the columns rotated by `rotate`; writes `dir/catalog.parquet`.
pub fn write_faulty(dir: &Path, mut cols: Vec<Col>, fault: &Fault, extra: usize, rotate: usize) {
    let n = cols[0].data.len();
    match *fault {
        Fault::Nothing => {}
        Fault::Drop(c) => {
            cols.remove(c);
        }
        Fault::Retype(c, t) => cols[c].data = Data::of_type(t, n),
        Fault::Null(c, r) => cols[c].data.set_null(r),
        Fault::DuplicateId(a, b) => {
            if let Data::Str(v) = &mut cols[0].data {
                v[b] = v[a].clone();
            }
            if let Data::I64(v) = &mut cols[3].data {
                v[b] = v[a];
            }
        }
        Fault::DuplicateFile(a, b) => {
            if let Data::Str(v) = &mut cols[1].data {
                v[b] = v[a].clone();
            }
        }
        Fault::MissingFile(r) => {
            std::fs::remove_file(dir.join(format!("weights/m{r}.safetensors"))).unwrap();
        }
        Fault::DuplicateColumn(c) => {
            let copy = cols[c].clone();
            cols.push(copy);
        }
        Fault::Extra(t) => cols.push(Col::new(&format!("extra_{t}"), Data::of_type(t, n))),
        Fault::KnownColumnAsText => cols.push(Col::new("num_params", Data::of_type(0, n))),
    }
    for t in 0..extra {
        cols.push(Col::new(&format!("notes_{t}"), Data::of_type(t * 3 + 1, n)));
    }
    let k = cols.len();
    cols.rotate_left(rotate % k.max(1));
    write_catalog(&dir.join("catalog.parquet"), &cols);
}

const NAMES: [&str; 4] = ["model_id", "file", "test_accuracy", "epoch"];

/// What reading the catalog of [`write_faulty`] (with its files) must give: `None` when it
/// reads, else the texts the error message must contain.
pub fn expected_catalog_error(fault: &Fault) -> Option<Vec<String>> {
    let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    match *fault {
        Fault::Nothing | Fault::Extra(_) => None,
        Fault::Drop(c) if c >= 2 => None,
        Fault::Drop(c) => v(&["missing column", &format!("`{}`", NAMES[c])]),
        Fault::Retype(c, t) => {
            let d = Data::of_type(t, 1);
            let ok = match c {
                0 => d.is_text() || d.is_int(),
                1 => false,
                2 => d.is_number(),
                _ => d.is_int(),
            };
            if c == 1 && d.is_text() {
                // Text, but not the files' names.
                v(&["file `", "does not exist"])
            } else if ok {
                None
            } else {
                v(&[&format!("column `{}` has Arrow type", NAMES[c]), "expected"])
            }
        }
        Fault::Null(2, _) => None,
        Fault::Null(c, r) => v(&[&format!("row {r}"), &format!("`{}` is null", NAMES[c])]),
        Fault::DuplicateId(a, _) => v(&[&format!("model `m{a}`"), "appears twice"]),
        Fault::DuplicateFile(a, _) => v(&[&format!("file `weights/m{a}.safetensors`")]),
        Fault::MissingFile(r) => v(&[
            &format!("file `weights/m{r}.safetensors`"),
            "does not exist",
        ]),
        Fault::DuplicateColumn(c) => v(&[&format!("column `{}` appears more than once", NAMES[c])]),
        Fault::KnownColumnAsText => v(&["column `num_params` has Arrow type Utf8", "an integer"]),
    }
}

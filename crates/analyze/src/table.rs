//! Writing rows of per-tensor results as CSV or Parquet (atomically).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use weightspace_io::{AtomicFile, Error};

use crate::stats::TensorStats;

/// Float columns of [`TensorStats`], in output order.
const FLOAT_COLS: [&str; 11] = [
    "mean", "std", "min", "q25", "median", "q75", "max", "l2", "abs_mean", "sparsity", "count",
];

fn floats(s: &TensorStats) -> [f64; 10] {
    [
        s.mean, s.std, s.min, s.q25, s.median, s.q75, s.max, s.l2, s.abs_mean, s.sparsity,
    ]
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// The statistics as an Arrow record batch: `name, dtype, shape` (JSON-like text such as
/// `[64,32]`), `count, nan, inf` (u64) and the float columns.
pub fn stats_batch(rows: &[TensorStats]) -> RecordBatch {
    let mut fields = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("dtype", DataType::Utf8, false),
        Field::new("shape", DataType::Utf8, false),
        Field::new("count", DataType::UInt64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.name))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.dtype))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| shape_str(&r.shape)),
        )),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.count))),
    ];
    for (k, name) in FLOAT_COLS[..10].iter().enumerate() {
        fields.push(Field::new(*name, DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| floats(r)[k]),
        )));
    }
    for (name, vals) in [
        ("nan", rows.iter().map(|r| r.nan).collect::<Vec<_>>()),
        ("inf", rows.iter().map(|r| r.inf).collect()),
    ] {
        fields.push(Field::new(name, DataType::UInt64, false));
        cols.push(Arc::new(UInt64Array::from(vals)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("columns match schema")
}

/// Writes a record batch as a zstd-compressed Parquet file, atomically.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), Error> {
    let mut f = AtomicFile::create(path)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let to_err =
        |e: parquet::errors::ParquetError| Error::io(path, std::io::Error::other(e.to_string()));
    {
        let mut w = parquet::arrow::ArrowWriter::try_new(f.file(), batch.schema(), Some(props))
            .map_err(to_err)?;
        w.write(batch).map_err(to_err)?;
        w.close().map_err(to_err)?;
    }
    f.commit()
}

/// The statistics as CSV text with a header row (same columns as [`stats_batch`]).
pub fn stats_csv(rows: &[TensorStats]) -> String {
    let mut out = String::from("name,dtype,shape,count");
    for c in &FLOAT_COLS[..10] {
        out.push(',');
        out.push_str(c);
    }
    out.push_str(",nan,inf\n");
    for r in rows {
        out.push_str(&csv_field(&r.name));
        out.push(',');
        out.push_str(&r.dtype);
        out.push(',');
        out.push_str(&csv_field(&shape_str(&r.shape)));
        out.push_str(&format!(",{}", r.count));
        for v in floats(r) {
            out.push_str(&format!(",{v}"));
        }
        out.push_str(&format!(",{},{}\n", r.nan, r.inf));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

//! Finding the models in the paths a user gives: files are taken as they are; a directory is one
//! model when it holds a sharded-checkpoint index (`*.index.json`) or only the shards of one set
//! (`model-00001-of-00002.safetensors`, ...), otherwise it is searched
//! (recursively, in sorted order) for files whose leading bytes look like a weights format.

use std::io::Read;
use std::path::{Path, PathBuf};

use weightspace_io::{Error, sniff};

fn is_index(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"))
}

fn is_safetensors(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "safetensors")
}

/// `<stem>-00001-of-00003.safetensors`: one shard of a set.
fn is_shard(p: &Path) -> bool {
    if !is_safetensors(p) {
        return false;
    }
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let b = stem.as_bytes();
    // ...-NNNNN-of-NNNNN: 5 digits, "-of-", 5 digits at the end.
    b.len() > 15
        && b[b.len() - 15] == b'-'
        && &b[b.len() - 9..b.len() - 5] == b"-of-"
        && b[b.len() - 14..b.len() - 9].iter().all(u8::is_ascii_digit)
        && b[b.len() - 5..].iter().all(u8::is_ascii_digit)
}

fn looks_like_weights(p: &Path) -> bool {
    let mut head = [0u8; 64];
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    sniff(&head[..n]).is_some()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    if entries.iter().any(|p| p.is_file() && is_index(p)) {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    // Shards without their index (`model-00001-of-00002.safetensors`, ...) are one model too.
    let shards = entries
        .iter()
        .filter(|p| p.is_file() && is_shard(p))
        .count();
    if shards > 1 && shards == entries.iter().filter(|p| is_safetensors(p)).count() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() && looks_like_weights(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The model paths named by `paths`: files as given, directories expanded (see the module doc).
/// A model named twice (`a/model.safetensors` and its folder `a`, or a link to it) is kept once,
/// at its first mention: it is one model, and comparing it with itself would list every pair
/// twice. Missing paths are an error naming the path.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    Ok(out)
}

/// The label of a path as the user would write it (lossy UTF-8).
pub fn label(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

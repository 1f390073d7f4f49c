//! [`OpenOptions`]' view over a checkpoint: which tensors it presents (the state dict of a
//! wrapped PyTorch checkpoint or `--key`, `--include`/`--exclude`), under which names
//! (`--strip-prefix`, `--rename`). Renamed tensors keep their stored name as an [`Alias`].

use std::collections::{BTreeMap, HashMap};

use crate::checkpoint::{Alias, Checkpoint, Holds, OpenOptions, Section};
use crate::error::{Error, ErrorKind, Result};

/// Keys that name a state dict, in no particular order: a wrapped checkpoint's model parameters
/// are under the one of these that holds tensors.
const STATE_DICT_KEYS: [&str; 7] = [
    "state_dict",
    "model_state_dict",
    "model_state",
    "model",
    "module",
    "net",
    "network",
];

/// Applies `opts` to `ck` as a reader presented it; `top_keys` are the keys of a wrapped PyTorch
/// checkpoint's top-level dict (empty for any other).
pub(crate) fn apply(
    mut ck: Checkpoint,
    top_keys: Vec<String>,
    opts: &OpenOptions,
) -> Result<Checkpoint> {
    let path = ck.path.clone();
    let err = |msg: String| Error::new(&path, ErrorKind::Selection(msg));
    ck.sections = sections(&ck, &top_keys);
    let key = match &opts.key {
        // A checkpoint that does not wrap its state dict is its own model: one --key serves a
        // diff between a training checkpoint and a plain state dict.
        Some(_) if ck.sections.is_empty() => None,
        Some(k) => Some(k.clone()),
        None if opts.all => None,
        None => default_key(&ck.sections).map_err(err)?,
    };
    for s in &mut ck.sections {
        s.selected = key.as_deref() == Some(s.key.as_str());
    }
    if key.is_none()
        && opts.include.is_empty()
        && opts.exclude.is_empty()
        && opts.strip_prefix.is_empty()
        && opts.rename.is_empty()
    {
        return Ok(ck);
    }
    if let Some(k) = &key {
        let dotted = format!("{k}.");
        if !ck
            .entries
            .iter()
            .any(|e| e.info.name.len() > dotted.len() && e.info.name.starts_with(&dotted))
        {
            return Err(err(format!(
                "--key {k}: no tensor is under this key; the keys holding tensors are {}",
                key_list(&ck)
            )));
        }
    }
    let include = patterns(&opts.include, "--include").map_err(err)?;
    let exclude = patterns(&opts.exclude, "--exclude").map_err(err)?;

    let total = ck.entries.len();
    let mut under_key = 0usize;
    let mut entries = Vec::with_capacity(total);
    let mut aliases = BTreeMap::new();
    // New name -> the name it had, to report collisions with both names.
    let mut from: HashMap<String, String> = HashMap::with_capacity(total);
    let mut old_aliases = std::mem::take(&mut ck.aliases);
    for mut e in std::mem::take(&mut ck.entries) {
        let before = e.info.name.clone();
        let mut name = before.as_str();
        if let Some(k) = &key {
            match name
                .strip_prefix(k.as_str())
                .and_then(|r| r.strip_prefix('.'))
            {
                Some(rest) if !rest.is_empty() => name = rest,
                _ => continue,
            }
            under_key += 1;
        }
        let new = rename(name, opts);
        if new.is_empty() {
            return Err(err(format!(
                "--rename leaves tensor `{before}` with an empty name"
            ))
            .with_tensor(&before));
        }
        // A glob may be written against the new name or the one before renaming.
        let hit = |p: &glob::Pattern| p.matches(&new) || p.matches(name);
        if !include.is_empty() && !include.iter().any(hit) {
            continue;
        }
        if exclude.iter().any(hit) {
            continue;
        }
        if let Some(other) = from.get(&new) {
            return Err(err(format!(
                "tensors `{other}` and `{before}` both become `{new}` (--strip-prefix/--rename/--key); \
                 leave one out with --exclude or narrow the renaming"
            ))
            .with_tensor(&new));
        }
        from.insert(new.clone(), before.clone());
        let alias = old_aliases.remove(&before).or_else(|| {
            (new != before).then(|| Alias {
                name: before.clone(),
                stored_shape: e.info.shape.clone(),
                transposed: false,
            })
        });
        if let Some(a) = alias {
            aliases.insert(new.clone(), a);
        }
        e.info.name = new;
        entries.push(e);
    }
    if entries.is_empty() {
        let of = if key.is_some() { under_key } else { total };
        return Err(err(format!(
            "--include/--exclude select no tensor (of {of}); the names they match are the ones \
             `inspect` shows with the same --key/--strip-prefix/--rename"
        )));
    }
    ck.entries = entries;
    ck.aliases = aliases;
    ck.reindex();
    Ok(ck)
}

/// The name after `--strip-prefix` (the first prefix that matches) and `--rename` (the first
/// `FROM` prefix that matches).
fn rename(name: &str, opts: &OpenOptions) -> String {
    let name = opts
        .strip_prefix
        .iter()
        .find_map(|p| name.strip_prefix(p.as_str()).filter(|r| !r.is_empty()))
        .unwrap_or(name);
    for (from, to) in &opts.rename {
        if let Some(rest) = name.strip_prefix(from.as_str()) {
            return format!("{to}{rest}");
        }
    }
    name.to_string()
}

fn patterns(globs: &[String], flag: &str) -> std::result::Result<Vec<glob::Pattern>, String> {
    globs
        .iter()
        .map(|g| {
            glob::Pattern::new(g).map_err(|e| format!("{flag} `{g}`: not a glob pattern: {e}"))
        })
        .collect()
}

/// Each top-level key and what it holds.
fn sections(ck: &Checkpoint, top_keys: &[String]) -> Vec<Section> {
    top_keys
        .iter()
        .map(|k| {
            let dotted = format!("{k}.");
            let (mut count, mut params) = (0usize, 0u64);
            for e in &ck.entries {
                if e.info.name.starts_with(&dotted) {
                    count += 1;
                    params += e.info.numel() as u64;
                }
            }
            let holds = if count > 0 {
                Holds::Tensors { count, params }
            } else if let Some(v) = ck.metadata.get(k) {
                Holds::Value(v.clone())
            } else {
                Holds::Values(
                    ck.metadata
                        .keys()
                        .filter(|m| m.starts_with(&dotted))
                        .count(),
                )
            };
            Section {
                key: k.clone(),
                holds,
                selected: false,
            }
        })
        .collect()
}

/// The key whose tensors are the model's parameters, `None` when the checkpoint is not wrapped.
fn default_key(sections: &[Section]) -> std::result::Result<Option<String>, String> {
    let with_tensors: Vec<&Section> = sections
        .iter()
        .filter(|s| matches!(s.holds, Holds::Tensors { .. }))
        .collect();
    if with_tensors.is_empty() {
        return Ok(None);
    }
    let named: Vec<&&Section> = with_tensors
        .iter()
        .filter(|s| STATE_DICT_KEYS.contains(&s.key.as_str()))
        .collect();
    let candidates: Vec<&&Section> = if named.is_empty() {
        with_tensors.iter().filter(|s| !s.is_optimizer()).collect()
    } else {
        named
    };
    let keys = |v: &[&Section]| {
        v.iter()
            .map(|s| format!("`{}`", s.key))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match candidates.len() {
        1 => Ok(Some(candidates[0].key.clone())),
        0 => Err(format!(
            "the checkpoint holds optimizer state only ({}), no model parameters; pass --key \
             NAME to analyse one of these, or --all for every tensor under its stored name",
            keys(&with_tensors)
        )),
        _ => Err(format!(
            "the checkpoint holds several sub-dictionaries of tensors ({}) and which one is the \
             model is ambiguous; pass --key NAME to pick one, or --all for every tensor under \
             its stored name",
            keys(&candidates.iter().map(|s| **s).collect::<Vec<_>>())
        )),
    }
}

/// The keys `--key` could name: a wrapped checkpoint's top-level keys holding tensors.
fn key_list(ck: &Checkpoint) -> String {
    ck.sections
        .iter()
        .filter(|s| matches!(s.holds, Holds::Tensors { .. }))
        .map(|s| format!("`{}`", s.key))
        .collect::<Vec<_>>()
        .join(", ")
}

//! Lineage on a real fine-tune tree: trains `zoos/digits-tree.toml` (29 digits MLPs, four
//! generations, known parents), recovers the tree from the last states' weights alone and
//! scores the directed edges against the catalog's `parent_id`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

mod common;
use common::ws;

/// 25 of 28 edges are recovered on this tree (zoo seed 0, RESULTS.md); a margin of two. Without
/// the unchanged-values term (`--unchanged-weight 0`) it was 19, so this fails without it.
const MIN_CORRECT: usize = 23;

/// Trains the zoo config `name` (in `zoos/`), runs `weightspace lineage` on the last states
/// once per entry of `extra` (extra options), and returns (directed edges right per entry,
/// true edges).
fn score_tree(name: &str, models: usize, extra: &[&[&str]]) -> (Vec<usize>, usize) {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../zoos/{name}.toml"));
    let d = tempfile::tempdir().unwrap();
    let zoo = d.path().join("tree");
    let zoo_s = zoo.to_str().unwrap();
    let (rc, _, err) = ws(&["zoo", "train", cfg.to_str().unwrap(), "-o", zoo_s, "-q"]);
    assert_eq!(rc, 0, "{err}");
    let (rc, out, err) = ws(&["zoo", "ls", zoo_s, "--json"]);
    assert_eq!(rc, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    // Last state of each model.
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for r in &rows {
        let id = r["model_id"].as_str().unwrap().to_string();
        if last
            .get(&id)
            .is_none_or(|o| o["epoch"].as_i64() < r["epoch"].as_i64())
        {
            last.insert(id, r);
        }
    }
    assert_eq!(last.len(), models);
    let path = |id: &str| {
        zoo.join(last[id]["file"].as_str().unwrap())
            .to_str()
            .unwrap()
            .to_string()
    };
    let truth: BTreeSet<(String, String)> = last
        .iter()
        .filter_map(|(id, r)| r["parent_id"].as_str().map(|p| (path(p), path(id))))
        .collect();
    assert_eq!(truth.len(), models - 1);
    let files: Vec<String> = last.keys().map(|id| path(id)).collect();
    let right = extra
        .iter()
        .map(|extra| {
            let mut args = vec!["lineage", "--json", "-q"];
            args.extend(extra.iter().copied());
            args.extend(files.iter().map(String::as_str));
            let (rc, out, err) = ws(&args);
            assert_eq!(rc, 0, "{err}");
            let v: Value = serde_json::from_str(&out).unwrap();
            let got: BTreeSet<(String, String)> = v["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["parent"].as_str().unwrap().to_string(),
                        e["child"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let right = truth.intersection(&got).count();
            println!(
                "{name} {extra:?}: {right} of {} directed edges recovered",
                truth.len()
            );
            right
        })
        .collect();
    (right, truth.len())
}

#[test]
fn recovers_the_digits_fine_tune_tree() {
    let (right, n) = score_tree("digits-tree", 29, &[&[]]);
    assert!(
        right[0] >= MIN_CORRECT,
        "{} of {n} edges recovered, expected at least {MIN_CORRECT}",
        right[0]
    );
}

/// On `zoos/digits-tree-wide.toml` (zoo seed 0) 27 of 30 edges are recovered, 24 without the
/// common-factor part of the unchanged-values term (`--scale-tolerance 0`): its three
/// SGD-momentum children with weight decay were misplaced (RESULTS.md).
const MIN_CORRECT_WIDE: usize = 26;

#[test]
fn weight_decayed_momentum_fine_tunes_find_their_parents() {
    let (right, n) = score_tree("digits-tree-wide", 31, &[&[], &["--scale-tolerance", "0"]]);
    assert!(
        right[0] >= MIN_CORRECT_WIDE,
        "{} of {n} edges recovered, expected at least {MIN_CORRECT_WIDE}",
        right[0]
    );
    assert!(
        right[1] < right[0],
        "{} edges without the common factor, {} with",
        right[1],
        right[0]
    );
}

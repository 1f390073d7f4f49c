//! Property tests: damaged PyTorch checkpoints (truncated, bytes flipped, lengths changed)
//! give an error or a valid checkpoint whose every tensor can be read — never a panic.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use weightspace_io::Checkpoint;

/// A seed file's bytes and the byte range of its pickle (the part worth mutating most).
struct Seed {
    bytes: Vec<u8>,
    pickle: std::ops::Range<usize>,
}

fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        [
            "pytorch/state_dict.pt",
            "pytorch/state_dict_legacy.pt",
            "pytorch/training.pt",
            "pytorch/training_legacy.pt",
            "pytorch/views.pt",
            "pytorch/views_legacy.pt",
            "pytorch/dtypes.pt",
            "pytorch/deflated.pt",
            "pytorch/bigendian.pt",
            "pytorch/script.pt",
            "real/pnet.pt",
        ]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            let pickle = pickle_range(&bytes);
            Seed { bytes, pickle }
        })
        .collect()
    })
}

/// The stored bytes of `data.pkl` in a zip, or the whole file for a legacy stream.
fn pickle_range(bytes: &[u8]) -> std::ops::Range<usize> {
    if !bytes.starts_with(b"PK") {
        return 0..bytes.len();
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).unwrap();
        if f.name().unwrap().ends_with("data.pkl") {
            let start = f.data_start().unwrap() as usize;
            return start..start + f.compressed_size() as usize;
        }
    }
    panic!("no data.pkl")
}

/// Opens `bytes` as a checkpoint and reads every tensor; panics only if the reader does.
fn exercise(bytes: &[u8]) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    if let Ok(ck) = Checkpoint::open(f.path()) {
        for i in 0..ck.len() {
            if let Ok(t) = ck.tensor_at(i) {
                let _ = t.to_f32();
                assert_eq!(t.bytes.len(), ck.infos().nth(i).unwrap().nbytes());
            }
        }
        let _ = ck.model_hash();
    }
}

/// A position inside `range` picked by `r` in 0..1.
fn pick(range: &std::ops::Range<usize>, r: f64) -> usize {
    let len = range.end - range.start;
    range.start + ((len as f64 * r) as usize).min(len.saturating_sub(1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn truncated_files(seed in 0usize..11, r in 0.0f64..1.0) {
        let s = &seeds()[seed];
        let cut = (s.bytes.len() as f64 * r) as usize;
        exercise(&s.bytes[..cut]);
    }

    #[test]
    fn truncated_pickles(seed in 0usize..11, r in 0.0f64..1.0) {
        // Cut inside the pickle only (zip structure intact): the unpickler sees a short stream.
        let s = &seeds()[seed];
        let cut = pick(&s.pickle, r);
        let mut b = s.bytes.clone();
        for x in &mut b[cut..s.pickle.end] {
            *x = b'.';
        }
        exercise(&b);
    }

    #[test]
    fn flipped_pickle_bytes(seed in 0usize..11, flips in prop::collection::vec((0.0f64..1.0, 1u8..=255), 1..6)) {
        let s = &seeds()[seed];
        let mut b = s.bytes.clone();
        for (r, x) in flips {
            let at = pick(&s.pickle, r);
            b[at] ^= x;
        }
        exercise(&b);
    }

    #[test]
    fn flipped_bytes_anywhere(seed in 0usize..11, flips in prop::collection::vec((0.0f64..1.0, 1u8..=255), 1..6)) {
        let s = &seeds()[seed];
        let mut b = s.bytes.clone();
        for (r, x) in flips {
            let at = pick(&(0..b.len()), r);
            b[at] ^= x;
        }
        exercise(&b);
    }

    #[test]
    fn changed_lengths(seed in 0usize..11, r in 0.0f64..1.0, v in prop_oneof![
        Just(0u32), Just(1), Just(0x7fff_ffff), Just(0xffff_ffff), any::<u32>(), 0u32..64
    ], width in prop_oneof![Just(1usize), Just(2), Just(4)]) {
        // Overwrite a (possible) length field inside the pickle with a hostile value.
        let s = &seeds()[seed];
        let mut b = s.bytes.clone();
        let at = pick(&s.pickle, r).min(s.pickle.end.saturating_sub(width));
        b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        exercise(&b);
    }
}

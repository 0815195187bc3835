#![allow(clippy::unwrap_used)]
//! Damaged Etch files give clear, typed errors on open or read, never a panic.

use etch_engine::store::cad047::{EtchError, EtchFile};
use etch_engine::store::{CellStore, EtchStore, StoreError};
use etch_formats::ValueId;
use std::path::{Path, PathBuf};

fn small() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/etch/small.etch")
}

const V_ID: &str = "bc41f9c0c93277bf9f1cfc143dc5df26b4bdfb7ad0a536559b6d907b22dd6b17";

fn damaged(dir: &Path, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(small()).unwrap();
    f(&mut bytes);
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = dir.join(format!(
        "d{}.etch",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&p, &bytes).unwrap();
    p
}

#[test]
fn header_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = damaged(dir.path(), |b| b[0] = 0x00);
    assert!(
        matches!(EtchFile::open(&p, false), Err(EtchError::NotEtch { ref detail, .. }) if detail.contains("magic"))
    );
    let p = damaged(dir.path(), |b| b[3] = 2);
    assert!(
        matches!(EtchFile::open(&p, false), Err(EtchError::NotEtch { ref detail, .. }) if detail.contains("version"))
    );
    let p = damaged(dir.path(), |b| b[4] = 0x80);
    assert!(matches!(
        EtchFile::open(&p, false),
        Err(EtchError::Corrupt { offset: 4, .. })
    ));
    // A data length past the file's end (what a power loss mid-commit can leave) is read as
    // the end of what the index references, when that lies within the file.
    let good = EtchFile::open(damaged(dir.path(), |_| {}), false)
        .unwrap()
        .data_len();
    let p = damaged(dir.path(), |b| b[5] = 0x7f);
    assert_eq!(EtchFile::open(&p, false).unwrap().data_len(), good);
    let p = damaged(dir.path(), |b| b.truncate(30));
    assert!(matches!(
        EtchFile::open(&p, false),
        Err(EtchError::NotEtch { .. })
    ));
    // Truncated below the data length.
    let p = damaged(dir.path(), |b| b.truncate(530_000));
    assert!(matches!(
        EtchFile::open(&p, false),
        Err(EtchError::Corrupt { offset: 4, .. })
    ));
}

#[test]
fn index_and_record_damage() {
    let dir = tempfile::tempdir().unwrap();
    let key: [u8; 32] = hex::decode(V_ID).unwrap().try_into().unwrap();
    let slot = 44 + 8 * ((usize::from(key[0]) << 8) | usize::from(key[1]));
    // A slot pointing past the data length.
    let p = damaged(dir.path(), |b| b[slot + 1] = 0x7f);
    let f = EtchFile::open(&p, false).unwrap();
    assert!(matches!(
        f.lookup(&key),
        Err(EtchError::Corrupt { invariant: 2, .. })
    ));
    drop(f);
    // A flipped byte inside the record's encoding: the store notices the hash mismatch.
    let off = {
        let f = EtchFile::open(small(), false).unwrap();
        f.lookup(&key).unwrap().unwrap() as usize
    };
    let p = damaged(dir.path(), |b| b[off + 43 + 5] ^= 0x01);
    let store = EtchStore::open(&p, false).unwrap();
    assert!(matches!(
        store.get(&ValueId(key)),
        Err(StoreError::BadRecord { .. })
    ));
    drop(store);
    // A record length of zero.
    let p = damaged(dir.path(), |b| {
        b[off + 41] = 0;
        b[off + 42] = 0;
    });
    let f = EtchFile::open(&p, false).unwrap();
    assert!(matches!(
        f.get(&key),
        Err(EtchError::Corrupt { invariant: 6, .. })
    ));
}

#[test]
fn random_damage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(small()).unwrap();
    let mut rng = etch_formats::gen::SplitMix64(99);
    for round in 0..200 {
        let mut bytes = original.clone();
        for _ in 0..1 + rng.next_u64() % 8 {
            // Hit the header, the occupied index slots or the records most of the time.
            let region = match rng.next_u64() % 3 {
                0 => 0..44usize,
                1 => 524_332..538_413,
                _ => 44..524_332,
            };
            let at = region.start + (rng.next_u64() as usize) % region.len();
            bytes[at] ^= 1 << (rng.next_u64() % 8);
        }
        let p = dir.path().join(format!("r{round}.etch"));
        std::fs::write(&p, &bytes).unwrap();
        let Ok(store) = EtchStore::open(&p, false) else {
            continue;
        };
        let _ = store.stats();
        if let Ok(etch_engine::store::Root::Value(root)) = store.root() {
            let _ = etch_formats::structure::verify_tree(&root, &store);
            let _ = etch_formats::text::print(&root, &store);
        }
    }
}

#[test]
fn stale_length_is_repaired_by_a_writer_only() {
    // A Java peer killed before rewriting L: the last record lies past the stated length.
    let dir = tempfile::tempdir().unwrap();
    let key: [u8; 32] = hex::decode(V_ID).unwrap().try_into().unwrap();
    let (last_off, len) = {
        let f = EtchFile::open(small(), false).unwrap();
        let offs = f.record_offsets().unwrap();
        (*offs.iter().max().unwrap(), f.data_len())
    };
    let p = damaged(dir.path(), |b| {
        b[4..12].copy_from_slice(&last_off.to_be_bytes())
    });
    let before = std::fs::read(&p).unwrap();
    {
        let f = EtchFile::open(&p, false).unwrap();
        assert_eq!(f.data_len(), last_off);
        assert!(
            f.furthest_end().is_err(),
            "readers see the slot past L as corruption"
        );
    }
    assert_eq!(
        std::fs::read(&p).unwrap(),
        before,
        "readers never change the file"
    );
    let f = EtchFile::open(&p, true).unwrap();
    assert_eq!(
        f.data_len(),
        len,
        "the writer moved L to the end of the furthest record"
    );
    assert!(f.get(&key).unwrap().is_some());
    drop(f);
    let store = EtchStore::open(&p, false).unwrap();
    let etch_engine::store::Root::Value(root) = store.root().unwrap() else {
        panic!("root")
    };
    etch_formats::structure::verify_tree(&root, &store).unwrap();
}

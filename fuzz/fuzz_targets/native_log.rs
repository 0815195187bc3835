//! A native store whose log is the fuzz input: opening it (read-only, which recovers by scanning
//! frames, and writable, which also truncates) must never panic, and whatever it recovers must
//! read back without panicking: the root, its tree, and a walk of every stored id.
#![no_main]

use etch_engine::store::native::IoMode;
use etch_engine::store::{CellStore, NativeOptions, NativeStore, Root};
use libfuzzer_sys::fuzz_target;

fn options() -> NativeOptions {
    NativeOptions {
        io: IoMode::Pwrite,
        memtable_flush_entries: 64,
        ..NativeOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    // tmpfs when there is one: the target writes a small directory per input.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let Ok(dir) = tempfile::tempdir_in(base) else {
        return;
    };
    let path = dir.path().join("s");
    // A valid empty store, then the input as its log.
    drop(NativeStore::create(&path, options()).expect("create"));
    std::fs::write(path.join("log"), data).expect("write log");
    for writable in [false, true] {
        let Ok(store) = NativeStore::open(&path, writable, options()) else {
            continue;
        };
        if let Ok(Root::Value(root)) = store.root() {
            let _ = etch_formats::structure::verify_tree(&root, &store);
        }
        let mut n = 0usize;
        let _ = store.for_each_id(&mut |id| {
            n += 1;
            let _ = store.get(&id);
            Ok(())
        });
        let _ = store.snapshots();
    }
});

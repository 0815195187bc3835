//! Issue 19: an incoming `:fs` update that carries one forged owner slot among valid ones
//! merges the valid ones and leaves the forged one out, with a log line naming its owner.

mod common;

use common::{key, kw, start, Raw};
use etch_engine::lattice::{sign, value_at_path};
use etch_formats::message::{self, encode_complete, FRAME_BYTES_MAX};
use etch_formats::{Cell, Kind};
use etch_server::Config;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Log output captured for the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A drives map `{name → drive}` with one empty drive, signed by `k`.
fn slot_of(k: &ed25519_dalek::SigningKey) -> Cell {
    let drive = etch_engine::lattice::dlfs::zero();
    sign(k, Cell::map(vec![(Cell::string("d"), drive)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_slot_is_refused_alone() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), Some(key(1)), Config::default()).await;
    let node = server.node().clone();
    let store = node.store().clone();
    let (good, forged) = (key(6), key(7));
    let good_owner = Cell::blob(&good.verifying_key().to_bytes());
    let forged_owner = Cell::blob(&forged.verifying_key().to_bytes());
    // key(8) signs the slot of key(7)'s owner: a forgery.
    let update = Cell::map(vec![
        (good_owner.clone(), slot_of(&good)),
        (forged_owner.clone(), slot_of(&key(8))),
    ]);
    let lv = message::lattice_value(&[kw("fs")], update, Some(1));
    let mut c = Raw::connect(server.local_addr()).await;
    c.send_body(&encode_complete(&lv, store.as_ref(), FRAME_BYTES_MAX).0)
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code()),
        (Some(1), None),
        "the valid slot merges"
    );
    let root = node.root_value();
    let at = |owner: &Cell| {
        value_at_path(&root, &[kw("fs"), owner.clone()], store.as_ref()).expect("read")
    };
    assert_eq!(at(&good_owner).kind(), Kind::Signed);
    assert!(at(&forged_owner).is_nil(), "the forged slot was merged");
    assert_eq!(
        server
            .metrics()
            .owner_slots_refused
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("owner slot refused"))
        .unwrap_or_else(|| panic!("no log line: {text}"));
    assert!(
        line.contains(&hex::encode(forged.verifying_key().to_bytes())),
        "{line}"
    );
    assert!(line.contains("signed by another key"), "{line}");
    server.shutdown(Duration::from_secs(5)).await;
}

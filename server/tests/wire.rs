//! Each message over a real socket to a running node: the exact answers and error codes.

mod common;

use common::{admin_eval, key, kw, start, Raw};
use etch_engine::lattice::{sign, value_at_path};
use etch_formats::message::{self, encode_complete, encode_data_result, FRAME_BYTES_MAX};
use etch_formats::{Cell, Kind, MessageType, NoResolver, ResultRecord, ValueId};
use etch_server::client::Client;
use etch_server::Config;
use std::time::Duration;

fn text(c: &Cell) -> String {
    etch_formats::text::print(c, &NoResolver).expect("print")
}

fn form(s: &str) -> Cell {
    etch_formats::text::read::read_one(s).expect("form")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_status_and_goodbye() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), Some(key(1)), Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    c.send(&message::ping(1)).await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error.clone()), (Some(1), None));
    let now = etch_engine::node::wall_clock_ms();
    let t = r.value.as_long().expect("timestamp");
    assert!((now - t).abs() < 5_000, "PING answers the node's clock");

    c.send(&message::status(2)).await;
    let r = c.recv_result().await;
    assert_eq!(r.id, Some(2));
    let status = r.value;
    let get = |k: &str| value_at_path(&status, &[kw(k)], &NoResolver).expect("get");
    assert_eq!(text(&get("type")), "\"Convex Storage Node\"");
    assert_eq!(
        get("peer").flat_bytes(),
        Some(key(1).verifying_key().to_bytes().as_slice())
    );
    assert_eq!(
        get("root").flat_bytes(),
        Some(server.node().root_value().id().as_bytes().as_slice())
    );
    assert_eq!(text(&get("regions")), "[:data :fs :p2p :local]");
    let metrics = get("metrics");
    assert_eq!(
        value_at_path(&metrics, &[kw("pings")], &NoResolver)
            .expect("m")
            .as_long(),
        Some(1)
    );

    // GOODBYE: the server closes the connection.
    c.send(&message::goodbye(None)).await;
    assert!(c.closed_within(Duration::from_secs(5)).await);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_errors_and_rights() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), Some(key(1)), Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    c.send(&message::query(3, form("(+ 1 2)"), Some(12))).await;
    let r = c.recv_result().await;
    assert_eq!((r.id, text(&r.value), r.error), (Some(3), "3".into(), None));
    // The 3-element form (no address) is accepted too.
    c.send(&Cell::vector(vec![kw("Q"), Cell::long(4), form("(* 3 4)")]))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, text(&r.value)), (Some(4), "12".into()));
    // An evaluation error: its code, message, and :source :CODE.
    c.send(&message::query(5, form("(count 1 2)"), None)).await;
    let r = c.recv_result().await;
    assert_eq!(r.id, Some(5));
    assert_eq!(r.error_code().as_deref(), Some("ARITY"));
    assert_eq!(text(&r.info), "{:source :CODE}");
    // A def lasts for its own QUERY only (query.md §6.5).
    c.send(&message::query(6, form("(do (def x 41) (inc x))"), None))
        .await;
    assert_eq!(text(&c.recv_result().await.value), "42");
    c.send(&message::query(7, form("(inc x)"), None)).await;
    assert_eq!(
        c.recv_result().await.error_code().as_deref(),
        Some("UNDECLARED")
    );
    // An admin function: the node challenges the client; a key that is not an admin key
    // gets :TRUST.
    c.send(&message::query(8, form("(set-root! (root))"), None))
        .await;
    let ch = c.recv().await;
    assert_eq!(ch.kind, MessageType::Challenge);
    let ch_id = ch.id().expect("id");
    c.send(&etch_server::challenge::answer(Some(&key(9)), ch_id, &ch).to_cell())
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref(), text(&r.value).as_str()),
        (
            Some(8),
            Some("TRUST"),
            "\"Operation requires admin rights\""
        )
    );
    // A client holding the node's own key proves it and runs admin functions.
    let admin = Client::connect(&server.local_addr().to_string(), Some(key(1)))
        .await
        .expect("connect");
    let r = admin
        .query(form("(mkdrive \"adm\")"))
        .await
        .expect("answer");
    assert_eq!(r.error, None, "{}", text(&r.value));
    let r = admin.query(form("(drives)")).await.expect("answer");
    assert_eq!(text(&r.value), "[\"adm\"]");
    admin.close().await;
    // Too few elements: :FORMAT.
    c.send(&Cell::vector(vec![kw("Q"), Cell::long(9)])).await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref(), text(&r.value).as_str()),
        (Some(9), Some("FORMAT"), "\"Wrong element count\"")
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_clients_may_not_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        read_only_clients: true,
        ..Config::default()
    };
    let server = start(&dir.path().join("s"), None, config).await;
    let client = Client::connect(&server.local_addr().to_string(), None)
        .await
        .expect("connect");
    let r = client.query(form("(store 42)")).await.expect("answer");
    assert_eq!(r.error_code().as_deref(), Some("TRUST"));
    let r = client.query(form("(+ 1 1)")).await.expect("answer");
    assert_eq!(text(&r.value), "2");
    // Nor may they push lattice values.
    let v = Cell::index(vec![(Cell::blob(&[1; 32]), Cell::long(1))]).expect("index");
    let e = client
        .lattice_value(&[kw("data")], v, &NoResolver)
        .await
        .expect_err("refused");
    assert_eq!(e.code(), "TRUST");
    client.close().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_requests() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let big = Cell::blob(&[7u8; 1000]);
    etch_engine::query::QueryNode::store(server.node().as_ref(), &big).expect("store");
    let stored = [*big.id()];
    let unknown = ValueId([0xab; 32]);
    let mut c = Raw::connect(server.local_addr()).await;
    c.send(&message::data_request(10, &[stored[0], unknown]))
        .await;
    let body = c.recv_body(Duration::from_secs(5)).await.expect("answer");
    let cell = server
        .node()
        .store()
        .get(&stored[0])
        .expect("get")
        .expect("held");
    assert_eq!(
        body,
        encode_data_result(10, &[Some(cell), None]),
        "exact bytes"
    );

    // 255 hashes: refused with :FORMAT.
    c.send(&message::data_request(11, &vec![unknown; 255]))
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref()),
        (Some(11), Some("FORMAT"))
    );
    assert_eq!(
        text(&r.value),
        "\"Too many hashes in DATA_REQUEST: 255 (at most 254)\""
    );
    // 254 are fine.
    c.send(&message::data_request(12, &vec![unknown; 254]))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.value.count()), (Some(12), 254));
    // A hash that is not a 32-byte Blob.
    c.send(&Cell::vector(vec![kw("DR"), Cell::long(13), Cell::long(5)]))
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref()),
        (Some(13), Some("FORMAT"))
    );
    // The empty request: an empty vector.
    c.send(&message::data_request(14, &[])).await;
    let r = c.recv_result().await;
    assert_eq!(text(&r.value), "[]");
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lattice_query_and_value() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    // Root of a fresh node.
    c.send(&message::lattice_query(1, &[])).await;
    let r = c.recv_result().await;
    assert_eq!((r.id, text(&r.value)), (Some(1), "#Index {}".into()));
    // A complete LATTICE_VALUE with an acknowledgement ID.
    let b = Cell::blob(&[0u8; 200]);
    let v = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
    c.send(&message::lattice_value(&[kw("data")], v.clone(), Some(2)))
        .await;
    let r = c.recv_result().await;
    assert_eq!(r.id, Some(2));
    assert_eq!(r.error, None);
    let root = server.node().root_value();
    assert_eq!(r.value.flat_bytes(), Some(root.id().as_bytes().as_slice()));
    // It reads back, complete.
    c.send(&message::lattice_query(3, &[kw("data")])).await;
    let m = c.recv().await;
    assert!(m.body.missing().is_empty());
    let r = ResultRecord::parse(m.payload()).expect("result");
    assert_eq!(r.value.id(), v.id());
    // :local is not served to others.
    let owner = Cell::blob(&key(9).verifying_key().to_bytes());
    let slot = sign(
        &key(9),
        Cell::map(vec![(kw("theme"), Cell::string("dark"))]),
    );
    c.send(&message::lattice_value(
        &[kw("local")],
        Cell::map(vec![(owner, slot)]),
        Some(30),
    ))
    .await;
    assert_eq!(c.recv_result().await.error, None);
    let local = value_at_path(
        &server.node().root_value(),
        &[kw("local")],
        server.node().store().as_ref(),
    )
    .expect("local");
    assert_eq!(local.count(), 1, "merged here");
    c.send(&message::lattice_query(31, &[kw("local")])).await;
    assert_eq!(text(&c.recv_result().await.value), "nil");
    c.send(&message::lattice_query(32, &[])).await;
    let served = c.recv_result().await.value;
    assert!(!text(&served).contains(":local"));
    assert!(text(&served).contains(":data"));
    // A missing path answers nil; a path that is not a vector is :ARGUMENT.
    c.send(&message::lattice_query(
        4,
        &[kw("data"), Cell::blob(&[1; 32])],
    ))
    .await;
    assert_eq!(text(&c.recv_result().await.value), "nil");
    c.send(&Cell::vector(vec![kw("LQ"), Cell::long(5), Cell::long(1)]))
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.error_code().as_deref(), text(&r.value).as_str()),
        (Some("ARGUMENT"), "\"Invalid LATTICE_QUERY format\"")
    );
    // No lattice below a data value: refused, root unchanged.
    let before = server.node().root_value();
    c.send(&message::lattice_value(
        &[kw("data"), Cell::blob(&[1; 32]), Cell::long(0)],
        Cell::long(1),
        Some(6),
    ))
    .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref()),
        (Some(6), Some("ARGUMENT"))
    );
    assert_eq!(server.node().root_value().id(), before.id());
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_lattice_value_fetches_missing_cells() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    let b = Cell::blob(&[0u8; 200]);
    let v = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
    let lv = message::lattice_value(&[kw("data")], v.clone(), Some(77));
    // Only the top cell: B is left out.
    c.send_body(lv.encoding()).await;
    // The node asks us for B ...
    let m = c.recv().await;
    assert_eq!(m.kind, MessageType::DataRequest);
    assert_eq!(m.arg_count(), 3);
    assert_eq!(
        m.arg(2).expect("hash").flat_bytes(),
        Some(b.id().as_bytes().as_slice())
    );
    let dr_id = m.id().expect("id");
    // ... gets it, merges, commits, then acknowledges.
    c.send_body(&encode_data_result(dr_id, &[Some(b.clone())]))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code()), (Some(77), None));
    let root = server.node().root_value();
    let data = value_at_path(&root, &[kw("data")], server.node().store().as_ref()).expect("data");
    assert_eq!(data.id(), v.id());
    assert!(server.node().store().contains(b.id()).expect("contains"));

    // A cell that does not match its hash is refused; nothing changes.
    let b2 = Cell::blob(&[1u8; 200]);
    let v2 = Cell::index(vec![(Cell::blob(b2.id().as_bytes()), b2.clone())]).expect("index");
    c.send_body(message::lattice_value(&[kw("data")], v2, Some(78)).encoding())
        .await;
    let m = c.recv().await;
    let dr_id = m.id().expect("id");
    c.send_body(&encode_data_result(dr_id, &[Some(Cell::blob(&[2u8; 200]))]))
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref()),
        (Some(78), Some("MISSING"))
    );
    assert_eq!(server.node().root_value().id(), root.id());
    assert!(!server.node().store().contains(b2.id()).expect("contains"));
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), Some(key(2)), Config::default()).await;
    let client = Client::connect(&server.local_addr().to_string(), None)
        .await
        .expect("connect");
    let server_key = key(2).verifying_key().to_bytes();
    // Expected key: verified.
    assert_eq!(
        client
            .challenge(&key(9), Some(server_key))
            .await
            .expect("proof"),
        server_key
    );
    // Discovery (any key): verified, and the key returned.
    assert_eq!(
        client.challenge(&key(9), None).await.expect("proof"),
        server_key
    );
    // Wrong target: :TRUST.
    let e = client
        .challenge(&key(9), Some([5u8; 32]))
        .await
        .expect_err("wrong key");
    assert_eq!(e.to_string(), "challenge refused: TRUST");
    client.close().await;
    // Malformed challenges: :FORMAT.
    let mut c = Raw::connect(server.local_addr()).await;
    c.send(&Cell::vector(vec![kw("CH"), Cell::long(3), Cell::long(1)]))
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.error_code().as_deref(), text(&r.value).as_str()),
        (Some("FORMAT"), "\"Missing signed data\"")
    );
    let s = sign(&key(9), Cell::vector(vec![Cell::long(1)]));
    c.send(&message::challenge(4, s)).await;
    let r = c.recv_result().await;
    assert_eq!(text(&r.value), "\"Wrong element count\"");
    server.shutdown(Duration::from_secs(5)).await;

    // A node without a key cannot answer.
    let server = start(&dir.path().join("t"), None, Config::default()).await;
    let client = Client::connect(&server.local_addr().to_string(), None)
        .await
        .expect("connect");
    let e = client.challenge(&key(9), None).await.expect_err("no key");
    assert_eq!(e.to_string(), "challenge refused: TRUST");
    client.close().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transact_unknown_and_undecodable() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    c.send(&Cell::vector(vec![kw("TX"), Cell::long(1), Cell::long(0)]))
        .await;
    let r = c.recv_result().await;
    assert_eq!(
        (r.id, r.error_code().as_deref(), text(&r.value).as_str()),
        (Some(1), Some("FORMAT"), "\"Unrecognised message type\"")
    );
    // UNKNOWN and unmatched RESULTs are ignored; the connection stays usable.
    c.send(&Cell::long(5)).await;
    c.send(&ResultRecord::ok(999, Cell::nil()).to_cell()).await;
    // An undecodable body: a :FORMAT error without an id.
    c.send_body(&[0x80, 0x05, 0x11]).await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (None, Some("FORMAT")));
    c.send(&message::ping(2)).await;
    assert_eq!(c.recv_result().await.id, Some(2));
    server.shutdown(Duration::from_secs(5)).await;
}

/// The `[:LV [:fs] {owner slot} id]` of a forged update.
fn fs_update(owner: &Cell, slot: Cell, id: i64, r: &dyn etch_formats::Resolver) -> Vec<u8> {
    let lv = message::lattice_value(
        &[kw("fs")],
        Cell::map(vec![(owner.clone(), slot)]),
        Some(id),
    );
    encode_complete(&lv, r, FRAME_BYTES_MAX).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signed_updates_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let owner_key = key(3);
    let server = start(
        &dir.path().join("s"),
        Some(owner_key.clone()),
        Config::default(),
    )
    .await;
    let node = server.node().clone();
    let store = node.store().clone();
    let owner = Cell::blob(&owner_key.verifying_key().to_bytes());
    admin_eval(&node, "(mkdrive \"d\")");
    let old_slot = value_at_path(
        &node.root_value(),
        &[kw("fs"), owner.clone()],
        store.as_ref(),
    )
    .expect("slot");
    assert_eq!(old_slot.kind(), Kind::Signed);
    admin_eval(&node, "(put \"d/a.txt\" \"A\")");
    let root = node.root_value();
    let slot = value_at_path(&root, &[kw("fs"), owner.clone()], store.as_ref()).expect("slot");
    let drives = value_at_path(&slot, &[kw("value")], store.as_ref()).expect("drives");
    let mut c = Raw::connect(server.local_addr()).await;

    // 1. Signed by another key under this owner.
    let wrong = sign(&key(4), drives.clone());
    c.send_body(&fs_update(&owner, wrong, 1, store.as_ref()))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(1), Some("TRUST")));
    assert!(
        text(&r.value).contains("signed by another key"),
        "{}",
        text(&r.value)
    );

    // 2. Content altered after signing (the signature no longer verifies).
    let altered = Cell::signed(
        &owner_key.verifying_key().to_bytes(),
        slot.signed_signature()
            .expect("sig")
            .try_into()
            .expect("64"),
        Cell::map(vec![(Cell::string("d"), Cell::string("forged"))]),
    );
    c.send_body(&fs_update(&owner, altered, 2, store.as_ref()))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(2), Some("TRUST")));
    assert!(
        text(&r.value).contains("Bad signature"),
        "{}",
        text(&r.value)
    );

    // 3. A replay of the owner's older, validly signed state.
    c.send_body(&fs_update(&owner, old_slot, 3, store.as_ref()))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(3), Some("STATE")));
    assert!(text(&r.value).contains("Stale"), "{}", text(&r.value));

    // 4. Writing below a foreign owner's signature: :TRUST.
    let foreign = Cell::blob(&key(5).verifying_key().to_bytes());
    c.send(&message::lattice_value(
        &[kw("fs"), foreign, kw("value")],
        Cell::map(vec![]),
        Some(4),
    ))
    .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(4), Some("TRUST")));

    // 5. Below the node's own signature (which it would re-sign): not for an unproven client.
    c.send(&message::lattice_value(
        &[kw("fs"), owner.clone(), kw("value")],
        Cell::map(vec![]),
        Some(7),
    ))
    .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(7), Some("TRUST")));
    assert!(
        text(&r.value).contains("below a signed value"),
        "{}",
        text(&r.value)
    );

    // 6. A NodeInfo slot under [:p2p :nodes] signed by someone else than its owner.
    let info = Cell::map(vec![(kw("timestamp"), Cell::long(i64::MAX))]);
    c.send(&message::lattice_value(
        &[kw("p2p"), kw("nodes")],
        Cell::map(vec![(owner.clone(), sign(&key(4), info))]),
        Some(8),
    ))
    .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(8), Some("TRUST")));

    // Nothing changed, and the same forgery without an ack ID is dropped silently too.
    let unacked = message::lattice_value(
        &[kw("fs")],
        Cell::map(vec![(owner.clone(), sign(&key(4), drives.clone()))]),
        None,
    );
    c.send_body(&encode_complete(&unacked, store.as_ref(), FRAME_BYTES_MAX).0)
        .await;
    c.send(&message::ping(5)).await;
    assert_eq!(c.recv_result().await.id, Some(5));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server
            .metrics()
            .lattice_rejected
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 5
    );
    assert_eq!(node.root_value().id(), root.id());
    assert_eq!(text(&admin_eval(&node, "(read-file \"d/a.txt\")")), "0x41");

    // The genuine current slot is accepted (nothing new: the root stays).
    c.send_body(&fs_update(&owner, slot, 6, store.as_ref()))
        .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error), (Some(6), None));
    assert_eq!(node.root_value().id(), root.id());
    server.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn a_server_dropped_without_shutdown_lets_its_runtime_end() {
    // The runtime's drop waits for blocking tasks: the node's must end when it is dropped.
    let dir = tempfile::tempdir().expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = start(&dir.path().join("s"), None, Config::default()).await;
        let mut c = Raw::connect(server.local_addr()).await;
        c.send(&message::ping(1)).await;
        assert_eq!(c.recv_result().await.id, Some(1));
        drop(server);
        assert!(c.closed_within(Duration::from_secs(5)).await);
    });
    let started = std::time::Instant::now();
    drop(rt);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_lattice_values_beyond_the_in_flight_limit_do_not_stall_the_reader() {
    // 20 partial LATTICE_VALUEs: 16 wait for their missing cell, the others find no slot and
    // are refused with :LOAD at once; the reader still reads our DATA_REQUEST answers, so the
    // waiting ones complete (no stall until the request timeout).
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    let blobs: Vec<Cell> = (0..20u8).map(|i| Cell::blob(&[i; 300])).collect();
    for (i, b) in blobs.iter().enumerate() {
        let v = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
        c.send_body(message::lattice_value(&[kw("data")], v, Some(100 + i as i64)).encoding())
            .await;
    }
    let (mut acked, mut load) = (0, 0);
    while acked + load < 20 {
        let m = c.recv().await;
        match m.kind {
            MessageType::DataRequest => {
                let h = m.arg(2).expect("hash");
                let b = blobs
                    .iter()
                    .find(|b| Some(b.id().as_bytes().as_slice()) == h.flat_bytes())
                    .expect("one of ours");
                c.send_body(&encode_data_result(m.id().expect("id"), &[Some(b.clone())]))
                    .await;
            }
            _ => {
                let r = ResultRecord::parse(m.payload()).expect("result");
                match r.error_code().as_deref() {
                    None => acked += 1,
                    Some("LOAD") => load += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    // Usually exactly 16 and 4; a slot freed early may admit one more.
    assert!(
        acked >= 16 && acked + load == 20,
        "{acked} acknowledged, {load} refused"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

/// LATTICE_QUERY navigates as protocol.md §7.6 says: into SignedData by `:value`,
/// `:public-key` and `:signature`, and a Set answers membership as a boolean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lattice_query_looks_into_signed_data_and_sets() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    let signed = sign(&key(9), Cell::vector(vec![Cell::long(1), Cell::long(2)]));
    let set = Cell::set(vec![kw("a"), kw("b")]);
    let data = Cell::index(vec![
        (Cell::blob(signed.id().as_bytes()), signed.clone()),
        (Cell::blob(set.id().as_bytes()), set.clone()),
    ])
    .expect("index");
    c.send(&message::lattice_value(&[kw("data")], data, Some(1)))
        .await;
    assert_eq!(c.recv_result().await.error, None);
    let at_signed = |k: &str| vec![kw("data"), Cell::blob(signed.id().as_bytes()), kw(k)];
    let at_set = |k: Cell| vec![kw("data"), Cell::blob(set.id().as_bytes()), k];
    let cases: Vec<(Vec<Cell>, String)> = vec![
        (at_signed("value"), "[1 2]".into()),
        (
            at_signed("public-key"),
            format!("0x{}", hex::encode(key(9).verifying_key().to_bytes())),
        ),
        (
            at_signed("signature"),
            format!("0x{}", hex::encode(signed.signed_signature().expect("sig"))),
        ),
        (at_signed("other"), "nil".into()),
        (at_set(kw("a")), "true".into()),
        (at_set(kw("z")), "false".into()),
        (
            vec![
                kw("data"),
                Cell::blob(signed.id().as_bytes()),
                kw("value"),
                Cell::long(1),
            ],
            "2".into(),
        ),
    ];
    for (i, (path, want)) in cases.into_iter().enumerate() {
        c.send(&message::lattice_query(10 + i as i64, &path)).await;
        let r = c.recv_result().await;
        assert_eq!(
            (r.id, text(&r.value)),
            (Some(10 + i as i64), want),
            "{path:?}"
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// A LATTICE_VALUE whose owner key is a small DAG that shares one child 16 ways per level
/// (16^30 leaves as a tree): refused quickly with a short message, never printed in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_owner_key_is_refused_without_printing_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    let mut key_cell = Cell::blob(&[7u8; 200]);
    for _ in 0..30 {
        key_cell = Cell::vector(vec![key_cell; 16]);
    }
    let before = server.node().root_value();
    let started = std::time::Instant::now();
    c.send(&message::lattice_value(
        &[kw("fs")],
        Cell::map(vec![(key_cell, Cell::long(1))]),
        Some(5),
    ))
    .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(5), Some("TRUST")));
    let message = text(&r.value);
    assert!(
        message.starts_with("\"Bad signature in the slot of owner ") && message.len() < 400,
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.node().root_value().id(), before.id());
    server.shutdown(Duration::from_secs(5)).await;
}

/// LATTICE_VALUEs waiting for our DATA_REQUEST answers do not hold the slots other requests
/// wait for: with the merge slots all taken, a QUERY is still answered at once, and the merges
/// complete when their cells arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_merges_do_not_block_other_requests() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    let n = 16u8;
    let blobs: Vec<Cell> = (0..n).map(|i| Cell::blob(&[i; 300])).collect();
    for (i, b) in blobs.iter().enumerate() {
        let v = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
        let lv = message::lattice_value(&[kw("data")], v, Some(100 + i as i64));
        c.send_body(lv.encoding()).await; // top cell only: the blob is missing
    }
    let mut asked = Vec::new();
    while asked.len() < n as usize {
        let m = c.recv().await;
        assert_eq!(m.kind, MessageType::DataRequest);
        let hash = m.arg(2).expect("hash");
        let b = blobs
            .iter()
            .find(|b| Some(b.id().as_bytes().as_slice()) == hash.flat_bytes())
            .expect("one of ours");
        asked.push((m.id().expect("id"), b.clone()));
    }
    let started = std::time::Instant::now();
    c.send(&message::query(
        7,
        etch_formats::text::read_one("(+ 1 2)").expect("form"),
        None,
    ))
    .await;
    let r = c.recv_result().await;
    assert_eq!((r.id, text(&r.value)), (Some(7), "3".to_string()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for (id, b) in &asked {
        c.send_body(&encode_data_result(*id, &[Some(b.clone())]))
            .await;
    }
    let mut acked: Vec<i64> = Vec::new();
    for _ in 0..n {
        let r = c.recv_result().await;
        assert_eq!(r.error_code(), None);
        acked.push(r.id.expect("id"));
    }
    acked.sort();
    assert_eq!(acked, (100..100 + n as i64).collect::<Vec<_>>());
    server.shutdown(Duration::from_secs(5)).await;
}

/// A cell that two parents share is fetched once, even when the second parent arrives in a
/// later DATA_REQUEST answer than the cell itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_cell_is_fetched_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    // Round 1 fetches X and Z; round 2 fetches Y (inside Z), which refers to X again.
    let x = Cell::blob(&[9u8; 300]);
    let long_string = Cell::string(&"y".repeat(150));
    let y = Cell::vector(vec![
        x.clone(),
        long_string.clone(),
        Cell::blob(&[1u8; 110]),
    ]);
    let z = Cell::vector(vec![y.clone(), Cell::blob(&[2u8; 110])]);
    let b = Cell::vector(vec![x.clone(), z.clone()]);
    let v = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
    let cells: std::collections::HashMap<ValueId, Cell> = [
        x.clone(),
        y.clone(),
        z.clone(),
        b.clone(),
        v.clone(),
        long_string,
    ]
    .into_iter()
    .map(|c| (*c.id(), c))
    .collect();
    c.send_body(message::lattice_value(&[kw("data")], v.clone(), Some(9)).encoding())
        .await;
    let mut asked: Vec<ValueId> = Vec::new();
    let r = loop {
        let m = c.recv().await;
        if m.kind != MessageType::DataRequest {
            break ResultRecord::parse(m.payload()).expect("a Result");
        }
        let mut answer = Vec::new();
        for i in 2..m.arg_count() {
            let h = m.arg(i).expect("hash");
            let id = ValueId(h.flat_bytes().expect("blob").try_into().expect("32 bytes"));
            asked.push(id);
            answer.push(cells.get(&id).cloned());
        }
        c.send_body(&encode_data_result(m.id().expect("id"), &answer))
            .await;
    };
    assert_eq!(
        (r.id, r.error_code()),
        (Some(9), None),
        "{}",
        text(&r.value)
    );
    asked.sort_by_key(|id| id.0);
    let unique: std::collections::HashSet<ValueId> = asked.iter().copied().collect();
    assert_eq!(
        asked.len(),
        unique.len(),
        "each missing cell asked for once: {asked:?}"
    );
    assert!(unique.contains(x.id()) && unique.contains(y.id()));
    let data = value_at_path(
        &server.node().root_value(),
        &[kw("data")],
        server.node().store().as_ref(),
    )
    .expect("data");
    assert_eq!(data.id(), v.id());
    server.shutdown(Duration::from_secs(5)).await;
}

/// A LATTICE_VALUE for a path with no lattice is refused before any of its cells is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cells_are_fetched_for_a_path_without_a_lattice() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start(&dir.path().join("s"), None, Config::default()).await;
    let mut c = Raw::connect(server.local_addr()).await;
    let b = Cell::blob(&[3u8; 300]);
    let v = Cell::index(vec![(Cell::blob(b.id().as_bytes()), b.clone())]).expect("index");
    let lv = message::lattice_value(&[kw("nosuch")], v, Some(40));
    c.send_body(lv.encoding()).await; // the blob is missing
    let m = c.recv().await;
    assert_eq!(m.kind, MessageType::Result, "asked for cells: {:?}", m.kind);
    let r = ResultRecord::parse(m.payload()).expect("a Result");
    assert_eq!(
        (r.id, r.error_code().as_deref(), text(&r.value).as_str()),
        (Some(40), Some("ARGUMENT"), "\"No lattice at this path\"")
    );
    server.shutdown(Duration::from_secs(5)).await;
}

//! Hostile and broken clients: the node stays up, refuses or closes, and a healthy client's
//! PING is answered within 100 ms throughout.

mod common;

use common::{kw, ping_time, start, Raw};
use etch_formats::message::{self, encode_complete, FRAME_BYTES_MAX};
use etch_formats::vlq::write_vlq;
use etch_formats::{Cell, ValueId};
use etch_server::{Config, Limits};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest a healthy PING may take.
const PING_BUDGET: Duration = Duration::from_millis(100);

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A healthy client pinging every 10 ms on one connection and on fresh ones, recording the
/// worst round trip (µs).
fn healthy_pinger(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    worst: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut c = Raw::connect(addr).await;
        let mut n = 0u64;
        let mut id = 0;
        while !stop.load(Ordering::SeqCst) {
            id += 1;
            let t = std::time::Instant::now();
            c.send(&message::ping(id)).await;
            let r = c.recv_result().await;
            assert_eq!(r.id, Some(id));
            worst.fetch_max(t.elapsed().as_micros() as u64, Ordering::SeqCst);
            if id % 10 == 0 {
                let fresh = ping_time(addr).await;
                worst.fetch_max(fresh.as_micros() as u64, Ordering::SeqCst);
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_slow_a_healthy_one() {
    raise_fd_limit();
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        limits: Limits {
            frame_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(&dir.path().join("s"), None, config).await;
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let pinger = healthy_pinger(addr, stop.clone(), worst.clone());

    // 1,000 idle connections.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(ping_time(addr).await < PING_BUDGET);

    // A length prefix of 2^40: closed at once.
    let mut c = Raw::connect(addr).await;
    let mut p = Vec::new();
    write_vlq(&mut p, 1u64 << 40);
    c.send_bytes(&p).await;
    assert!(
        c.closed_within(Duration::from_secs(2)).await,
        "2^40 prefix closes"
    );

    // A frame over the 8 MiB client limit: closed.
    let mut c = Raw::connect(addr).await;
    let mut p = Vec::new();
    write_vlq(&mut p, 8 * 1024 * 1024 + 1);
    c.send_bytes(&p).await;
    assert!(
        c.closed_within(Duration::from_secs(2)).await,
        "oversized frame closes"
    );

    // 0x80 first byte and a zero length: closed.
    for bad in [[0x80u8, 0x01], [0x00, 0x00]] {
        let mut c = Raw::connect(addr).await;
        c.send_bytes(&bad).await;
        assert!(c.closed_within(Duration::from_secs(2)).await);
    }

    // Truncated frames: a prefix promising more than is sent, then the sender leaves.
    for cut in [1usize, 5, 50] {
        let mut c = Raw::connect(addr).await;
        let (body, _) = encode_complete(&message::ping(1), &etch_formats::NoResolver, 1 << 20);
        let mut f = etch_formats::message::frame(&body);
        f.extend_from_slice(&[0x64]); // a frame of 100 bytes starts ...
        f.extend(std::iter::repeat_n(0x11u8, cut)); // ... and stops short
        c.send_bytes(&f).await;
        assert_eq!(
            c.recv_result().await.id,
            Some(1),
            "the complete frame is answered"
        );
        drop(c);
    }

    // Garbage bytes: each frame undecodable → :FORMAT error, then closed after too many.
    let mut c = Raw::connect(addr).await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut garbage = Vec::new();
    for _ in 0..40 {
        let mut body = Vec::new();
        for _ in 0..20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push((x & 0xff) as u8);
        }
        body[0] = 0xff; // never a valid tag
        garbage.extend(etch_formats::message::frame(&body));
    }
    c.send_bytes(&garbage).await;
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "garbage closes"
    );

    // A DATA_REQUEST for 10,000 unknown hashes: :FORMAT, connection stays.
    let mut c = Raw::connect(addr).await;
    let hashes: Vec<ValueId> = (0..10_000u32)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            ValueId(h)
        })
        .collect();
    c.send(&message::data_request(5, &hashes)).await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(5), Some("FORMAT")));
    // ... and the same 10,000 as 40 legal requests, all answered with nils.
    for (i, chunk) in hashes.chunks(254).enumerate() {
        c.send(&message::data_request(100 + i as i64, chunk)).await;
    }
    for _ in hashes.chunks(254) {
        let r = c.recv_result().await;
        assert_eq!(r.error, None);
    }

    // A client sending one byte a second: closed by the frame timeout (2 s here); others
    // are not held up meanwhile.
    let mut slow = Raw::connect(addr).await;
    let (body, _) = encode_complete(
        &Cell::vector(vec![kw("PING"), Cell::long(9)]),
        &etch_formats::NoResolver,
        FRAME_BYTES_MAX,
    );
    let f = etch_formats::message::frame(&body);
    let mut closed = false;
    for b in f.iter() {
        slow.send_bytes(&[*b]).await;
        if slow.closed_within(Duration::from_secs(1)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a frame dribbled over 2 s is cut off");

    // A client that sends requests and never reads the answers: the node stops reading it
    // (its queue is bounded); the healthy client is unaffected.
    let mut greedy = Raw::connect(addr).await;
    // Each QUERY's form is a 100 KB String (no two 4 KB chunks alike), which evaluates to
    // itself: 100 KB answers.
    let mut y: u32 = 7;
    let text: String = (0..100_000)
        .map(|_| {
            y = y.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (b'a' + ((y >> 16) % 26) as u8) as char
        })
        .collect();
    let (b, _) = encode_complete(
        &message::query(1, Cell::string(&text), None),
        &etch_formats::NoResolver,
        FRAME_BYTES_MAX,
    );
    let mut sent = 0;
    for _ in 0..1000 {
        if tokio::time::timeout(Duration::from_millis(200), greedy.send_body(&b))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    // 100 MB of answers would be due; the node stopped reading at its 16 MiB queue limit, so our
    // sending stalled first.
    println!(
        "greedy client sent {sent} requests before stalling; node: {} frames in, {} bytes out, {} queries",
        server.metrics().frames_in.load(Ordering::SeqCst),
        server.metrics().bytes_out.load(Ordering::SeqCst),
        server.metrics().queries.load(Ordering::SeqCst)
    );
    assert!(
        sent < 1000,
        "the node kept reading a client that never reads"
    );
    assert!(ping_time(addr).await < PING_BUDGET);
    drop(greedy);

    // Large valid frames (a PING with 1,000 unreferenced 4 KB cells: 4 MB to hash each),
    // back to back: each is answered, and decoding them does not hold up others.
    let mut heavy = Raw::connect(addr).await;
    let junk: Vec<Cell> = (0..1000u32)
        .map(|i| {
            let mut b = vec![0u8; 4000];
            b[..4].copy_from_slice(&i.to_be_bytes());
            Cell::blob(&b)
        })
        .collect();
    for round in 0..8i64 {
        let body = etch_formats::encode_body(&message::ping(1000 + round), junk.iter());
        heavy.send_body(&body).await;
    }
    for round in 0..8i64 {
        assert_eq!(heavy.recv_result().await.id, Some(1000 + round));
    }

    assert!(ping_time(addr).await < PING_BUDGET);
    stop.store(true, Ordering::SeqCst);
    let pings = pinger.await.expect("pinger");
    let worst_us = worst.load(Ordering::SeqCst);
    println!("healthy PINGs: {pings}, worst round trip {worst_us} µs");
    assert!(pings > 10);
    assert!(
        Duration::from_micros(worst_us) < PING_BUDGET,
        "worst PING {worst_us} µs"
    );
    drop(idle);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_idle_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        limits: Limits {
            max_connections: 3,
            idle_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(&dir.path().join("s"), None, config).await;
    let addr = server.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::connect(addr).await;
        c.send(&message::ping(1)).await;
        assert_eq!(c.recv_result().await.id, Some(1));
        held.push(c);
    }
    // The fourth is closed at once.
    let mut extra = Raw::connect(addr).await;
    assert!(extra.closed_within(Duration::from_secs(2)).await);
    // Idle connections are closed after the idle timeout, freeing their slots.
    for c in held.iter_mut() {
        assert!(c.closed_within(Duration::from_secs(3)).await);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(ping_time(addr).await < Duration::from_secs(1));
    let m = server.metrics();
    assert!(m.connections_refused.load(Ordering::SeqCst) >= 1);
    assert!(m.timeouts.load(Ordering::SeqCst) >= 3);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        limits: Limits {
            work_slots: 1,
            load_wait: Duration::from_millis(1),
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(&dir.path().join("s"), None, config).await;
    let mut a = Raw::connect(server.local_addr()).await;
    let mut b = Raw::connect(server.local_addr()).await;
    let read = |t: &str| etch_formats::text::read::read_one(t).expect("form");
    // A query that runs to its step limit (2^30 calls) holds the only work slot ...
    a.send(&message::query(
        1,
        read("(do (def f (fn [n] (if (= n 0) 0 (+ (f (dec n)) (f (dec n)))))) (f 30))"),
        None,
    ))
    .await;
    // Wait until it is being evaluated (it then runs for tens of ms) ...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.metrics().queries.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // ... so another query waits for a slot, then gets :LOAD.
    let started = std::time::Instant::now();
    b.send(&message::query(2, Cell::long(1), None)).await;
    let r = b.recv_result().await;
    let waited = started.elapsed();
    assert_eq!((r.id, r.error_code().as_deref()), (Some(2), Some("LOAD")));
    assert_eq!(
        etch_formats::text::print(&r.value, &etch_formats::NoResolver).expect("p"),
        "\"Trx overload\""
    );
    // PING is never queued.
    b.send(&message::ping(3)).await;
    assert_eq!(b.recv_result().await.id, Some(3));
    let r = a.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(1), Some("JUICE")));
    println!("LOAD after {waited:?}");
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_share_a_bounded_buffer_budget() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        limits: Limits {
            client_frame_bytes: 1 << 20,
            peer_frame_bytes: 1 << 20,
            memory_bytes: 3 << 19,
            frame_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(&dir.path().join("s"), None, config).await;
    let addr = server.local_addr();
    let mut prefix = Vec::new();
    write_vlq(&mut prefix, 1 << 20);
    // The first large frame gets its budget and waits for its bytes ...
    let mut a = Raw::connect(addr).await;
    a.send_bytes(&prefix).await;
    a.send_bytes(&vec![0x11; 1000]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ... a second one finds no budget left and is closed within the frame timeout.
    let mut b = Raw::connect(addr).await;
    b.send_bytes(&prefix).await;
    assert!(b.closed_within(Duration::from_secs(3)).await);
    // Small frames are never held up by the budget.
    assert!(ping_time(addr).await < PING_BUDGET);
    // The first frame never completes: closed by the frame timeout, its budget returned.
    assert!(a.closed_within(Duration::from_secs(3)).await);
    let mut c = Raw::connect(addr).await;
    c.send_bytes(&prefix).await;
    c.send_bytes(&vec![0u8; 1 << 20]).await;
    // A full 1 MiB body of zeros is not a valid message: a :FORMAT answer, not a close.
    let r = c.recv_result().await;
    assert_eq!(r.error_code().as_deref(), Some("FORMAT"));
    server.shutdown(Duration::from_secs(5)).await;
}

/// DATA_REQUEST store reads have node-wide slots: with none free within `load_wait`, the
/// request is refused with `:LOAD` (and other requests are still answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_requests_beyond_the_read_slots_get_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = Config {
        limits: Limits {
            data_read_slots: 0,
            load_wait: Duration::from_millis(200),
            ..Limits::default()
        },
        ..Config::default()
    };
    let server = start(&dir.path().join("s"), None, config).await;
    let mut c = Raw::connect(server.local_addr()).await;
    c.send(&message::data_request(3, &[ValueId([5; 32])])).await;
    let r = c.recv_result().await;
    assert_eq!((r.id, r.error_code().as_deref()), (Some(3), Some("LOAD")));
    c.send(&message::ping(4)).await;
    assert_eq!(c.recv_result().await.id, Some(4));
    server.shutdown(Duration::from_secs(5)).await;
}

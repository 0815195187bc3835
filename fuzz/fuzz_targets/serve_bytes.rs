//! Arbitrary input sent to a running `etch-server` node over loopback, as raw bytes (first
//! byte 0) or as one well-framed body (otherwise): the node never panics, and after every
//! input a fresh client's PING is answered within a second. The node's store holds a few
//! values so that QUERY, DATA_REQUEST and LATTICE_QUERY find things.
#![no_main]

use etch_engine::node::LocalNode;
use etch_engine::store::{open_store, OpenOptions, StoreFormat};
use etch_formats::message::frame;
use etch_formats::text::read_all;
use etch_server::{client::BlockingClient, Config, Server};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

struct Node {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    _server: Server,
    _dir: tempfile::TempDir,
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        let store = open_store(&dir.path().join("s"), &OpenOptions::writable(StoreFormat::Native))
            .expect("store")
            .cell_store();
        let node = Arc::new(LocalNode::open(store, None).expect("node"));
        for v in read_all("[1 2 3] {:a \"x\" :b [4 5]} #{:k 7} \"a string long enough to be a branch of its parent cell, over the embedding limit\"")
            .expect("values")
        {
            let _ = node.store().put(&v);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            Server::start(l, node, None, Config::default()).expect("server")
        });
        Node {
            addr: server.local_addr(),
            _rt: rt,
            _server: server,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let n = node();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode == 0 { rest.to_vec() } else { frame(rest) };
    if let Ok(mut s) = TcpStream::connect(n.addr) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        let _ = s.write_all(&bytes);
        // End of input: the node answers what it has read, then closes, ending the loop below.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 65536];
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let t = Instant::now();
    let c = BlockingClient::connect(&n.addr.to_string(), None).expect("node still accepts");
    c.ping().expect("node still answers PING");
    assert!(t.elapsed() < Duration::from_secs(1), "PING took {:?}", t.elapsed());
});

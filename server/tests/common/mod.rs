//! Helpers shared by the server tests: nodes on temporary stores, raw framed sockets.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use etch_engine::node::LocalNode;
use etch_engine::query::{eval_text_in, Env, EvalContext};
use etch_engine::store::{open_store, OpenOptions, StoreFormat};
use etch_formats::message::{encode_complete, frame, next_frame, FRAME_BYTES_MAX};
use etch_formats::{Cell, Message, NoResolver, ResultRecord};
use etch_server::{Config, Server};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A deterministic key from one byte.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// Opens (creating) a native store at `path` and the node on it.
pub fn open_node(path: &Path, key: Option<SigningKey>) -> Arc<LocalNode> {
    let store = open_store(path, &OpenOptions::writable(StoreFormat::Native))
        .expect("store")
        .cell_store();
    Arc::new(LocalNode::open(store, key).expect("node"))
}

/// Starts a node on a fresh loopback port.
pub async fn start(path: &Path, key: Option<SigningKey>, config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start_on(listener, path, key, config)
}

/// Starts a node on `listener`.
pub fn start_on(
    listener: TcpListener,
    path: &Path,
    key: Option<SigningKey>,
    config: Config,
) -> Server {
    let node = open_node(path, key.clone());
    Server::start(listener, node, key, config).expect("start")
}

/// Evaluates query text on a node with full rights (as the console would).
pub fn admin_eval(node: &LocalNode, text: &str) -> Cell {
    let mut env = Env::new();
    let mut ctx = EvalContext::new(node.store().as_ref());
    ctx.node = Some(node);
    eval_text_in(text, &mut env, &ctx).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

/// A framed socket driven by hand.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub async fn connect(addr: std::net::SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send_body(&mut self, body: &[u8]) {
        self.send_bytes(&frame(body)).await;
    }

    /// Sends a payload with every branch it holds.
    pub async fn send(&mut self, payload: &Cell) {
        let (body, _) = encode_complete(payload, &NoResolver, FRAME_BYTES_MAX);
        self.send_body(&body).await;
    }

    /// The next frame's body, or `None` at end of stream / after `wait`.
    pub async fn recv_body(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(Some(r)) = next_frame(&self.buf, FRAME_BYTES_MAX) {
                let body = self.buf[r.clone()].to_vec();
                self.buf.drain(..r.end);
                return Some(body);
            }
            let mut chunk = vec![0u8; 65536];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next message (panics on timeout).
    pub async fn recv(&mut self) -> Message {
        let body = self
            .recv_body(Duration::from_secs(10))
            .await
            .expect("a frame");
        Message::decode(body).expect("decodable")
    }

    /// The next Result record (panics on anything else).
    pub async fn recv_result(&mut self) -> ResultRecord {
        let m = self.recv().await;
        ResultRecord::parse(m.payload()).expect("a Result")
    }

    /// True when the server closed the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Sends PING on a fresh connection and returns the round trip.
pub async fn ping_time(addr: std::net::SocketAddr) -> Duration {
    let t = std::time::Instant::now();
    let mut c = Raw::connect(addr).await;
    c.send(&etch_formats::message::ping(7)).await;
    let r = c.recv_result().await;
    assert_eq!(r.id, Some(7));
    t.elapsed()
}

/// Keyword.
pub fn kw(name: &str) -> Cell {
    Cell::keyword(name).expect("keyword")
}

//! The requester side of the protocol: [`Client`] (async) and [`BlockingClient`] (its own
//! small runtime, for the shell and `etch eval --connect`).

use crate::conn::{self, Conn, ConnParams, RequestError};
use crate::prove::{self, ChallengeError};
use ed25519_dalek::SigningKey;
use etch_formats::message::{self, element, encode_complete, FRAME_BYTES_MAX};
use etch_formats::{Cell, Message, NoResolver, Resolver, ResultRecord, ValueId};
use std::sync::Arc;
use std::time::Duration;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The request got no answer.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The answer is not what the request calls for.
    #[error("unexpected answer: {0}")]
    BadAnswer(String),
    /// The server answered with an error Result.
    #[error(":{code} {message}")]
    Refused {
        /// The error code (keyword name).
        code: String,
        /// The message.
        message: String,
    },
}

impl ClientError {
    /// The error code this failure shows as (`:CONNECT`, `:TIMEOUT`, the server's code ...).
    pub fn code(&self) -> String {
        match self {
            ClientError::Connect(_) | ClientError::Request(RequestError::Closed) => {
                "CONNECT".into()
            }
            ClientError::Request(RequestError::Timeout(_)) => "TIMEOUT".into(),
            ClientError::BadAnswer(_) => "UNEXPECTED".into(),
            ClientError::Refused { code, .. } => code.clone(),
        }
    }
}

/// The text of an error Result's message (a String, else its printed form).
pub fn error_text(r: &ResultRecord) -> String {
    match r.value.flat_bytes() {
        Some(b) if r.value.kind() == etch_formats::Kind::String => {
            String::from_utf8_lossy(b).into_owned()
        }
        // Bounded: the value comes from the server and may share subtrees without end.
        _ => etch_formats::text::print_limited(&r.value, &NoResolver, 64 * 1024)
            .unwrap_or_else(|_| format!("an error value of type {:?}", r.value.kind())),
    }
}

fn result_of(m: &Message) -> Result<ResultRecord, ClientError> {
    ResultRecord::parse(m.payload()).ok_or_else(|| ClientError::BadAnswer("not a Result".into()))
}

fn success(m: &Message) -> Result<Cell, ClientError> {
    let r = result_of(m)?;
    match r.error_code() {
        None => Ok(r.value),
        Some(code) => Err(ClientError::Refused {
            message: error_text(&r),
            code,
        }),
    }
}

/// A connection to a node.
pub struct Client {
    conn: Arc<Conn>,
    reader: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl Client {
    /// Connects to `address` (`host:port`). `key` answers challenges from the server.
    pub async fn connect(address: &str, key: Option<SigningKey>) -> Result<Client, ClientError> {
        let (conn, reader) = conn::connect(address, ConnParams::client(key))
            .await
            .map_err(|e| ClientError::Connect(format!("{address}: {e}")))?;
        Ok(Client {
            conn,
            reader,
            timeout: Duration::from_secs(60),
        })
    }

    /// Sets how long each request waits for its answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The connection.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Sends `payload(id)` with every branch it holds in memory and waits for the RESULT.
    pub async fn request(&self, payload: impl FnOnce(i64) -> Cell) -> Result<Message, ClientError> {
        Ok(self
            .conn
            .request(
                |id| encode_complete(&payload(id), &NoResolver, FRAME_BYTES_MAX).0,
                self.timeout,
            )
            .await?)
    }

    /// PING: the server's clock in ms.
    pub async fn ping(&self) -> Result<i64, ClientError> {
        let v = success(&self.request(message::ping).await?)?;
        v.as_long()
            .ok_or_else(|| ClientError::BadAnswer("PING result is not a Long".into()))
    }

    /// STATUS: the status map.
    pub async fn status(&self) -> Result<Cell, ClientError> {
        success(&self.request(message::status).await?)
    }

    /// QUERY: the Result record (success or the evaluation's error).
    pub async fn query(&self, form: Cell) -> Result<ResultRecord, ClientError> {
        result_of(&self.request(|id| message::query(id, form, None)).await?)
    }

    /// DATA_REQUEST for up to 254 hashes: each cell, `None` where the server has none. Every
    /// cell returned hashes to the ID asked for.
    pub async fn data_request(&self, hashes: &[ValueId]) -> Result<Vec<Option<Cell>>, ClientError> {
        let v = success(&self.request(|id| message::data_request(id, hashes)).await?)?;
        let mut out = Vec::with_capacity(hashes.len());
        for (i, h) in hashes.iter().enumerate() {
            match element(&v, i as u64) {
                Some(c) if c.is_nil() => out.push(None),
                Some(c) if c.id() == h => out.push(Some(c)),
                _ => return Err(ClientError::BadAnswer(format!("cell {i} of the answer"))),
            }
        }
        Ok(out)
    }

    /// LATTICE_QUERY: the committed value at `path` (complete up to the server's budget).
    pub async fn lattice_query(&self, path: &[Cell]) -> Result<Cell, ClientError> {
        success(&self.request(|id| message::lattice_query(id, path)).await?)
    }

    /// LATTICE_VALUE with an acknowledgement ID: merges `value` at `path` on the server and
    /// returns the new root's Value ID once committed (or the refusal). Attaches every branch
    /// of `value` held in memory or in `resolver`.
    pub async fn lattice_value(
        &self,
        path: &[Cell],
        value: Cell,
        resolver: &dyn Resolver,
    ) -> Result<Cell, ClientError> {
        let reply = self
            .conn
            .request(
                |id| {
                    encode_complete(
                        &message::lattice_value(path, value, Some(id)),
                        resolver,
                        FRAME_BYTES_MAX,
                    )
                    .0
                },
                self.timeout,
            )
            .await?;
        success(&reply)
    }

    /// Challenges the server with `key`; returns the key it proved it holds.
    pub async fn challenge(
        &self,
        key: &SigningKey,
        expected: Option<[u8; 32]>,
    ) -> Result<[u8; 32], ChallengeError> {
        prove::challenge(&self.conn, key, expected, self.timeout).await
    }

    /// Says GOODBYE and closes.
    pub async fn close(self) {
        self.conn.send_payload(&message::goodbye(None));
        self.conn.close();
        let _ = self.reader.await;
    }
}

/// A [`Client`] with its own runtime, for synchronous callers.
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
    address: String,
}

impl BlockingClient {
    /// Connects to `address`.
    pub fn connect(address: &str, key: Option<SigningKey>) -> Result<BlockingClient, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let client = runtime.block_on(Client::connect(address, key))?;
        Ok(BlockingClient {
            runtime,
            client,
            address: address.to_string(),
        })
    }

    /// The address connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// See [`Client::query`].
    pub fn query(&self, form: Cell) -> Result<ResultRecord, ClientError> {
        self.runtime.block_on(self.client.query(form))
    }

    /// [`Client::query`] that stops waiting once `cancel` is set (checked every 20 ms):
    /// `Ok(None)`. The server's evaluation still runs to its end or deadline; its answer,
    /// if it comes, is ignored as an unmatched RESULT.
    pub fn query_cancellable(
        &self,
        form: Cell,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<ResultRecord>, ClientError> {
        self.runtime.block_on(async {
            let watch = async {
                while !cancel.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::select! {
                r = self.client.query(form) => r.map(Some),
                _ = watch => Ok(None),
            }
        })
    }

    /// See [`Client::data_request`].
    pub fn data_request(&self, hashes: &[ValueId]) -> Result<Vec<Option<Cell>>, ClientError> {
        self.runtime.block_on(self.client.data_request(hashes))
    }

    /// See [`Client::ping`].
    pub fn ping(&self) -> Result<i64, ClientError> {
        self.runtime.block_on(self.client.ping())
    }

    /// See [`Client::status`].
    pub fn status(&self) -> Result<Cell, ClientError> {
        self.runtime.block_on(self.client.status())
    }

    /// See [`Client::lattice_query`].
    pub fn lattice_query(&self, path: &[Cell]) -> Result<Cell, ClientError> {
        self.runtime.block_on(self.client.lattice_query(path))
    }
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        self.client.conn.send_payload(&message::goodbye(None));
        self.client.conn.close();
    }
}

/// A [`Resolver`] that fetches cells from a server by DATA_REQUEST (for values whose branches
/// did not fit in an answer).
pub struct RemoteResolver {
    client: Arc<BlockingClient>,
}

impl RemoteResolver {
    /// Resolves through `client`.
    pub fn new(client: Arc<BlockingClient>) -> RemoteResolver {
        RemoteResolver { client }
    }
}

impl Resolver for RemoteResolver {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, etch_formats::ResolveError> {
        match self.client.data_request(std::slice::from_ref(id)) {
            Ok(mut cells) => Ok(cells.pop().flatten()),
            Err(e) => Err(etch_formats::ResolveError::Store(e.to_string())),
        }
    }
}

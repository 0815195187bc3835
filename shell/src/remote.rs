//! A shell backend on a server: each input is sent as one QUERY (several forms as
//! `(do ...)`, as the Java client does). A `def` lasts for its own input only (query.md §6.5).
//! The node key answers the server's challenge, so the server's own key (or one it lists as
//! admin) gets admin rights. Branches of a result that did not fit in the answer are fetched
//! by DATA_REQUEST when printed.

use crate::Backend;
use etch_engine::query::EvalError;
use etch_formats::{Cell, Resolver};
use etch_server::client::{error_text, BlockingClient, ClientError, RemoteResolver};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

/// Error codes a server may send that are not in our fixed list are interned up to this
/// many (an [`EvalError`] code is `&'static str`); beyond it they show as `:EXCEPTION`.
const INTERNED_CODES_MAX: usize = 256;

/// The `&'static str` for an error code received from a server.
pub fn intern_code(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "ARGUMENT",
        "ARITY",
        "ASSERT",
        "BOUNDS",
        "CANCELLED",
        "CAST",
        "COMPILE",
        "CONNECT",
        "DEPTH",
        "EXCEPTION",
        "FORMAT",
        "IO",
        "JUICE",
        "LIMIT",
        "LOAD",
        "MEMORY",
        "MISSING",
        "NOBODY",
        "STATE",
        "SYNTAX",
        "TIMEOUT",
        "TRUST",
        "UNDECLARED",
        "UNEXPECTED",
        "NOT_FOUND",
        "EXISTS",
        "FUNDS",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == code) {
        return k;
    }
    static EXTRA: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut extra = EXTRA
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(k) = extra.get(code) {
        return k;
    }
    if extra.len() >= INTERNED_CODES_MAX || code.len() > 64 {
        return "EXCEPTION";
    }
    let leaked: &'static str = Box::leak(code.to_string().into_boxed_str());
    extra.insert(code.to_string(), leaked);
    leaked
}

/// The error a failed call shows as.
pub fn client_error(e: &ClientError) -> EvalError {
    match e {
        ClientError::Refused { code, message } => EvalError::new(intern_code(code), message),
        other => EvalError::new(intern_code(&other.code()), other.to_string()),
    }
}

pub use etch_engine::query::query_form;

/// Evaluates `text` on the server behind `client`.
pub fn eval_remote(client: &BlockingClient, text: &str) -> Result<Cell, EvalError> {
    eval_remote_form(client, query_form(text)?)
}

/// Evaluates `form` on the server behind `client` (one QUERY): its value or its error.
pub fn eval_remote_form(client: &BlockingClient, form: Cell) -> Result<Cell, EvalError> {
    let r = client.query(form).map_err(|e| client_error(&e))?;
    match r.error_code() {
        None => Ok(r.value),
        Some(code) => Err(EvalError::new(intern_code(&code), error_text(&r))),
    }
}

/// The shell over a server connection.
pub struct RemoteBackend {
    client: Arc<BlockingClient>,
    resolver: RemoteResolver,
    label: String,
}

impl RemoteBackend {
    /// Connects to the server at `address` (`host:port`). `key` answers the server's
    /// challenges: a key the server counts as an admin key gets admin rights.
    pub fn connect(
        address: &str,
        key: Option<ed25519_dalek::SigningKey>,
    ) -> Result<RemoteBackend, String> {
        let client = Arc::new(BlockingClient::connect(address, key).map_err(|e| e.to_string())?);
        Ok(RemoteBackend {
            resolver: RemoteResolver::new(client.clone()),
            client,
            label: format!("{address} (server)"),
        })
    }

    /// The connection.
    pub fn client(&self) -> &Arc<BlockingClient> {
        &self.client
    }
}

impl Backend for RemoteBackend {
    fn eval(&mut self, text: &str, cancel: &AtomicBool) -> Result<Cell, EvalError> {
        // Ctrl-C stops the wait; a QUERY cannot be withdrawn once sent (the server's deadline
        // bounds it).
        let form = query_form(text)?;
        match self.client.query_cancellable(form, cancel) {
            Ok(Some(r)) => match r.error_code() {
                None => Ok(r.value),
                Some(code) => Err(EvalError::new(intern_code(&code), error_text(&r))),
            },
            Ok(None) => Err(EvalError::new("CANCELLED", "Query cancelled")),
            Err(e) => Err(client_error(&e)),
        }
    }

    fn resolver(&self) -> &dyn Resolver {
        &self.resolver
    }

    fn take_print_full(&mut self) -> bool {
        false
    }

    fn session_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn keywords(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

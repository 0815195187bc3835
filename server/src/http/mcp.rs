//! MCP tools for AI agents (gateway.md "MCP tools"), on the official Rust SDK (`rmcp`): the
//! Convex DLFS tools with Convex's names, input schemas and result shapes (`dlfs_list_drives`,
//! `dlfs_create_drive`, `dlfs_delete_drive`, `dlfs_list`, `dlfs_read`, `dlfs_write`,
//! `dlfs_mkdir`, `dlfs_delete`; `ucans` for delegated access), and Etch's own: `etch_query` (a
//! read-only query), `etch_fetch` (a value by ID, shortened as the shell shows it) and
//! `etch_store` (stores a value, returns its ID).
//!
//! Every tool is a query-language form evaluated by an [`McpBackend`]: the node itself (`/mcp`
//! on `etch serve --http`, and `etch mcp --store` over stdio) or a node over the peer protocol
//! (`etch mcp --connect`). So the tools run exactly the drive code the shell and the peer
//! protocol run, and are signed and committed the same way (durable before the answer).
//!
//! Results follow Convex (`McpProtocol.buildMcpResult`): the structured result as
//! `structuredContent` and its JSON text as the one text content; failures are tool results with
//! `isError` and `{"message": …}`. Who the caller is comes from the HTTP request (bearer token,
//! as for WebDAV) or, over stdio, is the operator.

use super::auth::{caller, Caller};
use crate::token::{delegated_owner, CRUD_DELETE, CRUD_READ, CRUD_WRITE};
use base64::Engine;
use etch_engine::lattice::did_key;
use etch_engine::node::LocalNode;
use etch_engine::query::{eval_form, query_form, Env, EvalContext, EvalError, Rights};
use etch_engine::store::CellStore;
use etch_formats::text::print::{print_shortened, Shorten};
use etch_formats::text::{print_json, read_one};
use etch_formats::value::{blob_bytes, elements};
use etch_formats::{Cell, Resolver};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use std::sync::Arc;

/// Bytes of a file `dlfs_read` returns at most (larger files: `GET /dlfs/…` streams them).
pub const READ_BYTES_MAX: u64 = 16 << 20;
/// Entries `dlfs_list` returns at most.
pub const LIST_ENTRIES_MAX: usize = 10_000;
/// Bytes of text a printed result (`etch_query`, `etch_fetch`) takes at most, as in the shell.
pub const PRINT_BYTES_MAX: usize = 65_536;

/// Where the tools' forms are evaluated.
pub trait McpBackend: Send + Sync + 'static {
    /// Evaluates `form` with `rights`; the value, whose branches [`McpBackend::resolver`] reads.
    fn eval(&self, form: &Cell, rights: Rights) -> Result<Cell, EvalError>;
    /// Reads the branches of results.
    fn resolver(&self) -> &dyn Resolver;
    /// Seconds since the epoch, for token times.
    fn now_s(&self) -> i64;
}

/// The tools on a node in this process.
pub struct NodeBackend {
    node: Arc<LocalNode>,
    store: Arc<dyn CellStore>,
    /// Wall-clock limit of one evaluation.
    timeout: std::time::Duration,
}

impl NodeBackend {
    /// Tools on `node`; each evaluation stops with `:JUICE` after `timeout`.
    pub fn new(node: Arc<LocalNode>, timeout: std::time::Duration) -> NodeBackend {
        NodeBackend {
            store: node.store().clone(),
            node,
            timeout,
        }
    }
}

impl McpBackend for NodeBackend {
    fn eval(&self, form: &Cell, rights: Rights) -> Result<Cell, EvalError> {
        let ctx = EvalContext {
            resolver: self.store.as_ref(),
            node: Some(self.node.as_ref()),
            rights,
            cancel: None,
            deadline: Some(std::time::Instant::now() + self.timeout),
            steps_max: etch_engine::query::EVAL_STEPS_MAX,
        };
        eval_form(form, &mut Env::new(), &ctx)
    }

    fn resolver(&self) -> &dyn Resolver {
        self.store.as_ref()
    }

    fn now_s(&self) -> i64 {
        self.node.now().div_euclid(1000)
    }
}

/// Who calls, as far as the tools care.
#[derive(Debug, Clone)]
struct Session {
    /// The owner whose drives are meant; `None`: the evaluating node's own (its default owner).
    owner: Option<[u8; 32]>,
    /// The caller's did, when it proved one (needed to present UCANs).
    did: Option<String>,
    /// Whether the caller may write the owner's drives (and store values).
    may_write: bool,
}

impl Session {
    /// The rights of the caller's writes: admin (the node signs) or reads only.
    fn write_rights(&self) -> Rights {
        if self.may_write {
            Rights::Admin
        } else {
            Tools::read_rights()
        }
    }
}

/// How HTTP callers are told apart (the node's door policy).
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// The node's key: its drives are the anonymous namespace, the only ones it signs (`None`:
    /// a node without a key, which has no drives of its own and takes no tokens).
    pub node_key: Option<[u8; 32]>,
    /// Whether callers without a token may write.
    pub anonymous_writes: bool,
}

/// The MCP server: the tools over one backend.
#[derive(Clone)]
pub struct Tools {
    backend: Arc<dyn McpBackend>,
    /// `None` over stdio: the operator, with every right.
    http: Option<HttpPolicy>,
}

impl Tools {
    /// Tools for the operator (stdio): the backend's own drives, every right.
    pub fn operator(backend: Arc<dyn McpBackend>) -> Tools {
        Tools {
            backend,
            http: None,
        }
    }

    /// Tools for HTTP callers, told apart by their bearer tokens under `policy`.
    pub fn http(backend: Arc<dyn McpBackend>, policy: HttpPolicy) -> Tools {
        Tools {
            backend,
            http: Some(policy),
        }
    }

    /// The session of a call: from its HTTP request's headers, or the operator's.
    fn session(&self, ctx: &RequestContext<RoleServer>) -> Result<Session, String> {
        let Some(policy) = &self.http else {
            return Ok(Session {
                owner: None,
                did: None,
                may_write: true,
            });
        };
        let parts = ctx.extensions.get::<axum::http::request::Parts>();
        let headers = parts.map(|p| p.headers.clone()).unwrap_or_default();
        let node_did = policy.node_key.map(|k| did_key(&k)).unwrap_or_default();
        match caller(&headers, &node_did, self.backend.now_s()) {
            Err(_) => Err("invalid token".into()),
            Ok(Caller::Anonymous) => Ok(Session {
                owner: None,
                did: None,
                may_write: policy.anonymous_writes,
            }),
            Ok(Caller::Identity(k)) => Ok(Session {
                owner: (Some(k) != policy.node_key).then_some(k),
                did: Some(did_key(&k)),
                may_write: Some(k) == policy.node_key,
            }),
        }
    }
}

/// A tool's failure: its message (Convex's `toolError`).
type ToolResult = Result<Value, String>;

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

fn string_prop(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn ucans_prop() -> Value {
    json!({"type": "array", "items": {"type": "string"},
           "description": "UCAN tokens (JWT strings) granting access to another owner's drive"})
}

/// The tools, with Convex's descriptions and schemas for the DLFS ones (plus `ucans`).
fn tool_list() -> Vec<Tool> {
    let t = |name: &'static str, desc: &'static str, props: Value, required: &[&str]| {
        Tool::new(
            name,
            desc,
            schema(json!({"type": "object", "properties": props, "required": required})),
        )
    };
    let drive = string_prop("Drive name");
    vec![
        t("dlfs_list_drives", "List all DLFS drives available to the current user. Each drive is an independent lattice-backed filesystem with its own root directory. Returns an array of drive names.", json!({}), &[]),
        t("dlfs_create_drive", "Create a new named DLFS drive. Each drive is an independent filesystem with its own directory tree. Fails if a drive with the same name already exists.", json!({"name": string_prop("Name for the new drive (e.g. 'home', 'docs', 'projects')")}), &["name"]),
        t("dlfs_delete_drive", "Delete a DLFS drive and all its contents. This is irreversible — all files and directories in the drive are lost.", json!({"name": string_prop("Name of the drive to delete")}), &["name"]),
        t("dlfs_list", "List directory contents in a DLFS drive. Returns an array of entries, each with name, type ('file' or 'directory'), and size (for files). Omit path to list the drive root.", json!({"drive": drive, "path": string_prop("Directory path within the drive (e.g. 'docs/specs'). Omit for root directory."), "ucans": ucans_prop()}), &["drive"]),
        t("dlfs_read", "Read file contents from a DLFS drive. Returns text content with UTF-8 encoding for text files, or base64-encoded content for binary files. Also returns the file size in bytes.", json!({"drive": drive, "path": string_prop("File path within the drive (e.g. 'docs/readme.txt')"), "ucans": ucans_prop()}), &["drive", "path"]),
        t("dlfs_write", "Write text content to a file in a DLFS drive. Creates the file if it does not exist; overwrites if it does. Parent directories must already exist — use dlfs_mkdir first if needed. Returns the number of bytes written and whether the file was newly created.", json!({"drive": drive, "path": string_prop("File path within the drive (e.g. 'docs/notes.txt')"), "content": string_prop("Text content to write to the file"), "ucans": ucans_prop()}), &["drive", "path", "content"]),
        t("dlfs_mkdir", "Create a directory in a DLFS drive. The parent directory must already exist. To create nested paths, create each level in order (e.g. 'docs' then 'docs/specs').", json!({"drive": drive, "path": string_prop("Directory path to create (e.g. 'docs/specs')"), "ucans": ucans_prop()}), &["drive", "path"]),
        t("dlfs_delete", "Delete a file or empty directory from a DLFS drive. Directories must be empty before deletion. The operation is irreversible at the API level (though the underlying lattice retains history via tombstones).", json!({"drive": drive, "path": string_prop("Path of the file or empty directory to delete"), "ucans": ucans_prop()}), &["drive", "path"]),
        t("etch_query", "Evaluate a read-only query in Etch's Convex-Lisp query language (e.g. (count (root)), (ls \"docs/\")). Returns the value as JSON and as printed text, shortened like the Etch shell shows it.", json!({"query": string_prop("The query text; several forms are evaluated in order, the last one's value returned")}), &["query"]),
        t("etch_fetch", "Fetch a value by its Value ID (the SHA3-256 of its encoding, 64 hex digits). Returns it printed, shortened like the Etch shell shows it.", json!({"id": string_prop("Value ID: 64 hex digits, with or without 0x")}), &["id"]),
        t("etch_store", "Store a value given in Convex-Lisp text (e.g. {:a [1 2 3]} or \"text\") and return its Value ID. The value is kept in the node's :data and is durable when this returns.", json!({"value": string_prop("The value, as Convex-Lisp text")}), &["value"]),
    ]
}

fn text_arg(args: &JsonObject, name: &str) -> Result<String, String> {
    args.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("'{name}' is required"))
}

fn sym(name: &str) -> Cell {
    Cell::symbol(name).unwrap_or_else(|_| Cell::nil())
}

fn call(f: &str, args: Vec<Cell>) -> Cell {
    let mut items = vec![sym(f)];
    items.extend(args);
    Cell::list(items)
}

/// A location argument: `"drive/path"` in the evaluating node's default owner's drives, or
/// `[owner "drive/path"]`.
fn location(owner: Option<[u8; 32]>, drive: &str, path: &str) -> Cell {
    let path = path.trim_matches('/');
    let text = if path.is_empty() {
        drive.to_string()
    } else {
        format!("{drive}/{path}")
    };
    match owner {
        None => Cell::string(&text),
        Some(k) => Cell::vector(vec![Cell::blob(&k), Cell::string(&text)]),
    }
}

/// The text of a String or Blob result.
fn text_of(c: &Cell, r: &dyn Resolver) -> Result<String, String> {
    blob_bytes(c, r)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| e.to_string())
}

fn failed(e: EvalError) -> String {
    e.message
}

/// The field `name` (a keyword) of a map result.
fn field(m: &Cell, name: &str, r: &dyn Resolver) -> Option<Cell> {
    let key = Cell::keyword(name).ok()?;
    etch_engine::lattice::value_at_path(m, &[key], r)
        .ok()
        .filter(|v| !v.is_nil())
}

/// Whether a `stat` result's `:type` is the keyword `kind`.
fn is_kind(stat: &Cell, kind: &str, r: &dyn Resolver) -> bool {
    field(stat, "type", r).is_some_and(|t| t.name_bytes() == Some(kind.as_bytes()))
}

/// One DLFS tool call's resolved access: whose drive, and with which rights.
struct Access {
    owner: Option<[u8; 32]>,
    rights: Rights,
}

impl Tools {
    fn eval(&self, form: Cell, rights: Rights) -> Result<Cell, String> {
        self.backend.eval(&form, rights).map_err(failed)
    }

    fn read_rights() -> Rights {
        Rights::Client {
            may_write_data: false,
        }
    }

    fn drive_names(&self, owner: Option<[u8; 32]>) -> Result<Vec<String>, String> {
        let args = owner.map(|k| vec![Cell::blob(&k)]).unwrap_or_default();
        let v = self.eval(call("drives", args), Self::read_rights())?;
        let r = self.backend.resolver();
        elements(&v, r)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|c| text_of(c, r))
            .collect()
    }

    /// Whose `drive` a call means and with which rights (Convex `resolveDrive`): the caller's
    /// own drive; else, with `ucans`, the drive of an owner who granted the caller `ability` on
    /// it. Every denial reads "Drive not found" (no existence oracle).
    fn access(
        &self,
        s: &Session,
        args: &JsonObject,
        drive: &str,
        path: &str,
        ability: &str,
    ) -> Result<Access, String> {
        let own = Access {
            owner: s.owner,
            rights: s.write_rights(),
        };
        let ucans: Vec<String> = args
            .get("ucans")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if ucans.is_empty() || self.drive_names(s.owner)?.iter().any(|d| d == drive) {
            return Ok(own);
        }
        let Some(did) = &s.did else {
            return Err("Authentication required to present UCAN proofs".into());
        };
        let resource = format!("/dlfs/{drive}/{}", path.trim_matches('/'));
        let resource = resource.trim_end_matches('/');
        let owner = delegated_owner(&ucans, did, resource, ability, self.backend.now_s())
            .ok_or_else(|| format!("Drive not found: {drive}"))?;
        // The node signs only its own drives: a grant of the node's drive lets the caller
        // write it; a grant of someone else's only reads.
        let node_owned = self
            .http
            .as_ref()
            .is_some_and(|p| p.node_key == Some(owner));
        Ok(Access {
            owner: if node_owned { None } else { Some(owner) },
            rights: if node_owned && ability != CRUD_READ {
                Rights::Admin
            } else {
                Self::read_rights()
            },
        })
    }

    fn dispatch(&self, s: &Session, name: &str, args: &JsonObject) -> ToolResult {
        let drive_path = |ability: &str, path_required: bool| -> Result<_, String> {
            let drive = text_arg(args, "drive")?;
            let path = if path_required {
                text_arg(args, "path")?
            } else {
                args.get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let a = self.access(s, args, &drive, &path, ability)?;
            Ok((drive, path, a))
        };
        let r = self.backend.resolver();
        match name {
            "dlfs_list_drives" => Ok(json!({"drives": self.drive_names(s.owner)?})),
            "dlfs_create_drive" => {
                let n = text_arg(args, "name")?;
                if self.drive_names(s.owner)?.contains(&n) {
                    return Err(format!("Drive already exists: {n}"));
                }
                self.eval(
                    call("mkdrive", vec![location(s.owner, &n, "")]),
                    s.write_rights(),
                )?;
                Ok(json!({"created": true, "name": n}))
            }
            "dlfs_delete_drive" => {
                let n = text_arg(args, "name")?;
                if !self.drive_names(s.owner)?.contains(&n) {
                    return Err(format!("Drive not found: {n}"));
                }
                self.eval(
                    call("rmdrive", vec![location(s.owner, &n, "")]),
                    s.write_rights(),
                )?;
                Ok(json!({"deleted": true}))
            }
            "dlfs_list" => {
                let (drive, path, a) = drive_path(CRUD_READ, false)?;
                let loc = location(a.owner, &drive, &path);
                let names = self.eval(call("ls", vec![loc]), Self::read_rights())?;
                let mut entries = Vec::new();
                for n in elements(&names, r)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .take(LIST_ENTRIES_MAX)
                {
                    let n = text_of(n, r)?;
                    let child = location(a.owner, &drive, &format!("{path}/{n}"));
                    let st = self.eval(call("stat", vec![child]), Self::read_rights())?;
                    let dir = is_kind(&st, "directory", r);
                    let mut e = json!({"name": n, "type": if dir { "directory" } else { "file" }});
                    if !dir {
                        e["size"] =
                            json!(field(&st, "size", r).and_then(|v| v.as_long()).unwrap_or(0));
                    }
                    entries.push(e);
                }
                Ok(json!({"entries": entries}))
            }
            "dlfs_read" => {
                let (drive, path, a) = drive_path(CRUD_READ, true)?;
                let loc = location(a.owner, &drive, &path);
                let st = self.eval(call("stat", vec![loc.clone()]), Self::read_rights())?;
                if !is_kind(&st, "file", r) {
                    return Err(format!("Not a file: {path}"));
                }
                let size = field(&st, "size", r).and_then(|v| v.as_long()).unwrap_or(0);
                if u64::try_from(size).unwrap_or(u64::MAX) > READ_BYTES_MAX {
                    return Err(format!(
                        "File too large for dlfs_read ({size} bytes, at most {READ_BYTES_MAX}): \
                         read it over HTTP (GET /dlfs/{drive}/{path})"
                    ));
                }
                let data = self.eval(call("read-file", vec![loc]), Self::read_rights())?;
                let bytes = blob_bytes(&data, r).map_err(|e| e.to_string())?;
                Ok(match String::from_utf8(bytes) {
                    Ok(t) if !t.contains('\0') => {
                        json!({"content": t, "encoding": "utf-8", "size": size})
                    }
                    Ok(t) => {
                        json!({"content": base64::engine::general_purpose::STANDARD.encode(t), "encoding": "base64", "size": size})
                    }
                    Err(e) => {
                        json!({"content": base64::engine::general_purpose::STANDARD.encode(e.as_bytes()), "encoding": "base64", "size": size})
                    }
                })
            }
            "dlfs_write" => {
                let content = text_arg(args, "content")?;
                let (drive, path, a) = drive_path(CRUD_WRITE, true)?;
                let loc = location(a.owner, &drive, &path);
                let created = self
                    .eval(call("stat", vec![loc.clone()]), Self::read_rights())
                    .is_err();
                self.eval(call("put", vec![loc, Cell::string(&content)]), a.rights)?;
                Ok(json!({"written": content.len(), "created": created}))
            }
            "dlfs_mkdir" => {
                let (drive, path, a) = drive_path(CRUD_WRITE, true)?;
                self.eval(
                    call("mkdir", vec![location(a.owner, &drive, &path)]),
                    a.rights,
                )?;
                Ok(json!({"created": true}))
            }
            "dlfs_delete" => {
                let (drive, path, a) = drive_path(CRUD_DELETE, true)?;
                self.eval(call("rm", vec![location(a.owner, &drive, &path)]), a.rights)?;
                Ok(json!({"deleted": true}))
            }
            "etch_query" => {
                let form = query_form(&text_arg(args, "query")?).map_err(failed)?;
                let v = self.eval(form, Self::read_rights())?;
                shown(&v, r)
            }
            "etch_fetch" => {
                let id = text_arg(args, "id")?;
                let hex_id = id.trim().trim_start_matches("0x");
                let bytes = hex::decode(hex_id)
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| format!("Not a Value ID (64 hex digits): {id}"))?;
                let v = self.eval(call("fetch", vec![Cell::blob(&bytes)]), Self::read_rights())?;
                let mut out = shown(&v, r)?;
                out["id"] = json!(hex_id.to_ascii_lowercase());
                Ok(out)
            }
            "etch_store" => {
                let text = text_arg(args, "value")?;
                let v = read_one(&text).map_err(|e| format!("Syntax error: {e}"))?;
                let quoted = call("store", vec![call("quote", vec![v])]);
                let id = self.eval(quoted, s.write_rights())?;
                let id = id.flat_bytes().map(hex::encode).unwrap_or_default();
                Ok(json!({"id": id}))
            }
            other => Err(format!("Unknown tool: {other}")),
        }
    }
}

/// A value as the tools show it: `printed` (the shell's shortened text), `json` (the value as
/// JSON, when it fits the print limit) and `shortened` (whether the text leaves parts out).
fn shown(v: &Cell, r: &dyn Resolver) -> ToolResult {
    let (printed, cut) =
        print_shortened(v, r, PRINT_BYTES_MAX, Shorten::default()).map_err(|e| e.to_string())?;
    let json_value = print_json(v, r, PRINT_BYTES_MAX)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or(Value::Null);
    Ok(
        json!({"printed": printed, "json": json_value, "shortened": cut.any(),
              "type": v.kind().name()}),
    )
}

/// Convex's result: the structured value and its JSON text.
fn tool_result(r: ToolResult) -> CallToolResult {
    let (value, error) = match r {
        Ok(v) => (v, false),
        Err(m) => (json!({"message": m}), true),
    };
    let text = ContentBlock::text(value.to_string());
    let mut out = if error {
        CallToolResult::error(vec![text])
    } else {
        CallToolResult::success(vec![text])
    };
    out.structured_content = Some(value);
    out
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("etch", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Etch: a content-addressed Convex lattice store. dlfs_* tools manage drives of \
                 files and folders (writes are signed and durable when they return); etch_query \
                 evaluates read-only Convex-Lisp queries; etch_fetch and etch_store read and \
                 write values by Value ID.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tool_list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !tool_list().iter().any(|t| t.name == name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let session = match self.session(&ctx) {
            Ok(s) => s,
            Err(m) => return Ok(tool_result(Err(m)).into()),
        };
        let tools = self.clone();
        let r = tokio::task::spawn_blocking(move || tools.dispatch(&session, &name, &args))
            .await
            .unwrap_or_else(|e| Err(format!("tool failed: {e}")));
        Ok(tool_result(r).into())
    }
}

/// Serves the tools over stdin/stdout until the client closes stdin (`etch mcp`).
pub async fn serve_stdio(tools: Tools) -> std::io::Result<()> {
    use rmcp::ServiceExt;
    let running = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}

/// The streamable-HTTP service of the tools, stateless with JSON answers (each POST is one
/// JSON-RPC exchange; no session to keep). `loopback`: the node listens on a loopback address,
/// so only `localhost`-style Host headers are taken (DNS-rebinding protection).
pub fn http_service(
    tools: Tools,
    loopback: bool,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    Tools,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    if !loopback {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        LocalSessionManager::default().into(),
        config,
    )
}

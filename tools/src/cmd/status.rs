//! `etch status --connect ADDR`: a running node at a glance (like `redis-cli info`): identity and
//! root, the store, pins, commits, each configured peer's session, and request rates measured
//! over an interval — from two STATUS answers (protocol.md §7.2; Etch's figures under
//! `:operator`, the counters under `:metrics`).

use etch_engine::lattice::value_at_path;
use etch_engine::node::iso_time;
use etch_formats::text::json::print_json;
use etch_formats::value::{blob_bytes, elements, for_each_entry};
use etch_formats::{Cell, Kind, NoResolver};
use etch_server::client::BlockingClient;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `etch status`.
#[derive(clap::Args)]
#[command(
    long_about = "Shows a running node (`etch serve`) at a glance: its identity and root, its \
store (cells, bytes on disk), pins and commits, each configured peer (connected or not, when \
the last pull from it completed), and request rates: two STATUS requests --interval apart, the \
counters' differences divided by the time between. Any client may ask (no admin rights needed).\n\n\
--json prints one JSON object instead: the second STATUS answer as Convex writes JSON, plus \
\"rates\" (per second)."
)]
pub struct StatusArgs {
    /// The node's peer-protocol address.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// Seconds between the two STATUS samples the rates come from.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// One JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

fn field(m: &Cell, path: &[&str]) -> Cell {
    let keys: Vec<Cell> = path.iter().filter_map(|k| Cell::keyword(k).ok()).collect();
    value_at_path(m, &keys, &NoResolver).unwrap_or_else(|_| Cell::nil())
}

fn text(c: &Cell) -> String {
    match c.kind() {
        Kind::String => blob_bytes(c, &NoResolver)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        Kind::Blob => format!("0x{}", c.flat_bytes().map(hex::encode).unwrap_or_default()),
        _ if c.is_nil() => "-".into(),
        _ => etch_formats::text::print(c, &NoResolver).unwrap_or_default(),
    }
}

/// The counters under `:metrics`, by name.
fn counters(status: &Cell) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let _ = for_each_entry(&field(status, &["metrics"]), &NoResolver, &mut |k, v| {
        if let (Some(name), Some(v)) = (k.name_bytes(), v.and_then(|v| v.as_long())) {
            out.push((String::from_utf8_lossy(name).into_owned(), v));
        }
        Ok(())
    });
    out.sort();
    out
}

/// Bytes for people.
fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

/// Runs `etch status`.
pub fn run(args: StatusArgs) -> io::Result<ExitCode> {
    let client = match BlockingClient::connect(&args.connect, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("etch: cannot connect to {}: {e}", args.connect);
            return Ok(ExitCode::FAILURE);
        }
    };
    let sample = || client.status().map(|s| (Instant::now(), s));
    let ((t0, first), (t1, second)) = match sample().and_then(|a| {
        std::thread::sleep(Duration::from_secs_f64(args.interval.clamp(0.0, 3600.0)));
        sample().map(|b| (a, b))
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("etch: STATUS from {} failed: {e}", args.connect);
            return Ok(ExitCode::FAILURE);
        }
    };
    let secs = (t1 - t0).as_secs_f64().max(1e-3);
    let before: std::collections::HashMap<String, i64> = counters(&first).into_iter().collect();
    let rates: Vec<(String, f64)> = counters(&second)
        .into_iter()
        .filter(|(n, _)| n != "connections-open" && n != "in-flight")
        .map(|(n, v)| {
            let d = v - before.get(&n).copied().unwrap_or(v);
            (n, d as f64 / secs)
        })
        .collect();
    let mut out = io::stdout().lock();
    if args.json {
        let mut v: serde_json::Value = print_json(&second, &NoResolver, 1 << 20)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        let r: serde_json::Map<String, serde_json::Value> = rates
            .iter()
            .map(|(n, x)| (n.clone(), serde_json::json!(x)))
            .collect();
        v["rates"] = serde_json::Value::Object(r);
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let op = |p: &[&str]| {
        let mut path = vec!["operator"];
        path.extend_from_slice(p);
        field(&second, &path)
    };
    writeln!(out, "# node {}", args.connect)?;
    writeln!(
        out,
        "type       {} {}",
        text(&field(&second, &["type"])),
        text(&field(&second, &["version"]))
    )?;
    writeln!(out, "key        {}", text(&field(&second, &["peer"])))?;
    writeln!(out, "did        {}", text(&op(&["did"])))?;
    writeln!(out, "root       {}", text(&field(&second, &["root"])))?;
    writeln!(
        out,
        "time       {}",
        iso_time(field(&second, &["timestamp"]).as_long().unwrap_or(0))
    )?;
    writeln!(out, "\n# store")?;
    let n = |p: &[&str]| op(p).as_long().unwrap_or(0);
    writeln!(out, "cells      {}", n(&["store", "cells"]))?;
    writeln!(out, "data       {}", bytes(n(&["store", "encoding-bytes"])))?;
    writeln!(out, "on disk    {}", bytes(n(&["store", "file-bytes"])))?;
    writeln!(out, "pins       {}", n(&["pins"]))?;
    writeln!(out, "commits    {}", n(&["commits"]))?;
    let mode = text(&op(&["hold", "mode"]));
    if mode == "pinned" {
        writeln!(
            out,
            "holds      pinned values only (read cache {} of {}, {} fetched from peers)",
            bytes(n(&["hold", "cache-bytes"])),
            bytes(n(&["hold", "cache-budget"])),
            bytes(n(&["hold", "fetched-bytes"]))
        )?;
    } else {
        writeln!(out, "holds      everything it merges")?;
    }
    let limit = |p: &[&str]| op(p).as_long().map_or("none".to_string(), bytes);
    writeln!(
        out,
        "quotas     per key {}, total {}; {} used by {} writer(s)",
        limit(&["quota", "per-key"]),
        limit(&["quota", "total"]),
        bytes(n(&["quota", "used"])),
        n(&["quota", "writers"])
    )?;
    let last = op(&["gc", "last"]);
    let gc = if op(&["gc", "available"]).as_bool() != Some(true) {
        "not available while serving (etch compact on the stopped store)".to_string()
    } else if last.is_nil() {
        "available (etch gc --connect); not run since start".to_string()
    } else {
        format!(
            "last {}: {} -> {}",
            iso_time(field(&last, &["time"]).as_long().unwrap_or(0)),
            bytes(field(&last, &["bytes-before"]).as_long().unwrap_or(0)),
            bytes(field(&last, &["bytes-after"]).as_long().unwrap_or(0))
        )
    };
    writeln!(out, "gc         {gc}")?;
    writeln!(
        out,
        "memory     {} of {} budget in use (queued answers, large frames, acquired cells)",
        bytes(n(&["memory", "used"])),
        bytes(n(&["memory", "budget"]))
    )?;
    writeln!(out, "\n# peers")?;
    let peers = elements(&op(&["peers"]), &NoResolver).unwrap_or_default();
    if peers.is_empty() {
        writeln!(out, "(none configured)")?;
    }
    let now = field(&second, &["timestamp"]).as_long().unwrap_or(0);
    for p in &peers {
        let last = field(p, &["last-pull"]).as_long();
        let ago = last.map_or("never".to_string(), |t| {
            format!("{:.1} s ago", (now - t) as f64 / 1e3)
        });
        let state = if field(p, &["connected"]).as_bool() == Some(true) {
            "connected"
        } else {
            "not connected"
        };
        writeln!(
            out,
            "{}  {state}  last pull {ago}",
            text(&field(p, &["address"]))
        )?;
    }
    writeln!(out, "\n# rates (per second, over {secs:.1} s)")?;
    for (name, r) in rates.iter().filter(|(_, r)| *r > 0.0) {
        writeln!(out, "{name:<22} {r:.1}")?;
    }
    if rates.iter().all(|(_, r)| *r == 0.0) {
        writeln!(out, "(idle)")?;
    }
    writeln!(out, "\n# counters")?;
    for (name, v) in counters(&second) {
        writeln!(out, "{name:<22} {v}")?;
    }
    Ok(ExitCode::SUCCESS)
}

//! The shell over a server (`RemoteBackend`): what it shows equals what a local shell shows,
//! errors keep their codes, and Ctrl-C stops the wait.

use etch_engine::node::LocalNode;
use etch_engine::store::{open_store, OpenOptions, StoreFormat};
use etch_shell::remote::RemoteBackend;
use etch_shell::{Backend, LocalBackend, Outcome, Shell, Timer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn show(shell: &mut Shell, input: &str) -> String {
    match shell.handle(input) {
        Outcome::Show(t) => t,
        Outcome::Quit => panic!("unexpected quit on {input}"),
    }
}

#[test]
fn remote_shell_shows_what_a_local_shell_shows() {
    let dir = tempfile::tempdir().expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let open = |name: &str| {
        let store = open_store(
            &dir.path().join(name),
            &OpenOptions::writable(StoreFormat::Native),
        )
        .expect("store")
        .cell_store();
        let node = Arc::new(LocalNode::open(store.clone(), None).expect("node"));
        (store, node)
    };
    let (_, served) = open("served");
    let server = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        etch_server::Server::start(listener, served, None, etch_server::Config::default())
            .expect("start")
    });
    let addr = server.local_addr().to_string();
    let remote = RemoteBackend::connect(&addr, None).expect("connect");
    assert_eq!(remote.describe(), format!("{addr} (server)"));
    let mut there = Shell::new(Box::new(remote), false);
    there.set_timer(Timer::Off);
    let (store, node) = open("local");
    let mut here = Shell::new(
        Box::new(LocalBackend::new(store, node, "local".into())),
        false,
    );
    here.set_timer(Timer::Off);
    for input in [
        "(+ 1 2)",
        "(store \"abc\")",
        "(fetch (value-id \"abc\"))",
        "[1 2 3] (count [1 2])",
        "(count 1 2)",
        "(+ 1",
        "nope",
        "(str (vec (range 5)))",
        "(get-in (root) [:data])",
        "(value-id (get-in (root) [:data]))",
    ] {
        assert_eq!(show(&mut there, input), show(&mut here, input), "{input}");
    }
    // Ctrl-C while waiting: :CANCELLED, and the connection stays usable.
    let mut remote = RemoteBackend::connect(&addr, None).expect("connect");
    let cancel = AtomicBool::new(true);
    let e = remote.eval("(+ 1 2)", &cancel).expect_err("cancelled");
    assert_eq!(
        (e.code, e.message.as_str()),
        ("CANCELLED", "Query cancelled")
    );
    cancel.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    let v = remote.eval("(+ 2 2)", &cancel).expect("answer");
    assert_eq!(v.as_long(), Some(4));
    drop(remote);
    rt.block_on(server.shutdown(Duration::from_secs(5)));
}

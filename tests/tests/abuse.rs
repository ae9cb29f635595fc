//! TCP abuse against `sipshard serve` with `docs/examples/siprepo.toml` on loopback: the
//! connection limits, thousands of connections opened and dropped (cleanly, mid-message, with a
//! reset), oversized heads and bodies, idle peers. After each case the server's open files and
//! connections are back where they started and it still answers.

use sipshard_tests::{
    examples, metric_sum, open_fds, rand_u64, request, wait_until, Server, TcpClient,
};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn siprepo(args: &[&str]) -> Server {
    Server::start(&examples().join("siprepo.toml"), args)
}

/// Open TCP connections, all shards (the `tcp_connections` gauge).
fn open_conns(srv: &Server) -> u64 {
    metric_sum(&srv.metrics(), "sipshard_tcp_connections")
}

/// Waits until the server holds no connection and no more files than `fds` (its count before
/// the case); fails the test naming what was left.
fn settled(srv: &Server, fds: usize) {
    let ok = wait_until(20, || open_conns(srv) == 0 && open_fds(srv.pid()) <= fds);
    assert!(
        ok,
        "left behind: {} connections, {} open files (started with {fds})",
        open_conns(srv),
        open_fds(srv.pid())
    );
}

/// Sends OPTIONS on a connection the server may already have closed: whether it was answered
/// (the example answers 405).
fn answered(c: &mut TcpClient) -> bool {
    let m = request(
        "OPTIONS",
        &format!("abuse-{:x}", rand_u64()),
        1,
        &c.via(),
        "",
        "",
    );
    if c.s.write_all(&m).is_err() {
        return false;
    }
    match c.recv() {
        Some(r) => {
            assert_eq!(r.code, 405);
            true
        }
        None => false,
    }
}

/// Holds `n` connections open at once and says how many of them the server served.
fn served_of(tcp: SocketAddr, n: usize) -> (usize, Vec<TcpClient>) {
    let mut held: Vec<TcpClient> = (0..n).map(|_| TcpClient::connect(tcp)).collect();
    let served = held.iter_mut().map(answered).filter(|&a| a).count();
    (served, held)
}

#[test]
fn connections_past_the_global_limit_are_closed_at_once_and_counted() {
    let srv = siprepo(&["--shards", "2", "--max-connections", "10"]);
    let tcp = srv.tcp.unwrap();
    let fds = open_fds(srv.pid());
    let (served, held) = served_of(tcp, 30);
    assert_eq!(served, 10, "max_connections = 10 over both shards");
    assert_eq!(
        metric_sum(&srv.metrics(), "sipshard_connections_refused_total"),
        20
    );
    drop(held);
    settled(&srv, fds);
    // The places are given back: new connections are served again.
    let (served, held) = served_of(tcp, 5);
    assert_eq!(served, 5);
    drop(held);
    settled(&srv, fds);
}

#[test]
fn connections_past_the_per_shard_limit_are_closed_at_once_and_counted() {
    let srv = siprepo(&[
        "--shards",
        "1",
        "--max-connections",
        "100",
        "--max-connections-per-shard",
        "3",
    ]);
    let fds = open_fds(srv.pid());
    let (served, held) = served_of(srv.tcp.unwrap(), 8);
    assert_eq!(served, 3);
    assert_eq!(
        metric_sum(&srv.metrics(), "sipshard_connections_refused_total"),
        5
    );
    drop(held);
    settled(&srv, fds);
}

/// Half of a MESSAGE: its head says more is coming.
fn half_message(via: &str) -> Vec<u8> {
    let m = request(
        "MESSAGE",
        &format!("half-{:x}", rand_u64()),
        1,
        via,
        "",
        "a body the peer never finishes",
    );
    m[..m.len() - 10].to_vec()
}

#[test]
fn thousands_of_connections_opened_and_dropped_leave_nothing_behind() {
    let srv = siprepo(&["--shards", "2"]);
    let tcp = srv.tcp.unwrap();
    let fds = open_fds(srv.pid());
    for round in 0..20 {
        let mut batch = Vec::new();
        for i in 0..100 {
            let mut c = TcpClient::connect(tcp);
            match i % 4 {
                // Opened and closed without a byte.
                0 => {}
                // Closed in the middle of a message.
                1 => {
                    let _ = c.s.write_all(&half_message(&c.via()));
                }
                // Reset in the middle of a message.
                2 => {
                    let _ = c.s.write_all(&half_message(&c.via()));
                    let sock = socket2::SockRef::from(&c.s);
                    sock.set_linger(Some(Duration::ZERO)).unwrap();
                }
                // Served, then closed.
                _ => assert!(answered(&mut c), "round {round}: a plain request"),
            }
            batch.push(c);
        }
        drop(batch);
    }
    settled(&srv, fds);
    let mut c = TcpClient::connect(tcp);
    assert!(answered(&mut c));
    drop(c);
    settled(&srv, fds);
}

#[test]
fn oversized_heads_and_bodies_are_answered_513_and_closed() {
    let srv = siprepo(&["--shards", "2", "--tcp-max-body", "4KiB"]);
    let tcp = srv.tcp.unwrap();
    let fds = open_fds(srv.pid());
    // A 41 KB header (tcp_max_head is 32 KiB).
    let mut c = TcpClient::connect(tcp);
    let big = format!("X-Big: {}\r\n", "a".repeat(41_000));
    let m = request("MESSAGE", "big-head", 1, &c.via(), &big, "hi");
    let _ = c.s.write_all(&m);
    assert_eq!(c.recv().expect("an answer before the close").code, 513);
    assert!(c.recv().is_none(), "closed after the 513");
    // A body of 5,000 bytes over a limit of 4 KiB: refused from its Content-Length, before it
    // is read.
    let mut c = TcpClient::connect(tcp);
    let m = request("MESSAGE", "big-body", 1, &c.via(), "", &"b".repeat(5000));
    let _ = c.s.write_all(&m);
    assert_eq!(c.recv().expect("an answer before the close").code, 513);
    assert!(c.recv().is_none(), "closed after the 513");
    // A body under the limit is taken.
    let mut c = TcpClient::connect(tcp);
    c.send("OPTIONS", "small-body", 1, "");
    assert_eq!(c.recv().unwrap().code, 405);
    drop(c);
    settled(&srv, fds);
}

#[test]
fn idle_connections_are_closed() {
    let srv = siprepo(&["--shards", "2", "--tcp-idle-timeout-s", "1"]);
    let tcp = srv.tcp.unwrap();
    let fds = open_fds(srv.pid());
    // Never a byte.
    let mut silent = TcpClient::connect(tcp);
    // One request, then silence.
    let mut quiet = TcpClient::connect(tcp);
    assert!(answered(&mut quiet));
    // Each read waits up to 10 s; the server closes both long before.
    assert!(silent.recv().is_none());
    assert!(quiet.recv().is_none());
    drop((silent, quiet));
    settled(&srv, fds);
    let _ = TcpStream::connect(tcp).unwrap();
}

//! Config loading: defaults, flags over the file, per-core tables, sizes, and every error with
//! its line.

use super::*;
use clap::Parser;
use std::path::Path;

const ROUTES: &str = "\n[route.request]\nrules = [ { actions = [ { drop = true } ] } ]\n";
const EXAMPLE: &str = include_str!("../../../../docs/examples/siprepo.toml");

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    o: Overrides,
}

fn flags(args: &[&str]) -> Overrides {
    let mut v = vec!["sipshard"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).expect("flags parse").o
}

fn load_with(src: &str, o: &Overrides) -> std::result::Result<Loaded, ConfigError> {
    load_str(Path::new("cfg.toml"), src, o)
}

fn cfg(src: &str) -> Config {
    cfg_with(src, &[])
}

fn cfg_with(src: &str, args: &[&str]) -> Config {
    match load_with(&format!("{src}{ROUTES}"), &flags(args)) {
        Ok(l) => l.config,
        Err(e) => panic!("should load: {e}"),
    }
}

/// The error for `src` (routes appended) as text without the file name.
fn err(src: &str) -> String {
    err_with(src, &[])
}

fn err_with(src: &str, args: &[&str]) -> String {
    match load_with(&format!("{src}{ROUTES}"), &flags(args)) {
        Ok(_) => panic!("should fail:\n{src}"),
        Err(e) => {
            let s = e.to_string();
            s.strip_prefix("cfg.toml:").map(str::to_owned).unwrap_or(s)
        }
    }
}

#[test]
fn defaults() {
    let c = cfg("");
    let l: Vec<String> = c.server.listen.iter().map(|l| l.to_string()).collect();
    assert_eq!(l, ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]);
    assert_eq!(
        c.server.shards,
        std::thread::available_parallelism().unwrap().get()
    );
    assert_eq!(c.server.cores, None);
    assert_eq!(c.server.udp_batch, 32);
    assert_eq!(c.server.socket_recv_buffer, None);
    assert_eq!(c.server.spin_before_park_us, None);
    assert_eq!(c.server.io_memory, None);
    assert_eq!(c.server.tcp_idle_timeout_s, 120);
    assert_eq!(c.server.max_connections, None);
    assert_eq!(c.server.max_connections_per_shard, 0);
    assert_eq!(c.server.tcp_max_head, ByteSize(32 * 1024));
    assert_eq!(c.server.tcp_max_body, ByteSize(1 << 20));
    assert_eq!(c.server.max_udp_payload, ByteSize(65_535));
    assert_eq!(
        c.server.task_queue_shares,
        BTreeMap::from([("default".to_owned(), 100)])
    );
    assert!(c.server.core.is_empty());
    assert_eq!(
        c.repo,
        RepoConfig {
            hash_size: 256,
            expire: 180,
            timer_interval: 100,
            timer_procs: 1,
            max_items: 1_000_000,
            max_bytes: ByteSize(512 << 20),
        }
    );
    assert_eq!(c.repo.expire(), Duration::from_secs(180));
    assert_eq!(c.repo.tick(), Duration::from_millis(100));
    assert_eq!(c.control.listen, "127.0.0.1:5080".parse().unwrap());
    assert!(c.control.enabled);
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.gateway.hash_size, 10);
    assert_eq!(c.gateway.cleanup_interval, 60);
    let d = Config::default();
    assert_eq!(d.repo, c.repo);
    assert_eq!(d.server.listen, c.server.listen);
}

const FULL: &str = r#"
[server]
listen = ["udp:0.0.0.0:5060", "tcp:[::1]:5061"]
cores = "0-1,6"
udp_batch = 64
socket_recv_buffer = "4MiB"
socket_send_buffer = 2097152
spin_before_park_us = 50
udp_coalesce_us = 100
io_memory = "16MiB"
task_queue_shares = { default = 100, bulk = 10 }
tcp_idle_timeout_s = 30
tcp_max_head = "16KiB"
tcp_max_body = "256 KiB"
max_udp_payload = 9000

[server.core.6]
udp_batch = 8
udp_coalesce_us = 0
socket_recv_buffer = "8MiB"
task_queue_shares = { bulk = 50 }

[repo]
hash_size = 1024
expire = 240
timer_interval = 5
timer_procs = 1
max_items = 5000
max_bytes = "64MiB"

[control]
listen = "127.0.0.1:9090"
enabled = false

[log]
level = "debug"

[gateway]
hash_size = 12
cleanup_interval = 30
"#;

#[test]
fn file_values() {
    let c = cfg(FULL);
    assert_eq!(c.server.listen[1].to_string(), "tcp:[::1]:5061");
    assert_eq!(c.server.listen[1].transport, Transport::Tcp);
    assert_eq!(c.server.shards, 3);
    assert_eq!(c.server.cores, Some(CoreList(vec![0, 1, 6])));
    assert_eq!(c.server.udp_batch, 64);
    assert_eq!(c.server.socket_recv_buffer, Some(ByteSize(4 << 20)));
    assert_eq!(c.server.socket_send_buffer, Some(ByteSize(2 << 20)));
    assert_eq!(c.server.tcp_max_body, ByteSize(256 << 10));
    assert_eq!(c.server.max_udp_payload, ByteSize(9000));
    assert_eq!(c.repo.expire, 240);
    assert_eq!(c.repo.timer_interval, 5);
    assert_eq!(c.repo.max_bytes, ByteSize(64 << 20));
    assert_eq!(c.control.listen.port(), 9090);
    assert!(!c.control.enabled);
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!((c.gateway.hash_size, c.gateway.cleanup_interval), (12, 30));
    let udp: Vec<_> = c.server.listen_on(Transport::Udp).collect();
    assert_eq!(udp, ["0.0.0.0:5060".parse().unwrap()]);
}

#[test]
fn per_core_tuning() {
    let c = cfg(FULL);
    let t0 = c.server.tuning(0);
    assert_eq!(t0.core, Some(0));
    assert_eq!(t0.udp_batch, 64);
    assert_eq!(t0.socket_recv_buffer, Some(ByteSize(4 << 20)));
    assert_eq!(t0.spin_before_park, Some(Duration::from_micros(50)));
    assert_eq!(t0.udp_coalesce, Duration::from_micros(100));
    assert_eq!(t0.task_queue_shares["bulk"], 10);
    // Shard 2 runs on core 6, which has overrides.
    let t2 = c.server.tuning(2);
    assert_eq!(t2.core, Some(6));
    assert_eq!(t2.udp_batch, 8);
    // A core may turn the window off that [server] sets.
    assert_eq!(t2.udp_coalesce, Duration::ZERO);
    assert_eq!(t2.socket_recv_buffer, Some(ByteSize(8 << 20)));
    assert_eq!(t2.socket_send_buffer, Some(ByteSize(2 << 20)));
    assert_eq!(t2.io_memory, Some(ByteSize(16 << 20)));
    assert_eq!(t2.task_queue_shares["bulk"], 50);
    assert_eq!(t2.task_queue_shares["default"], 100);

    // Unpinned: N is a shard number.
    let c = cfg("[server]\nshards = 2\n[server.core.1]\nspin_before_park_us = 10\n");
    assert_eq!(c.server.tuning(0).spin_before_park, None);
    assert_eq!(c.server.tuning(0).udp_coalesce, Duration::ZERO);
    assert_eq!(c.server.tuning(0).core, None);
    assert_eq!(
        c.server.tuning(1).spin_before_park,
        Some(Duration::from_micros(10))
    );
}

#[test]
fn flags_can_invalidate_file_tables() {
    // --cores replaces the file's cores; the file's [server.core.6] no longer names a core in
    // use and is refused at its line.
    let e = err_with(FULL, &["--cores", "2-3"]);
    assert!(
        e.starts_with("17:14: [server.core.6]: core 6 is not in cores = \"2-3\""),
        "{e}"
    );
}

#[test]
fn flags_override_file_values() {
    let src = FULL.replace("[server.core.6]", "[server.core.1]");
    let c = cfg_with(
        &src,
        &[
            "--listen",
            "udp:127.0.0.1:7000",
            "--cores",
            "1-2",
            "--udp-batch",
            "16",
            "--socket-recv-buffer",
            "1MiB",
            "--task-queue-shares",
            "default=10,bulk=20,rt=900",
            "--repo-expire",
            "60",
            "--repo-timer-interval",
            "250",
            "--repo-max-bytes",
            "1GiB",
            "--control",
            "127.0.0.1:9999",
            "--log-level",
            "warn",
            "--core",
            "1:udp_batch=4",
            "--core",
            "2:socket_send_buffer=64KiB",
            "--core",
            "2:task_queue_shares={ rt = 1 }",
        ],
    );
    assert_eq!(c.server.listen.len(), 1);
    assert_eq!(c.server.shards, 2);
    assert_eq!(c.server.udp_batch, 16);
    assert_eq!(c.server.socket_recv_buffer, Some(ByteSize(1 << 20)));
    assert_eq!(c.server.task_queue_shares.len(), 3);
    assert_eq!(c.repo.expire, 60);
    assert_eq!(c.repo.timer_interval, 250);
    assert_eq!(c.repo.max_bytes, ByteSize(1 << 30));
    assert_eq!(c.repo.hash_size, 1024, "not overridden: from the file");
    assert!(c.control.enabled, "--control enables the endpoint");
    assert_eq!(c.control.listen.port(), 9999);
    assert_eq!(c.log.level, LogLevel::Warn);
    // core 1: file table (udp_batch 8, recv 8MiB) with the flag's udp_batch over it.
    let t = c.server.tuning(0);
    assert_eq!((t.core, t.udp_batch), (Some(1), 4));
    assert_eq!(t.socket_recv_buffer, Some(ByteSize(8 << 20)));
    let t = c.server.tuning(1);
    assert_eq!((t.core, t.udp_batch), (Some(2), 16));
    assert_eq!(t.socket_send_buffer, Some(ByteSize(64 << 10)));
    assert_eq!(t.task_queue_shares["rt"], 1);

    let c = cfg_with(&src, &["--no-control"]);
    assert!(!c.control.enabled);
}

#[test]
fn port_flag_replaces_every_listen_port() {
    let c = cfg_with("", &["--port", "5999"]);
    let l: Vec<String> = c.server.listen.iter().map(|l| l.to_string()).collect();
    assert_eq!(l, ["udp:127.0.0.1:5999", "tcp:127.0.0.1:5999"]);
    let c = cfg_with(FULL, &["--port", "0"]);
    assert!(c.server.listen.iter().all(|l| l.addr.port() == 0));
}

#[test]
fn byte_sizes() {
    for (s, n) in [
        ("0", 0),
        ("4096", 4096),
        ("4MiB", 4 << 20),
        ("4 mib", 4 << 20),
        ("512KiB", 512 << 10),
        ("1GiB", 1 << 30),
        ("2TiB", 2 << 40),
        ("10MB", 10_000_000),
        ("3kb", 3000),
        ("1_000", 1000),
        ("7B", 7),
    ] {
        assert_eq!(s.parse::<ByteSize>(), Ok(ByteSize(n)), "{s}");
    }
    for s in ["", "MiB", "4XiB", "-1", "1.5MiB", "99999999999TiB"] {
        assert!(s.parse::<ByteSize>().is_err(), "{s}");
    }
    assert_eq!(ByteSize(4 << 20).to_string(), "4MiB");
    assert_eq!(ByteSize(1536).to_string(), "1536");
    assert_eq!(ByteSize(3 << 10).to_string(), "3KiB");
}

#[test]
fn core_lists() {
    assert_eq!("0-3,6".parse::<CoreList>().unwrap().0, [0, 1, 2, 3, 6]);
    assert_eq!("5".parse::<CoreList>().unwrap().0, [5]);
    assert_eq!(CoreList(vec![0, 1, 2, 3, 6, 8, 9]).to_string(), "0-3,6,8-9");
    for bad in ["", "3-1", "1,1", "a", "0-", "5000"] {
        assert!(bad.parse::<CoreList>().is_err(), "{bad}");
    }
}

#[test]
fn seed_timer_procs_is_accepted_with_a_warning() {
    let l = load_with(
        &format!("[repo]\ntimer_procs = 4\n{ROUTES}"),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(l.config.repo.timer_procs, 4);
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0].starts_with("cfg.toml:2:15: timer_procs = 4 has no effect"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn errors_name_the_line() {
    let cases: &[(&str, &str)] = &[
        // syntax
        ("[server\nshards = 1\n", "1:8: "),
        ("[server]\nshards = \n", "2:10: "),
        ("[server]\nshards = 1\nshards = 2\n", "3:1: duplicate key"),
        // unknown keys and sections
        ("[server]\nshard = 2\n", "2:1: unknown field `shard`"),
        ("[servre]\n", "1:2: unknown field `servre`"),
        ("[repo]\nexpires = 10\n", "2:1: unknown field `expires`"),
        (
            "[server.core.1]\nudp_bach = 1\n",
            "2:1: unknown field `udp_bach`",
        ),
        // types
        (
            "[repo]\nexpire = \"3m\"\n",
            "2:10: invalid type: string \"3m\", expected i64",
        ),
        (
            "[server]\nlisten = \"udp:1.2.3.4:5\"\n",
            "2:10: invalid type: string",
        ),
        // values
        (
            "[server]\nlisten = [\"udp:1.2.3.4\"]\n",
            "2:11: `udp:1.2.3.4`: `1.2.3.4` is not IP:PORT",
        ),
        (
            "[server]\nlisten = [\"sctp:1.2.3.4:5\"]\n",
            "2:11: unknown transport `sctp`",
        ),
        ("[server]\nlisten = []\n", "2:10: `listen` is empty"),
        (
            "[server]\nlisten = [\"udp:1.2.3.4:5\", \"udp:1.2.3.4:5\"]\n",
            "2:10: `listen` names udp:1.2.3.4:5 twice",
        ),
        (
            "[server]\nshards = 0\n",
            "2:10: `shards` must be 1..=1024 (got 0)",
        ),
        (
            "[server]\ncores = \"3-1\"\n",
            "2:9: `3-1`: range `3-1` runs backwards",
        ),
        (
            "[server]\ncores = \"0-3\"\nshards = 2\n",
            "3:10: `shards` is 2 but cores \"0-3\" names 4 cores",
        ),
        (
            "[server]\nudp_batch = 0\n",
            "2:13: `udp_batch` must be 1..=1024 (got 0)",
        ),
        (
            "[server]\nsocket_recv_buffer = \"4XiB\"\n",
            "2:22: `4XiB` is not a size",
        ),
        (
            "[server]\nsocket_recv_buffer = 10\n",
            "2:22: `socket_recv_buffer` must be 1KiB..=",
        ),
        (
            "[server]\nio_memory = -5\n",
            "2:13: a size cannot be negative (-5)",
        ),
        (
            "[server]\nmax_udp_payload = \"1MiB\"\n",
            "2:19: `max_udp_payload` must be 512..=65535 bytes",
        ),
        (
            "[server]\ntask_queue_shares = { bulk = 0 }\n",
            "2:30: `task_queue_shares` must be 1..=1000 (got 0)",
        ),
        (
            "[server]\ntask_queue_shares = { \"a b\" = 1 }\n",
            "2:23: async group name `a b`",
        ),
        (
            "[server]\nshards = 2\n[server.core.2]\nudp_batch = 1\n",
            "3:14: [server.core.2]: there is no shard 2 (shards = 2)",
        ),
        (
            "[server]\ncores = \"0-1\"\n[server.core.5]\nudp_batch = 1\n",
            "3:14: [server.core.5]: core 5 is not in cores = \"0-1\"",
        ),
        (
            "[server.core.x]\nudp_batch = 1\n",
            "1:14: [server.core.x]: the key must be a core number",
        ),
        (
            "[server]\nshards = 1\n[server.core.0]\nudp_batch = 5000\n",
            "4:13: `udp_batch` must be 1..=1024 (got 5000)",
        ),
        (
            "[server]\nshards = 1\n[server.core.0]\ntask_queue_shares = { rt = 5 }\n",
            "4:23: unknown async group `rt`",
        ),
        (
            "[repo]\nexpire = 0\n",
            "2:10: `expire` must be 1..=31536000 s (got 0)",
        ),
        (
            "[repo]\ntimer_interval = 0\n",
            "2:18: `timer_interval` must be 1..=60000 ms (got 0)",
        ),
        ("[repo]\nmax_bytes = 0\n", "2:13: `max_bytes` must be 1..="),
        (
            "[control]\nlisten = \"localhost\"\n",
            "2:10: invalid socket address syntax",
        ),
        ("[log]\nlevel = \"loud\"\n", "2:9: unknown log level `loud`"),
        (
            "[gateway]\nhash_size = 40\n",
            "2:13: `hash_size` must be 1..=24 (log2 of the table size) (got 40)",
        ),
    ];
    let mut bad = Vec::new();
    for (src, want) in cases {
        let e = err(src);
        if !e.starts_with(want) {
            bad.push(format!("{src:?}\n  got  {e}\n  want {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn flag_errors_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--shards", "0"], "--shards: must be 1..=1024 (got 0)"),
        (
            &["--udp-batch", "2000"],
            "--udp-batch: must be 1..=1024 (got 2000)",
        ),
        (
            &["--repo-expire", "0"],
            "--repo-expire: must be 1..=31536000 s (got 0)",
        ),
        (
            &["--cores", "0-3", "--shards", "3"],
            "--shards: is 3 but cores \"0-3\" names 4 cores",
        ),
        (
            &["--shards", "2", "--core", "4:udp_batch=1"],
            "--core 4:udp_batch=1: [server.core.4]: there is no shard 4",
        ),
        (
            &["--core", "0:udp_batch=0", "--shards", "1"],
            "--core 0:udp_batch=0: must be 1..=1024 (got 0)",
        ),
        (
            &["--udp-coalesce-us", "20000"],
            "--udp-coalesce-us: must be 0..=10000 µs (got 20000)",
        ),
        (
            &["--shards", "1", "--core", "0:udp_coalesce_us=-1"],
            "--core 0:udp_coalesce_us=-1: must be 0..=10000 µs (got -1)",
        ),
        (
            &["--task-queue-shares", "bulk=0"],
            "--task-queue-shares: must be 1..=1000 (got 0)",
        ),
        (
            &["--socket-recv-buffer", "12"],
            "--socket-recv-buffer: must be 1KiB..=",
        ),
        (
            &["--listen", "udp:1.2.3.4:5", "--listen", "udp:1.2.3.4:5"],
            "--listen: names udp:1.2.3.4:5 twice",
        ),
        (
            &[
                "--listen",
                "udp:1.2.3.4:5",
                "--listen",
                "udp:1.2.3.4:6",
                "--port",
                "7",
            ],
            "--port 7: names udp:1.2.3.4:7 twice",
        ),
    ];
    let mut bad = Vec::new();
    for (args, want) in cases {
        let e = err_with("", args);
        if !e.starts_with(want) {
            bad.push(format!("{args:?}\n  got  {e}\n  want {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn bad_flag_values_are_refused_by_clap() {
    for args in [
        &["--listen", "udp:nowhere"][..],
        &["--cores", "3-1"],
        &["--socket-recv-buffer", "4XiB"],
        &["--core", "1:bogus=2"],
        &["--core", "1:udp_batch=x"],
        &["--core", "udp_batch=1"],
        &["--task-queue-shares", "bulk"],
        &["--log-level", "loud"],
        &["--control", "127.0.0.1:9999", "--no-control"],
    ] {
        let mut v = vec!["sipshard"];
        v.extend_from_slice(args);
        assert!(Cli::try_parse_from(v).is_err(), "{args:?}");
    }
    let f = flags(&["--core", "1:socket_recv_buffer=4MiB"]);
    assert_eq!(f.core[0].core, 1);
}

#[test]
fn missing_file_is_a_read_error() {
    let e = load(
        Path::new("/nonexistent/sipshard.toml"),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/sipshard.toml: cannot read"));
}

#[test]
fn error_location_is_exposed() {
    let e = load_with("[server]\nshards = 0\n", &Overrides::default()).unwrap_err();
    assert_eq!(e.location(), Some((2, 10)));
}

#[test]
fn example_file_loads() {
    let l = load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/siprepo.toml"),
        &flags(&["--port", "5999", "--repo-expire", "30"]),
    )
    .unwrap();
    assert_eq!(l.config.repo.expire, 30);
    assert!(l.config.server.listen.iter().all(|a| a.addr.port() == 5999));
    assert_eq!(l.config.server.listen.len(), 2);
    assert_eq!(l.config.control.listen, "127.0.0.1:5080".parse().unwrap());
}

#[test]
fn print_config_round_trips() {
    for src in [EXAMPLE.to_owned(), format!("{FULL}{ROUTES}")] {
        let a = load_with(&src, &flags(&["--repo-expire", "99"])).unwrap();
        let text = a.config.to_toml_string();
        let b = match load_with(&text, &Overrides::default()) {
            Ok(b) => b,
            Err(e) => panic!("printed config does not load: {e}\n{text}"),
        };
        assert_eq!(a.config, b.config, "{text}");
        assert_eq!(b.config.repo.expire, 99);
        let na: Vec<&str> = a.program.route_names().collect();
        let nb: Vec<&str> = b.program.route_names().collect();
        assert_eq!(na, nb);
        assert_eq!(format!("{:?}", a.program), format!("{:?}", b.program));
        // Printing is stable.
        assert_eq!(text, b.config.to_toml_string());
    }
}

#[test]
fn listen_addresses_are_bounded() {
    let many: Vec<String> = (0..65)
        .map(|p| format!("\"udp:127.0.0.1:{}\"", 5000 + p))
        .collect();
    let text = format!("[server]\nlisten = [{}]\n", many.join(", "));
    let e = load_with(&text, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2:10: `listen` names 65 addresses; at most 64"),
        "{e}"
    );
    let ok: Vec<String> = (0..64)
        .map(|p| format!("\"udp:127.0.0.1:{}\"", 5000 + p))
        .collect();
    let text = format!("[server]\nlisten = [{}]\n{ROUTES}", ok.join(", "));
    assert_eq!(
        load_with(&text, &Overrides::default())
            .unwrap()
            .config
            .server
            .listen
            .len(),
        64
    );
}

#[test]
fn a_control_endpoint_off_loopback_needs_a_token() {
    let e = err("[control]\nlisten = \"192.0.2.7:5080\"\n");
    assert!(e.starts_with("2:"), "{e}");
    assert!(
        e.contains("not a loopback address") && e.contains("token_file"),
        "{e}"
    );
    let e = err_with("", &["--control", "[2001:db8::1]:5080"]);
    assert!(e.contains("--control"), "{e}");
    // A token, from the flag (or its environment variable), lets it start.
    let c = cfg_with(
        "",
        &["--control", "192.0.2.7:5080", "--control-token", "t0k"],
    );
    assert_eq!(c.control.token.as_deref(), Some("t0k"));
    // Loopback, or the endpoint off, needs none.
    assert_eq!(
        cfg("[control]\nlisten = \"[::1]:5080\"\n").control.token,
        None
    );
    cfg("[control]\nlisten = \"192.0.2.7:5080\"\nenabled = false\n");
}

#[test]
fn the_control_token_file_is_read_and_never_printed() {
    let dir = std::env::temp_dir().join(format!("sipshard-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "  abc123\n").unwrap();
    let src = format!("[control]\ntoken_file = \"{}\"\n", file.display());
    let c = cfg(&src);
    assert_eq!(c.control.token.as_deref(), Some("abc123"));
    let printed = c.to_toml_string();
    assert!(
        printed.contains("token_file") && !printed.contains("abc123"),
        "{printed}"
    );
    std::fs::write(&file, "\n").unwrap();
    assert!(err(&src).contains("holds an empty token"));
    std::fs::remove_file(&file).unwrap();
    let e = err(&src);
    assert!(e.starts_with("2:") && e.contains("cannot be read"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Protocol fuzzing (issue 9, part 4): a seeded random test that opens raw
//! TCP connections to a real `crmdb serve` child and sends random bytes,
//! mutated startup packets (lengths, protocol versions, SSLRequest /
//! GSSENCRequest / CancelRequest variants), mutated password messages during
//! SCRAM, and, after a valid login, mutated Parse / Bind / Describe / Execute
//! / Query / Close / COPY messages (wrong or huge lengths, truncated bodies,
//! unknown type bytes). Every read has a timeout, so nothing here can hang.
//!
//! After each batch a normal psql query must succeed on both servers, the
//! servers must be alive, their RSS must not have grown by a declared
//! length, and at the end neither may have printed a panic.
//!
//! Knobs: `CRMDB_PROTO_FUZZ_ITERS` (default 400), `CRMDB_PROTO_FUZZ_SEED`
//! (default 9), `CRMDB_PROTO_FUZZ_BATCH` (iterations between checks, 50).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::server::{PASSWORD, psql_at};
use super::soak::{ChildServer, config_toml, env_u64, rss_kib};

/// How long a connection's reads wait for the server before the fuzzer
/// moves on (the server may rightly wait for the rest of a declared length).
const READ_TIMEOUT: Duration = Duration::from_millis(150);

const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A startup-phase packet: length, then `code`, then `body`.
fn packet(code: i32, body: &[u8]) -> Vec<u8> {
    let mut p = ((8 + body.len()) as i32).to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn startup(user: &str) -> Vec<u8> {
    startup_to(user, "crm")
}

/// A protocol 3.0 startup packet for `user` and `database`.
pub fn startup_to(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in [
        ("user", user),
        ("database", database),
        ("client_encoding", "UTF8"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    packet(PROTOCOL_3_0, &body)
}

/// A regular message: type byte, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstr(sql))
}

pub fn parse(name: &str, sql: &str, types: &[i32]) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&(types.len() as i16).to_be_bytes());
    for t in types {
        b.extend_from_slice(&t.to_be_bytes());
    }
    message(b'P', &b)
}

pub fn bind(portal: &str, stmt: &str, params: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(stmt));
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    b.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &b)
}

fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    b.extend(cstr(name));
    message(b'D', &b)
}

pub fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&max_rows.to_be_bytes());
    message(b'E', &b)
}

pub fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// Lengths that break framing: too small, negative, huge, off by a few.
fn evil_length(rng: &mut ChaCha8Rng, real: usize) -> i32 {
    match rng.random_range(0..8) {
        0 => rng.random_range(0..4),
        1 => -rng.random_range(1..=i32::MAX),
        2 => i32::MAX,
        3 => 0x3fff_fff0,
        4 => rng.random_range(10_001..100_000_000),
        5 => real as i32 + rng.random_range(1..64),
        6 => (real as i32 - rng.random_range(1..8)).max(0),
        _ => rng.random(),
    }
}

/// `m` with its length field (at `at`) replaced, truncated, extended or with
/// bytes flipped.
fn mutate(rng: &mut ChaCha8Rng, mut m: Vec<u8>, at: usize) -> Vec<u8> {
    match rng.random_range(0..5) {
        0 if m.len() >= at + 4 => {
            let len = evil_length(rng, m.len() - at);
            m[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        1 => {
            let keep = rng.random_range(0..=m.len());
            m.truncate(keep);
        }
        2 => {
            let n = rng.random_range(1..256);
            let mut extra = vec![0u8; n];
            rng.fill_bytes(&mut extra);
            m.extend(extra);
        }
        3 if !m.is_empty() => {
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..m.len());
                m[i] = rng.random();
            }
        }
        _ => {
            // a body byte cut out: every later field shifts
            if m.len() > at + 5 {
                let i = rng.random_range(at + 4..m.len());
                m.remove(i);
            }
        }
    }
    m
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.random_range(0..=max)];
    rng.fill_bytes(&mut v);
    v
}

/// Send `bytes` and read what comes back until EOF, an error or the read
/// timeout. Returns the bytes read and whether the server closed.
fn exchange(stream: &mut TcpStream, bytes: &[u8]) -> (Vec<u8>, bool) {
    if stream.write_all(bytes).is_err() {
        return (Vec::new(), true);
    }
    drain(stream)
}

fn drain(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let started = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                // a server streaming rows forever would keep us here
                if started.elapsed() > Duration::from_secs(5) {
                    return (got, false);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false);
            }
            Err(_) => return (got, true),
        }
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Log in to the trust server as `user`; true once ReadyForQuery arrived.
fn login(stream: &mut TcpStream, user: &str) -> bool {
    let (mut got, _) = exchange(stream, &startup(user));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_ready_for_query(&got) && Instant::now() < deadline {
        let (more, closed) = drain(stream);
        got.extend(more);
        if closed {
            break;
        }
    }
    has_ready_for_query(&got)
}

/// Whether the backend messages in `got` include ReadyForQuery ('Z').
fn has_ready_for_query(got: &[u8]) -> bool {
    let mut i = 0;
    while i + 5 <= got.len() {
        let tag = got[i];
        let len = i32::from_be_bytes([got[i + 1], got[i + 2], got[i + 3], got[i + 4]]) as usize;
        if tag == b'Z' {
            return true;
        }
        i += 1 + len.max(4);
    }
    false
}

/// One valid frontend message of the extended or simple protocol, or COPY.
fn valid_message(rng: &mut ChaCha8Rng) -> (Vec<u8>, usize) {
    let m = match rng.random_range(0..10) {
        0 => query("SELECT 1"),
        1 => query("SELECT count(*) FROM orders; SELECT $1"),
        2 => parse("", "SELECT $1::bigint + 1", &[20]),
        3 => parse("s1", "SELECT * FROM customers WHERE customer_id = $1", &[]),
        4 => bind("", "", &[Some(b"41")]),
        5 => bind("p", "s1", &[None, Some(b"x")]),
        6 => describe(if rng.random() { b'S' } else { b'P' }, ""),
        7 => execute("", rng.random_range(-1..3)),
        8 => query("COPY orders FROM STDIN WITH (FORMAT csv)"),
        _ => match rng.random_range(0..6) {
            0 => message(b'd', b"1,2,2026-01-01T00:00:00Z,web,s,1.00,,,completed\n"),
            1 => message(b'c', &[]),
            2 => message(b'f', &cstr("client gave up")),
            3 => message(b'C', &[b'S', b's', b'1', 0]),
            4 => message(b'H', &[]),
            _ => {
                // a message type no frontend sends
                let tag = loop {
                    let t: u8 = rng.random();
                    if !b"QPBDECSHdcfXpF".contains(&t) {
                        break t;
                    }
                };
                message(tag, &random_bytes(rng, 32))
            }
        },
    };
    (m, 1)
}

/// One fuzz case against the servers: `scram` (SCRAM logins) and `trust`.
fn one_case(rng: &mut ChaCha8Rng, scram: SocketAddr, trust: SocketAddr) -> &'static str {
    match rng.random_range(0..9) {
        0 => {
            let mut s = connect(if rng.random() { scram } else { trust });
            let b = random_bytes(rng, 512);
            exchange(&mut s, &b);
            "random bytes"
        }
        1 => {
            let mut s = connect(scram);
            let m = mutate(rng, startup("analyst"), 0);
            exchange(&mut s, &m);
            "mutated startup"
        }
        2 => {
            // unknown or odd protocol versions, with a valid body
            let version = match rng.random_range(0..5) {
                0 => 0x0002_0000,
                1 => 0x0003_0001,
                2 => 0x0003_0002,
                3 => 0x0004_0000,
                _ => rng.random(),
            };
            let mut p = startup("analyst");
            p[4..8].copy_from_slice(&i32::to_be_bytes(version));
            let mut s = connect(scram);
            exchange(&mut s, &p);
            "protocol version"
        }
        3 => {
            // SSLRequest / GSSENCRequest (repeated, mutated), then anything
            let mut s = connect(scram);
            let mut bytes = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let code = if rng.random() {
                    SSL_REQUEST
                } else {
                    GSSENC_REQUEST
                };
                let p = packet(code, &[]);
                bytes.extend(if rng.random_bool(0.5) {
                    mutate(rng, p, 0)
                } else {
                    p
                });
            }
            bytes.extend(match rng.random_range(0..3) {
                0 => startup("analyst"),
                1 => random_bytes(rng, 64),
                _ => vec![0x16, 0x03, 0x01, 0x00, 0x10],
            });
            exchange(&mut s, &bytes);
            "ssl/gss request"
        }
        4 => {
            // CancelRequest with random ids, wrong lengths, extra bytes
            let mut body = Vec::new();
            body.extend_from_slice(&rng.random::<i32>().to_be_bytes());
            body.extend(random_bytes(rng, 300));
            let p = packet(CANCEL_REQUEST, &body);
            let p = if rng.random_bool(0.6) {
                mutate(rng, p, 0)
            } else {
                p
            };
            let mut s = connect(if rng.random() { scram } else { trust });
            exchange(&mut s, &p);
            "cancel request"
        }
        5 => {
            // a startup, then mutated password / SASL messages
            let mut s = connect(scram);
            exchange(&mut s, &startup("analyst"));
            let body = match rng.random_range(0..3) {
                0 => {
                    let mut b = cstr("SCRAM-SHA-256");
                    let first = b"n,,n=,r=abcdefghijklmnop";
                    b.extend_from_slice(&(first.len() as i32).to_be_bytes());
                    b.extend_from_slice(first);
                    b
                }
                1 => cstr("SCRAM-SHA-256"),
                _ => random_bytes(rng, 128),
            };
            let m = mutate(rng, message(b'p', &body), 1);
            exchange(&mut s, &m);
            "password message"
        }
        _ => {
            // after a valid login: a run of valid and mutated messages
            let mut s = connect(trust);
            let user = ["admin", "analyst", "viewer"][rng.random_range(0..3)];
            if !login(&mut s, user) {
                return "login failed";
            }
            let mut bytes = Vec::new();
            for _ in 0..rng.random_range(1..8) {
                let (m, at) = valid_message(rng);
                bytes.extend(if rng.random_bool(0.5) {
                    mutate(rng, m, at)
                } else {
                    m
                });
                if rng.random_bool(0.3) {
                    bytes.extend(sync());
                }
            }
            exchange(&mut s, &bytes);
            "after login"
        }
    }
}

fn store(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let init = Command::new(env!("CARGO_BIN_EXE_crmdb"))
        .arg("--data")
        .arg(&data)
        .arg("init")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    data
}

fn trust_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("trust.toml");
    let toml = config_toml().replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nauth = \"trust\"",
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn scram_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("scram.toml");
    std::fs::write(&path, config_toml()).unwrap();
    path
}

/// Both servers answer psql and are alive.
fn assert_healthy(servers: &mut [&mut ChildServer], after: &str) {
    for s in servers.iter_mut() {
        s.assert_alive();
        let r = psql_at(s.addr, "analyst", PASSWORD, &["-c", "SELECT 41 + 1"]);
        assert!(
            r.ok && r.stdout.trim() == "42",
            "after {after}: psql failed: {}\nserver stderr:\n{}",
            r.stderr,
            s.stderr_text()
        );
    }
}

#[test]
fn random_and_mutated_protocol_messages_never_crash_or_hang_the_server() {
    let iterations = env_u64("CRMDB_PROTO_FUZZ_ITERS", 400);
    let seed = env_u64("CRMDB_PROTO_FUZZ_SEED", 9);
    let batch = env_u64("CRMDB_PROTO_FUZZ_BATCH", 50).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let data = store(tmp.path());
    let mut scram = ChildServer::start(&data, &scram_config(tmp.path()));
    let trust_data = store(&tmp.path().join("trust"));
    let mut trust = ChildServer::start(&trust_data, &trust_config(tmp.path()));
    let idle = rss_kib(scram.pid())
        .unwrap_or(0)
        .max(rss_kib(trust.pid()).unwrap_or(0))
        / 1024;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    let started = Instant::now();
    for i in 1..=iterations {
        *kinds
            .entry(one_case(&mut rng, scram.addr, trust.addr))
            .or_default() += 1;
        if i % batch == 0 || i == iterations {
            assert_healthy(
                &mut [&mut scram, &mut trust],
                &format!("iteration {i} (seed {seed})"),
            );
            for s in [&scram, &trust] {
                let mib = rss_kib(s.pid()).unwrap_or(0) / 1024;
                assert!(
                    mib < idle + 512,
                    "RSS grew from {idle} to {mib} MiB by iteration {i}"
                );
            }
        }
    }
    let peak = [&scram, &trust]
        .iter()
        .map(|s| rss_kib(s.pid()).unwrap_or(0) / 1024)
        .max()
        .unwrap_or(0);
    println!(
        "protocol fuzz: {iterations} iterations (seed {seed}) in {:.1} s, cases {kinds:?}, RSS {idle} -> {peak} MiB",
        started.elapsed().as_secs_f64()
    );
    for s in [&scram, &trust] {
        let log = s.stderr_text();
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }
}

#[test]
fn a_declared_huge_length_allocates_nothing_and_bad_frames_close_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let data = store(tmp.path());
    let mut trust = ChildServer::start(&data, &trust_config(tmp.path()));
    let before = rss_kib(trust.pid()).unwrap() / 1024;
    // ten logged-in connections each announce a 1 GiB Query and send 1 KiB
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = connect(trust.addr);
        assert!(login(&mut s, "analyst"));
        let mut m = vec![b'Q'];
        m.extend_from_slice(&0x3fff_fff0i32.to_be_bytes());
        m.extend(vec![b'x'; 1024]);
        s.write_all(&m).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(trust.pid()).unwrap() / 1024;
    assert!(
        after < before + 64,
        "RSS {before} -> {after} MiB for ten declared 1 GiB messages"
    );
    drop(held);
    // malformed messages after login end the connection with FATAL 08P01
    // naming what is wrong, as PostgreSQL does (and pgwire never decodes
    // them: src/server/wire.rs)
    let mut bind = b"\0\0".to_vec();
    bind.extend_from_slice(&0u16.to_be_bytes());
    bind.extend_from_slice(&1u16.to_be_bytes());
    bind.extend_from_slice(&564i32.to_be_bytes());
    bind.extend_from_slice(b"17 bytes of value");
    for (bytes, expected) in [
        (message(b'z', b"hello"), "invalid frontend message type 'z'"),
        // a length field below 4 (it counts itself)
        (
            vec![b'Q', 0, 0, 0, 2, b'x', 0],
            "invalid length of Query message: 2 (must be 4 to 1073741822)",
        ),
        (
            message(b'B', &bind),
            "invalid Bind message: parameter 1 needs 564 bytes at offset 10 but 17 remain",
        ),
        (
            message(b'E', b"\0\0"),
            "invalid Execute message: row limit needs 4 bytes at offset 1 but 1 remain",
        ),
    ] {
        let mut s = connect(trust.addr);
        assert!(login(&mut s, "analyst"));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (got, closed) = exchange(&mut s, &bytes);
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.first() == Some(&b'E') && text.contains("SFATAL") && text.contains("C08P01"),
            "{expected}: {text:?}"
        );
        assert!(text.contains(&format!("M{expected}\0")), "{text:?}");
        assert!(closed, "the connection stayed open after: {expected}");
    }
    // a startup packet claiming more than the startup limit
    let mut s = connect(trust.addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut p = startup("analyst");
    p[0..4].copy_from_slice(&1_000_000i32.to_be_bytes());
    let (_, closed) = exchange(&mut s, &p);
    assert!(
        closed,
        "an oversized startup packet left the connection open"
    );
    assert_healthy(&mut [&mut trust], "the bad frames");
    let log = trust.stderr_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

//! Shared pieces of the interoperability tests: a seeded generator of bodies,
//! ids and secrets, the current time, and a runner for independent signers
//! written in other languages.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seed used unless `WEBHOOK_GUARD_TEST_SEED` says otherwise; printed so a
/// failing run can be repeated.
pub const DEFAULT_SEED: u64 = 0x5EED_CAFE_F00D_0001;

/// A small deterministic generator (SplitMix64): the same seed gives the same
/// bodies on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("WEBHOOK_GUARD_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SEED);
        eprintln!("{test}: seed {seed} (set WEBHOOK_GUARD_TEST_SEED to repeat another)");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// A length that is usually small, sometimes empty, sometimes large.
    pub fn body_len(&mut self) -> usize {
        match self.below(20) {
            0 => 0,
            1 => 16 * 1024 + self.below(48 * 1024),
            2..=5 => 1 + self.below(8),
            _ => 1 + self.below(2048),
        }
    }

    /// Random text: ASCII, JSON punctuation, control characters, and 2-, 3-
    /// and 4-byte UTF-8 characters.
    pub fn utf8_body(&mut self) -> String {
        const PIECES: &[&str] = &[
            "{", "}", "\"", ":", ",", "[", "]", "\\", ".", " ", "\n", "\r\n", "\t", "\0", "é", "ß",
            "中", "文", "€", "😀", "🦀", "\u{feff}", "\u{202e}", "null", "true", "1e9",
        ];
        let len = self.body_len();
        let mut s = String::with_capacity(len);
        while s.len() < len {
            if self.below(3) == 0 {
                s.push_str(PIECES[self.below(PIECES.len())]);
            } else {
                s.push(char::from(0x20 + self.below(0x5f) as u8));
            }
        }
        s
    }

    /// Random bytes that are guaranteed not to be UTF-8.
    pub fn non_utf8_body(&mut self) -> Vec<u8> {
        let len = self.body_len();
        let mut body = self.bytes(len);
        let at = self.below(body.len() + 1);
        // 0xFF never occurs in UTF-8.
        body.insert(at, 0xFF);
        assert!(std::str::from_utf8(&body).is_err());
        body
    }

    /// An id as providers make them: a prefix and 1 to 40 URL-safe characters.
    pub fn id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let len = 1 + self.below(40);
        let tail: String = (0..len)
            .map(|_| char::from(ALPHABET[self.below(ALPHABET.len())]))
            .collect();
        format!("msg_{tail}")
    }

    /// Secret key bytes of 16 to 64 bytes.
    pub fn key(&mut self) -> Vec<u8> {
        let len = 16 + self.below(49);
        self.bytes(len)
    }

    /// A printable secret string of 16 to 64 characters, as GitHub, Stripe,
    /// Slack and Shopify hand out.
    pub fn secret_string(&mut self) -> String {
        let len = 16 + self.below(49);
        (0..len)
            .map(|_| char::from(0x21 + self.below(0x5e) as u8))
            .collect()
    }
}

/// Now, in unix seconds, from the system clock (the official libraries check
/// timestamps against it).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Runs `program args..` with `stdin` and returns its standard output;
/// panics with its standard error when it fails.
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{program}`: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        input.write_all(&stdin).expect("write stdin");
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    assert!(
        out.status.success(),
        "`{program}` failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs a python3 script (standard library only) with `stdin`.
pub fn python(script: &str, stdin: &[u8]) -> String {
    run("python3", &["-c", script], stdin)
}

/// Whether `python3 -c "import <module>"` works on this machine.
pub fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `node` runs on this machine.
pub fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

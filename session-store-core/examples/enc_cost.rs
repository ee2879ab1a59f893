//! The per-operation cost of the [`Encrypted`] wrapper, for instruction
//! counting: the `backend_load` / `backend_save` benchmark loop (memory store,
//! plain or encrypted) and the raw AES-256-GCM baseline, without criterion.
//!
//! ```sh
//! cargo build --release -p session-store-core --example enc_cost
//! # enc_cost MODE BYTES COUNT, MODE one of load, save, load-enc, save-enc,
//! # load-box, save-box, raw. Instructions per iteration: run two counts and
//! # divide the difference (setup cancels out).
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/enc_cost save-enc 200 500
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/enc_cost save-enc 200 1500
//! ```
//!
//! The wrapper's cost ratio of issue 5 is
//! `((load-enc - load) + (save-enc - save)) / raw`.
//!
//! `load-box`/`save-box` wrap the store in two forwarding layers (`Box<Box<_>>`),
//! the cost of a wrapper that does nothing. Without valgrind it prints the
//! mean wall time per iteration.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use session_store_core::{
    Encrypted, EncryptionKey, Keyring, MemoryStore, SessionBackend, SessionRecord, SessionToken,
    Timestamp,
};

/// The memory store never suspends: poll once.
fn now_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the memory store never suspends"),
    }
}

/// The benchmark's payload generator (benches/src/fixture.rs).
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The benchmark's record (benches/src/populate.rs): anonymous, no metadata.
fn record(now: Timestamp, data: Vec<u8>) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: None,
        created_at: now,
        last_seen_at: now,
        auth_time: None,
        idle_deadline: now.saturating_add(Duration::from_secs(2 * 3600)),
        absolute_deadline: now.saturating_add(Duration::from_secs(12 * 3600)),
        meta: Vec::new(),
        data,
    }
}

fn run<B: SessionBackend>(backend: B, save: bool, data: Vec<u8>, n: u64) {
    let now = Timestamp::now_utc();
    let key = SessionToken::generate().storage_key();
    let mut r = record(now, data);
    now_ready(backend.create(&key, &r)).expect("create");
    for _ in 0..n {
        if save {
            r.version = now_ready(backend.save(&key, &r, now)).expect("save");
        } else {
            black_box(now_ready(backend.load(&key, now)).expect("load"));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("save-enc", String::as_str);
    let len: usize = args.get(2).map_or(200, |s| s.parse().expect("length"));
    let n: u64 = args.get(3).map_or(1000, |s| s.parse().expect("count"));
    let data = payload(len);
    let enc = || {
        Encrypted::new(
            MemoryStore::new(),
            Keyring::new(1, EncryptionKey::generate()),
        )
    };
    let start = Instant::now();
    match mode {
        "load" => run(MemoryStore::new(), false, data, n),
        "save" => run(MemoryStore::new(), true, data, n),
        "load-enc" => run(enc(), false, data, n),
        "load-box" => run(Box::new(Box::new(MemoryStore::new())), false, data, n),
        "save-box" => run(Box::new(Box::new(MemoryStore::new())), true, data, n),
        "save-enc" => run(enc(), true, data, n),
        "raw" => {
            let cipher = Aes256Gcm::new_from_slice(&[7; 32]).expect("key");
            for i in 0..n {
                let mut nb = [0u8; 12];
                nb[4..].copy_from_slice(&i.to_be_bytes());
                let nonce = Nonce::from(nb);
                let ct = cipher.encrypt(&nonce, data.as_slice()).expect("encrypt");
                black_box(
                    cipher
                        .decrypt(&nonce, ct.as_slice())
                        .expect("decrypt")
                        .len(),
                );
            }
        }
        other => panic!("unknown mode {other}"),
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{mode} {len} B x{n}: {per:.0} ns/iter");
}

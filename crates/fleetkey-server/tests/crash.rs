//! Crash safety of nonce allocation: a child process seals in a loop (with small
//! nonce blocks and frequent rotations) and is killed with SIGKILL at random
//! moments, 20 times. Across all envelopes every child ever wrote, no
//! (key version, nonce) pair repeats, and every envelope still opens.
//!
//! The child is this same test binary, re-run with `FLEETKEY_CRASH_CHILD` set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleetkey_crypto::{
    aead::Algorithm,
    envelope::{Body, Header, KeyId, armor},
    keyfile::SymmetricKeyFile,
};
use fleetkey_server::{
    clock::SystemClock,
    custody::local::{KekSource, LocalCustody},
    keys::{KeyConfig, KeyService},
    store::{Policy, sqlite::SqliteStore},
};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const KILLS: usize = 20;

async fn service(dir: &Path) -> KeyService {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let custody = Arc::new(
        LocalCustody::open(dir, KekSource::KeyFile(dir.join("kek.fk")))
            .await
            .unwrap(),
    );
    let config = KeyConfig {
        nonce_block: 64,
        ..KeyConfig::default()
    };
    KeyService::open(store, custody, Arc::new(SystemClock::default()), config)
        .await
        .unwrap()
}

/// The child: seals forever, one armored envelope per line, until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("FLEETKEY_CRASH_CHILD") else {
        return; // Not a child: nothing to do.
    };
    let out = std::env::var("FLEETKEY_CRASH_OUT").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let svc = service(Path::new(&dir)).await;
        let ring = svc.keyring("crash").await.unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap();
        let mut i = 0u64;
        loop {
            let env = ring
                .seal(format!("record {i}").as_bytes(), b"crash")
                .await
                .unwrap();
            // One write per line: a kill leaves at most one partial line.
            f.write_all(format!("{}\n", armor::encode(&env)).as_bytes())
                .unwrap();
            i += 1;
        }
    });
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_moments_never_repeats_a_nonce() {
    if std::env::var("FLEETKEY_CRASH_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    let kek = SymmetricKeyFile::generate(Algorithm::Aes256Gcm, KeyId::new("kek").unwrap()).unwrap();
    fleetkey_server::secret_file::write(
        &dir.path().join("kek.fk"),
        kek.to_text().as_bytes(),
        false,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let svc = service(dir.path()).await;
        let policy = Policy {
            max_uses: 1000,
            ..Policy::default()
        };
        svc.create(
            "test",
            &"crash".parse().unwrap(),
            Algorithm::Aes256Gcm,
            policy,
        )
        .await
        .unwrap();
    });
    let seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = XorShift(seed);
    let exe = std::env::current_exe().unwrap();
    let mut produced = 0usize;
    for round in 0..KILLS {
        let out = dir.path().join(format!("out-{round}.txt"));
        let mut child = std::process::Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("FLEETKEY_CRASH_CHILD", dir.path())
            .env("FLEETKEY_CRASH_OUT", &out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it start and seal for a random while, then SIGKILL (Child::kill).
        let wait_ms = 150 + rng.next() % 450;
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the child must have been killed, not exited"
        );
        produced += std::fs::read_to_string(&out)
            .map(|s| s.lines().count())
            .unwrap_or(0);
    }
    // Every envelope from every run: unique (version, nonce), and each opens.
    let mut seen = HashSet::new();
    let mut envelopes = Vec::new();
    for round in 0..KILLS {
        let text = std::fs::read_to_string(dir.path().join(format!("out-{round}.txt")))
            .unwrap_or_default();
        let last = text.lines().count().saturating_sub(1);
        for (i, line) in text.lines().enumerate() {
            // Only the last line can be cut short by the kill: its armor may
            // still decode (cut at a base64 quantum) and hold a truncated envelope.
            let Ok(env) = armor::decode(line) else {
                assert_eq!(i, last, "only the last line may be cut short");
                continue;
            };
            let Ok((h, _)) = Header::parse(&env) else {
                assert_eq!(i, last, "only the last line may be cut short");
                continue;
            };
            let Body::Single { nonce } = h.body else {
                panic!("not single")
            };
            assert!(
                seen.insert((h.key_version, nonce)),
                "nonce repeated: version {} nonce {:02x?}",
                h.key_version,
                nonce
            );
            envelopes.push(env);
        }
    }
    assert!(
        envelopes.len() > 1000,
        "children sealed too little to mean anything: {}",
        envelopes.len()
    );
    let versions: HashSet<u32> = envelopes
        .iter()
        .map(|e| Header::parse(e).unwrap().0.key_version)
        .collect();
    assert!(versions.len() > 1, "no rotation happened during the test");
    rt.block_on(async {
        let svc = service(dir.path()).await;
        let ring = svc.keyring("crash").await.unwrap();
        for e in &envelopes {
            ring.unseal(e, b"crash").await.unwrap();
        }
    });
    eprintln!(
        "crash test: {} envelopes over {KILLS} kills ({produced} lines), {} versions, no repeats",
        envelopes.len(),
        versions.len()
    );
}

//! PKCS#11 custody on a real token: SoftHSM2, initialised by `.ci/run`, which sets
//! `SOFTHSM2_CONF` and `FLEETKEY_TEST_PKCS11_{MODULE,TOKEN,PIN}`. Each test uses
//! its own label prefix, so its objects are its own. Without the variables these
//! tests are ignored (and fail when run, saying what is missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use fleetkey_crypto::secret::SecretBytes;
use fleetkey_server::Error;
use fleetkey_server::clock::ManualClock;
use fleetkey_server::custody::Custody;
use fleetkey_server::custody::pkcs11::{Pkcs11Config, Pkcs11Custody};
use fleetkey_server::keys::{KeyConfig, KeyService};
use std::sync::Arc;
use zeroize::Zeroizing;

fn config(label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: common::service_url("FLEETKEY_TEST_PKCS11_MODULE").into(),
        token: common::service_url("FLEETKEY_TEST_PKCS11_TOKEN"),
        pin: Zeroizing::new(common::service_url("FLEETKEY_TEST_PKCS11_PIN")),
        label: label.into(),
        sessions: 2,
        wrap: None,
    }
}

/// A read-write session of this process to the test token, logged in (the
/// module may be initialised and the application logged in by a custody in
/// this process already: a login is per application).
fn token_session(cfg: &Pkcs11Config) -> cryptoki::session::Session {
    let ctx = Pkcs11::new(&cfg.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == cfg.token)
        .unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    let _ = s.login(UserType::User, Some(&AuthPin::new(cfg.pin.as_str().into())));
    s
}

fn is_open_refusal(e: &Error) -> bool {
    matches!(e, Error::Envelope(fleetkey_crypto::Error::Open))
}

#[tokio::test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn the_token_wraps_signs_and_keeps_its_keys_across_restarts() {
    let label = common::unique("fk-a-");
    let c = Pkcs11Custody::open(config(&label)).await.unwrap();
    let key = SecretBytes::<32>::random().unwrap();
    let wrapped = c.wrap(&key, "keyring:payments/v1").await.unwrap();
    assert_eq!(wrapped.len(), 1 + 12 + 32 + 16, "format byte, IV, key, tag");
    assert!(!wrapped.windows(32).any(|w| w == key.expose_secret()));
    let back = c.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    // Two wraps of one key differ (fresh IV); both unwrap.
    let again = c.wrap(&key, "keyring:payments/v1").await.unwrap();
    assert_ne!(again, wrapped);
    // Another context, tampering, truncation, another format: refused as Open.
    let mut tampered = wrapped.clone();
    tampered[20] ^= 1;
    let mut other_format = wrapped.clone();
    other_format[0] = 0x02;
    for (bytes, ctx) in [
        (&wrapped, "keyring:payments/v2"),
        (&tampered, "keyring:payments/v1"),
        (
            &wrapped[..wrapped.len() - 1].to_vec(),
            "keyring:payments/v1",
        ),
        (&other_format, "keyring:payments/v1"),
        (&Vec::new(), "keyring:payments/v1"),
    ] {
        let e = c.unwrap(bytes, ctx).await.unwrap_err();
        assert!(is_open_refusal(&e), "{ctx} {}: {e}", bytes.len());
    }
    // The composite signature: Ed25519 made in the token, ML-DSA-65 in process.
    let pk = c.public_key();
    assert_eq!(pk.len(), 1984);
    let sig = c.sign(b"checkpoint 17").await.unwrap();
    fleetkey_crypto::composite::verify(&pk, b"checkpoint 17", &sig).unwrap();
    assert!(fleetkey_crypto::composite::verify(&pk, b"checkpoint 18", &sig).is_err());
    // A restart (a second process would do the same) finds the same keys.
    drop(c);
    let c2 = Pkcs11Custody::open(config(&label)).await.unwrap();
    assert_eq!(c2.public_key(), pk);
    let back = c2.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    // Debug shows neither the PIN nor key material.
    let shown = format!("{c2:?} {:?}", config(&label));
    assert!(!shown.contains(&common::service_url("FLEETKEY_TEST_PKCS11_PIN")));
    assert!(shown.contains("public_key_prefix"), "{shown}");
}

/// What the token holds: the wrapping key, the Ed25519 private key and the
/// derivation key are sensitive and never extractable (the token refuses to give
/// their values), and no ML-DSA seed is stored.
#[tokio::test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn the_root_cannot_be_read_out_of_the_token() {
    let label = common::unique("fk-b-");
    let c = Pkcs11Custody::open(config(&label)).await.unwrap();
    let cfg = config(&label);
    let s = token_session(&cfg);
    for (class, suffix) in [
        (ObjectClass::SECRET_KEY, "wrap"),
        (ObjectClass::PRIVATE_KEY, "ed25519"),
        (ObjectClass::SECRET_KEY, "derive"),
    ] {
        let found = s
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Label(format!("{label}-{suffix}").into_bytes()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{suffix}");
        let attrs = s
            .get_attributes(
                found[0],
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .unwrap();
        assert!(attrs.contains(&Attribute::Sensitive(true)), "{suffix}");
        assert!(attrs.contains(&Attribute::Extractable(false)), "{suffix}");
        // The value is not given out.
        let value = s.get_attributes(found[0], &[AttributeType::Value]);
        assert!(
            !matches!(value.as_deref(), Ok([Attribute::Value(_)])),
            "{suffix}: {value:?}"
        );
    }
    // The ML-DSA seed is derived in the token, never stored.
    let seed = s
        .find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(format!("{label}-ml-dsa-seed").into_bytes()),
        ])
        .unwrap();
    assert!(seed.is_empty());
    drop(c);
}

#[tokio::test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn a_wrong_pin_token_or_module_is_a_configuration_error() {
    let label = common::unique("fk-c-");
    let mut wrong_pin = config(&label);
    wrong_pin.pin = Zeroizing::new("0000-not-the-pin".into());
    let mut wrong_token = config(&label);
    wrong_token.token = "no-such-token".into();
    let mut wrong_module = config(&label);
    wrong_module.module = "/nonexistent/libpkcs11.so".into();
    for (cfg, says) in [
        (wrong_pin, "refused the PIN"),
        (wrong_token, "no token labelled"),
        (wrong_module, "pkcs11 module"),
    ] {
        let e = Pkcs11Custody::open(cfg).await.unwrap_err();
        assert!(
            matches!(&e, Error::CustodyConfig(m) if m.contains(says)),
            "{e}"
        );
        assert!(!e.to_string().contains("0000-not-the-pin"));
    }
}

/// The key service on PKCS#11 custody: keyrings' keys are wrapped by the token;
/// a restarted service (new custody, same token) opens what the first sealed.
#[tokio::test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn keyrings_seal_and_open_across_restarts_on_hsm_custody() {
    let label = common::unique("fk-d-");
    let dir = tempfile::TempDir::new().unwrap();
    let store = common::test_store(dir.path()).await;
    let clock = ManualClock::at(1_800_000_000);
    let open = || async {
        let custody = Arc::new(Pkcs11Custody::open(config(&label)).await.unwrap());
        KeyService::open(
            store.clone(),
            custody,
            Arc::new(clock.clone()),
            KeyConfig::default(),
        )
        .await
        .unwrap()
    };
    let keys = open().await;
    keys.create(
        "t",
        &"payments".parse().unwrap(),
        fleetkey_crypto::aead::Algorithm::Aes256Gcm,
        fleetkey_server::store::Policy::default(),
    )
    .await
    .unwrap();
    let ring = keys.keyring("payments").await.unwrap();
    let sealed = ring.seal(b"card 4242", b"order 17").await.unwrap();
    drop((ring, keys));
    let keys = open().await;
    let ring = keys.keyring("payments").await.unwrap();
    assert_eq!(
        ring.unseal(&sealed, b"order 17").await.unwrap(),
        b"card 4242"
    );
}

/// Resident keys: generated in the token, sensitive and never extractable;
/// every seal and open a token call with the caller's nonce; every refusal
/// (tampered, another nonce or AAD, a reference not of this token, a destroyed
/// key); and calls metered per operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn resident_keys_seal_in_the_token_and_never_leave_it() {
    use fleetkey_server::custody::metered::Metered;
    let label = common::unique("fk-r-");
    let inner: Arc<dyn Custody> = Arc::new(Pkcs11Custody::open(config(&label)).await.unwrap());
    let c = Metered::new(inner).unwrap();
    let r = c.resident().expect("pkcs11 holds resident keys");
    let reference = r.generate("keyring:vault/v1").await.unwrap();
    assert_eq!(reference[0], 0x10);
    let name = std::str::from_utf8(&reference[1..]).unwrap().to_owned();
    assert!(
        name.starts_with(&format!("{label}-resident-keyring:vault/v1-")),
        "{name}"
    );
    let nonce = [7u8; 12];
    let ct = r
        .seal(&reference, nonce, b"hdr", b"sixty-four bytes or so")
        .await
        .unwrap();
    assert_eq!(ct.len(), b"sixty-four bytes or so".len() + 16);
    // The caller's nonce is the IV: the same inputs give the same ciphertext,
    // another nonce another one.
    assert_eq!(
        r.seal(&reference, nonce, b"hdr", b"sixty-four bytes or so")
            .await
            .unwrap(),
        ct
    );
    assert_ne!(
        r.seal(&reference, [8; 12], b"hdr", b"sixty-four bytes or so")
            .await
            .unwrap(),
        ct
    );
    assert_eq!(
        r.open(&reference, nonce, b"hdr", &ct).await.unwrap(),
        b"sixty-four bytes or so"
    );
    let mut tampered = ct.clone();
    tampered[3] ^= 1;
    for (n, aad, bytes) in [
        (nonce, &b"hdr"[..], &tampered),
        ([8; 12], &b"hdr"[..], &ct),
        (nonce, &b"other"[..], &ct),
    ] {
        let e = r.open(&reference, n, aad, bytes).await.unwrap_err();
        assert!(is_open_refusal(&e), "{e}");
    }
    // References that are not this token's resident keys.
    let other_prefix = [&[0x10u8][..], b"someone-else-resident-x"].concat();
    for bad in [
        &b""[..],
        &[0x01, b'a'][..],
        &other_prefix[..],
        &[0x10, 0xff, 0xfe][..],
    ] {
        let e = r.seal(bad, nonce, b"", b"x").await.unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
    }
    // In the token: sensitive, not extractable, its value never given out.
    let cfg = config(&label);
    let s = token_session(&cfg);
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(name.clone().into_bytes()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    let attrs = s
        .get_attributes(
            found[0],
            &[AttributeType::Sensitive, AttributeType::Extractable],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    assert!(attrs.contains(&Attribute::Extractable(false)));
    let value = s.get_attributes(found[0], &[AttributeType::Value]);
    assert!(
        !matches!(value.as_deref(), Ok([Attribute::Value(_)])),
        "{value:?}"
    );
    drop(s);
    // Destroyed: nothing it sealed opens again; destroying twice is fine.
    r.destroy(&reference).await.unwrap();
    r.destroy(&reference).await.unwrap();
    let e = r.open(&reference, nonce, b"hdr", &ct).await.unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
    // Every call counted by operation and result.
    let metrics = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::core::Collector::collect(
            &c.collector().unwrap(),
        ))
        .unwrap();
    for line in [
        r#"operation="resident_generate",result="ok"} 1"#,
        r#"operation="resident_seal",result="ok"} 3"#,
        r#"operation="resident_open",result="refused"} 3"#,
        r#"operation="resident_destroy",result="ok"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

/// Local custody holds no resident keys.
#[tokio::test]
async fn local_custody_holds_no_resident_keys() {
    use fleetkey_server::custody::local::{KekSource, LocalCustody};
    let dir = tempfile::TempDir::new().unwrap();
    let c = LocalCustody::open(
        dir.path(),
        KekSource::Passphrase(Zeroizing::new("p".into())),
    )
    .await
    .unwrap();
    assert!(c.resident().is_none());
}

/// The labels of fleetkey's resident keys in the token under `prefix`.
fn resident_labels(prefix: &str) -> Vec<String> {
    let cfg = config(prefix);
    let s = token_session(&cfg);
    let mut out = Vec::new();
    for h in s
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap()
    {
        if let Ok(attrs) = s.get_attributes(h, &[AttributeType::Label])
            && let [Attribute::Label(l)] = attrs.as_slice()
        {
            let l = String::from_utf8_lossy(l).into_owned();
            if l.starts_with(&format!("{prefix}-resident-")) {
                out.push(l);
            }
        }
    }
    out.sort();
    out
}

/// A resident keyring: every version's key generated in the token (the store
/// holds only a reference), seals and opens there as fk1 mode-1 envelopes,
/// rotates, rewraps and makes data keys; what needs the key in memory is
/// refused; erasure destroys its keys in the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn resident_keyrings_seal_and_open_only_in_the_token() {
    use fleetkey_crypto::aead::Algorithm;
    use fleetkey_server::key_type::KeyType;
    use fleetkey_server::keys::KeyringOptions;
    let label = common::unique("fk-k-");
    let dir = tempfile::TempDir::new().unwrap();
    let store = common::test_store(dir.path()).await;
    let clock = ManualClock::at(1_800_000_000);
    let custody = Arc::new(Pkcs11Custody::open(config(&label)).await.unwrap());
    let keys = KeyService::open(
        store.clone(),
        custody,
        Arc::new(clock.clone()),
        KeyConfig::default(),
    )
    .await
    .unwrap();
    let resident = KeyringOptions {
        resident: true,
        ..KeyringOptions::default()
    };
    let gcm = KeyType::Aead(Algorithm::Aes256Gcm);
    let policy = fleetkey_server::store::Policy::default();
    let info = keys
        .create_with(
            "t",
            &"vault".parse().unwrap(),
            gcm,
            policy,
            resident.clone(),
        )
        .await
        .unwrap();
    assert!(info.resident);
    // The store holds a reference to the token's key, no key material.
    let v1 = &store.versions("vault").await.unwrap()[0];
    assert_eq!(v1.wrapped_key[0], 0x10);
    assert_eq!(resident_labels(&label).len(), 1);
    // A second keyring of that name is refused, and the key made for it goes.
    let e = keys
        .create_with(
            "t",
            &"vault".parse().unwrap(),
            gcm,
            policy,
            resident.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::KeyringExists(_)), "{e}");
    assert_eq!(resident_labels(&label).len(), 1);
    let ring = keys.keyring("vault").await.unwrap();
    let sealed = ring.seal(b"pan 4242", b"order 9").await.unwrap();
    let (header, _) = fleetkey_crypto::envelope::Header::parse(&sealed).unwrap();
    assert_eq!(
        (header.algorithm, header.key_version),
        (Algorithm::Aes256Gcm, 1)
    );
    assert_eq!(ring.unseal(&sealed, b"order 9").await.unwrap(), b"pan 4242");
    // Two seals never share a nonce.
    let again = ring.seal(b"pan 4242", b"order 9").await.unwrap();
    assert_ne!(again[..40], sealed[..40]);
    let mut tampered = sealed.clone();
    let at = tampered.len() - 1;
    tampered[at] ^= 1;
    for (bytes, aad) in [(&tampered, &b"order 9"[..]), (&sealed, &b"order 10"[..])] {
        let e = ring.unseal(bytes, aad).await.unwrap_err();
        assert!(is_open_refusal(&e), "{e}");
    }
    // Data keys are sealed by the token too.
    let dk = ring.data_key(b"blob 1").await.unwrap();
    assert_eq!(
        ring.unseal(&dk.sealed, b"blob 1").await.unwrap(),
        dk.plaintext.as_slice()
    );
    // Rotation makes a new key in the token; old envelopes still open, rewrap
    // moves them to the new version.
    assert_eq!(keys.rotate("t", "vault").await.unwrap(), 2);
    assert_eq!(resident_labels(&label).len(), 2);
    let v2 = ring.seal(b"later", b"").await.unwrap();
    assert_eq!(
        fleetkey_crypto::envelope::Header::parse(&v2)
            .unwrap()
            .0
            .key_version,
        2
    );
    assert_eq!(ring.unseal(&sealed, b"order 9").await.unwrap(), b"pan 4242");
    let moved = keys
        .rewrap("t", "vault", std::slice::from_ref(&sealed), b"order 9")
        .await
        .unwrap();
    let moved = moved.into_iter().next().unwrap().unwrap();
    assert_eq!(
        fleetkey_crypto::envelope::Header::parse(&moved)
            .unwrap()
            .0
            .key_version,
        2
    );
    assert_eq!(ring.unseal(&moved, b"order 9").await.unwrap(), b"pan 4242");
    // What would need a key in memory, or is not AES-256-GCM: refused at creation.
    for (alg, options) in [
        (KeyType::Aead(Algorithm::ChaCha20Poly1305), resident.clone()),
        (
            gcm,
            KeyringOptions {
                exportable: true,
                ..resident.clone()
            },
        ),
        (
            KeyType::Aead(Algorithm::Aes256GcmSiv),
            KeyringOptions {
                convergent: true,
                ..resident.clone()
            },
        ),
    ] {
        let e = keys
            .create_with("t", &"nope".parse().unwrap(), alg, policy, options)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Invalid {
                    what: "resident",
                    ..
                }
            ),
            "{e}"
        );
    }
    // Scheduled deletion: at the tick the token's keys are destroyed, then the
    // store forgets them.
    keys.schedule_deletion("t", "vault", 7).await.unwrap();
    clock.advance(8 * 86_400);
    keys.run_policies("scheduler").await.unwrap();
    assert_eq!(resident_labels(&label), Vec::<String>::new());
    assert!(ring.unseal(&v2, b"").await.is_err());
}

/// Resident keyrings need custody that can hold them: local custody refuses.
#[tokio::test]
async fn local_custody_refuses_resident_keyrings() {
    use fleetkey_server::keys::KeyringOptions;
    let dir = tempfile::TempDir::new().unwrap();
    let svc = common::services(dir.path()).await;
    let e = svc
        .state
        .keys
        .create_with(
            "t",
            &"r".parse().unwrap(),
            fleetkey_server::key_type::KeyType::Aead(fleetkey_crypto::aead::Algorithm::Aes256Gcm),
            fleetkey_server::store::Policy::default(),
            KeyringOptions {
                resident: true,
                ..KeyringOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::CustodyUnsupported(m) if m.contains("local custody cannot hold resident keys")),
        "{e}"
    );
}

/// AES key wrap with padding (`FLEETKEY_PKCS11_WRAP=aes-kwp`, or a token
/// without AES-GCM): round trip, the context bound inside, every refusal; a
/// custody switched to the other mechanism still unwraps what the first made
/// and keeps its signing key.
#[tokio::test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn aes_key_wrap_with_padding_when_chosen() {
    use fleetkey_server::custody::pkcs11::WrapMechanism;
    let label = common::unique("fk-w-");
    let with = |m| Pkcs11Config {
        wrap: Some(m),
        ..config(&label)
    };
    let c = Pkcs11Custody::open(with(WrapMechanism::AesKwp))
        .await
        .unwrap();
    let key = SecretBytes::<32>::random().unwrap();
    let wrapped = c.wrap(&key, "keyring:payments/v1").await.unwrap();
    assert_eq!((wrapped[0], wrapped.len()), (0x04, 1 + 72));
    assert!(!wrapped.windows(32).any(|w| w == key.expose_secret()));
    let back = c.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    let mut tampered = wrapped.clone();
    tampered[10] ^= 1;
    for (bytes, ctx) in [
        (wrapped.clone(), "keyring:payments/v2"),
        (tampered, "keyring:payments/v1"),
        (wrapped[..wrapped.len() - 8].to_vec(), "keyring:payments/v1"),
        (wrapped[..wrapped.len() - 1].to_vec(), "keyring:payments/v1"),
        (
            [&[0x01u8][..], &wrapped[1..]].concat(),
            "keyring:payments/v1",
        ),
        (vec![0x04], "keyring:payments/v1"),
        (Vec::new(), "keyring:payments/v1"),
    ] {
        let e = c.unwrap(&bytes, ctx).await.unwrap_err();
        assert!(is_open_refusal(&e), "{ctx} {}: {e}", bytes.len());
    }
    let pk = c.public_key();
    let sig = c.sign(b"kwp").await.unwrap();
    fleetkey_crypto::composite::verify(&pk, b"kwp", &sig).unwrap();
    drop(c);
    // Switched to AES-GCM: new wraps are GCM, the KWP ones still open, and the
    // signing key is the same.
    let g = Pkcs11Custody::open(with(WrapMechanism::AesGcm))
        .await
        .unwrap();
    assert_eq!(g.public_key(), pk);
    let back = g.unwrap(&wrapped, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
    let gcm = g.wrap(&key, "keyring:payments/v1").await.unwrap();
    assert_eq!(gcm[0], 0x01);
    drop(g);
    let k = Pkcs11Custody::open(with(WrapMechanism::AesKwp))
        .await
        .unwrap();
    let back = k.unwrap(&gcm, "keyring:payments/v1").await.unwrap();
    assert_eq!(back.expose_secret(), key.expose_secret());
}

/// The ML-DSA-65 seed is HKDF-Expand(`<label>-derive`, info, 32) computed by
/// the token: with a derivation key of known value (made here before the first
/// start), the service's public key is the one that seed gives. A token set up
/// with a wrapped seed object keeps that seed.
#[tokio::test]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn the_ml_dsa_seed_is_derived_in_the_token() {
    use aws_lc_rs::hmac;
    use fleetkey_crypto::mldsa::MlDsaSigner;
    let label = common::unique("fk-h-");
    let cfg = config(&label);
    let s = token_session(&cfg);
    let prk = [0x42u8; 32];
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(cryptoki::object::KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(format!("{label}-derive").into_bytes()),
        Attribute::Value(prk.to_vec()),
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ])
    .unwrap();
    let c = Pkcs11Custody::open(config(&label)).await.unwrap();
    let t1 = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &prk),
        b"fleetkey custody pkcs11 ml-dsa-65 seed v1\x01",
    );
    let seed = SecretBytes::<32>::from_slice(t1.as_ref()).unwrap();
    let expected = MlDsaSigner::from_seed(seed).unwrap().public_key();
    assert_eq!(&c.public_key()[32..], &expected[..]);
    // A token whose seed was stored wrapped (as before derivation) keeps it.
    let legacy = common::unique("fk-l-");
    let c = Pkcs11Custody::open(config(&legacy)).await.unwrap();
    let seed = SecretBytes::<32>::random().unwrap();
    let wrapped = c
        .wrap(&seed, "fleetkey custody pkcs11 ml-dsa seed v1")
        .await
        .unwrap();
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(format!("{legacy}-ml-dsa-seed").into_bytes()),
        Attribute::Value(wrapped),
    ])
    .unwrap();
    drop(c);
    let c = Pkcs11Custody::open(config(&legacy)).await.unwrap();
    let expected = MlDsaSigner::from_seed(seed).unwrap().public_key();
    assert_eq!(&c.public_key()[32..], &expected[..]);
}

/// Many calls at once on a pool of two sessions: each waits for one of them
/// (SoftHSM2 reports no session counts, so the cap itself is not observed
/// here), none is refused or taken for a lost token, and every one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs SoftHSM2 and FLEETKEY_TEST_PKCS11_* (.ci/run sets them)"]
async fn a_small_session_pool_serves_many_calls_at_once() {
    let label = common::unique("fk-p-");
    let cfg = Pkcs11Config {
        sessions: 2,
        ..config(&label)
    };
    let c = Arc::new(Pkcs11Custody::open(cfg).await.unwrap());
    let r = c.resident().unwrap();
    let reference = Arc::new(r.generate("keyring:busy/v1").await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..24u8 {
        let c = c.clone();
        let reference = reference.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.resident().unwrap();
            for j in 0..10u8 {
                let nonce = [i, j, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                let ct = r.seal(&reference, nonce, b"", &[i; 64]).await.unwrap();
                assert_eq!(r.open(&reference, nonce, b"", &ct).await.unwrap(), [i; 64]);
                let key = SecretBytes::<32>::random().unwrap();
                let w = c.wrap(&key, "ctx").await.unwrap();
                assert_eq!(
                    c.unwrap(&w, "ctx").await.unwrap().expose_secret(),
                    key.expose_secret()
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

//! Key material in and out, on the real embedded store: an exported version
//! opens with the receiver's identity and is the key the keyring used; imported
//! material becomes the primary and is the key the keyring then uses (AEAD and
//! Ed25519); and every refusal (not exportable, wrong binding, expired or foreign
//! recipient, wrong length, disabled, revoked).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keyrings::{T0, env_with};
use fleetkey_crypto::aead::{AeadKey, Algorithm};
use fleetkey_crypto::envelope::{recipient, single};
use fleetkey_crypto::hpke::XWingIdentity;
use fleetkey_crypto::secret::SecretBytes;
use fleetkey_server::Error;
use fleetkey_server::key_type::KeyType;
use fleetkey_server::keys::{Signable, export_aad, import_aad};
use fleetkey_server::store::{KeyringState, Origin, Policy};

async fn exportable(e: &common::keyrings::Env, name: &str, kind: KeyType) {
    e.keys
        .create_with(
            "t",
            &name.parse().unwrap(),
            kind,
            Policy::default(),
            fleetkey_server::keys::KeyringOptions {
                exportable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_exported_version_is_the_key_the_keyring_seals_with() {
    let e = env_with(64).await;
    exportable(&e, "x", KeyType::Aead(Algorithm::Aes256Gcm)).await;
    let env = e
        .keys
        .keyring("x")
        .await
        .unwrap()
        .seal(b"hello", b"a")
        .await
        .unwrap();
    let receiver = XWingIdentity::generate().unwrap();
    let (v, sealed) = e
        .keys
        .export("t", "x", None, &receiver.recipient())
        .await
        .unwrap();
    assert_eq!(v, 1);
    let key = recipient::open_secret(&receiver, &sealed, &export_aad("x", 1)).unwrap();
    let aead = AeadKey::new(Algorithm::Aes256Gcm, key).unwrap();
    assert_eq!(single::open(&aead, &env, b"a").unwrap(), b"hello");
    // Bound to the keyring and version: another binding does not open it.
    assert!(recipient::open_secret(&receiver, &sealed, &export_aad("x", 2)).is_err());
    assert!(recipient::open_secret(&receiver, &sealed, &export_aad("y", 1)).is_err());
    // Another identity does not open it.
    let other = XWingIdentity::generate().unwrap();
    assert!(recipient::open_secret(&other, &sealed, &export_aad("x", 1)).is_err());
    let audit: Vec<String> = e
        .keys
        .audit_entries(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(audit.contains(&"keyring.export".to_owned()), "{audit:?}");

    // Refusals: not exportable (chosen at creation), revoked, disabled.
    e.keys
        .create(
            "t",
            &"n".parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    let err = e
        .keys
        .export("t", "n", None, &receiver.recipient())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotExportable(_)), "{err}");
    e.keys.rotate("t", "x").await.unwrap();
    e.keys.revoke("t", "x", 1).await.unwrap();
    let err = e
        .keys
        .export("t", "x", Some(1), &receiver.recipient())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Revoked { .. }), "{err}");
    e.keys.disable("t", "x").await.unwrap();
    let err = e
        .keys
        .export("t", "x", None, &receiver.recipient())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyringUnusable {
                state: KeyringState::Disabled,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn imported_material_becomes_the_primary_and_is_used() {
    let e = env_with(64).await;
    let k = &e.keys;
    k.create(
        "t",
        &"aead".parse().unwrap(),
        Algorithm::ChaCha20Poly1305,
        Policy::default(),
    )
    .await
    .unwrap();
    let r = k.import_recipient().await.unwrap();
    assert!(r.key_id.starts_with("xwing-"));
    assert_eq!(r.expires_at, (T0.div_euclid(86_400) + 2) * 86_400);
    assert_eq!(
        k.import_recipient().await.unwrap().key_id,
        r.key_id,
        "one per day"
    );
    let material = [0x5Au8; 32];
    let sealed = recipient::seal_to_vec(&r.recipient, &material, &import_aad("aead")).unwrap();
    assert_eq!(k.import("t", "aead", &sealed).await.unwrap(), 2);
    let info = k.show("aead").await.unwrap();
    assert_eq!(info.primary_version, 2);
    assert_eq!(info.versions[0].origin, Origin::Generated);
    assert_eq!(info.versions[1].origin, Origin::Imported);
    let env = k
        .keyring("aead")
        .await
        .unwrap()
        .seal(b"byok", b"")
        .await
        .unwrap();
    let mine = AeadKey::new(Algorithm::ChaCha20Poly1305, SecretBytes::new(material)).unwrap();
    assert_eq!(single::open(&mine, &env, b"").unwrap(), b"byok");

    // A signing keyring: the imported Ed25519 seed signs.
    k.create(
        "t",
        &"sig".parse().unwrap(),
        KeyType::Ed25519,
        Policy::default(),
    )
    .await
    .unwrap();
    let seed = [7u8; 32];
    let sealed = recipient::seal_to_vec(&r.recipient, &seed, &import_aad("sig")).unwrap();
    k.import("t", "sig", &sealed).await.unwrap();
    let ring = k.keyring("sig").await.unwrap();
    let (_, pk) = ring.public_key(None).await.unwrap();
    let expected = fleetkey_crypto::ed25519::Ed25519Signer::from_seed(SecretBytes::new(seed))
        .unwrap()
        .public_key();
    assert_eq!(pk, expected);
    let s = ring.sign(Signable::Message(b"m")).await.unwrap();
    fleetkey_crypto::ed25519::verify(&expected, b"m", &s.signature).unwrap();
}

#[tokio::test]
async fn imports_are_refused_unless_sealed_right_in_time_and_to_a_usable_keyring() {
    let e = env_with(64).await;
    let k = &e.keys;
    for n in ["a", "b"] {
        k.create(
            "t",
            &n.parse().unwrap(),
            Algorithm::Aes256Gcm,
            Policy::default(),
        )
        .await
        .unwrap();
    }
    let r = k.import_recipient().await.unwrap().recipient;
    let invalid = |err: Error, says: &str| {
        assert!(matches!(err, Error::ImportRefused(_)), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    };
    // Sealed for keyring b, imported into a: refused (the binding names the keyring).
    let for_b = recipient::seal_to_vec(&r, &[1; 32], &import_aad("b")).unwrap();
    invalid(
        k.import("t", "a", &for_b).await.unwrap_err(),
        "does not open",
    );
    // Not 32 bytes.
    for len in [0usize, 31, 33, 64] {
        let sealed = recipient::seal_to_vec(&r, &vec![1; len], &import_aad("a")).unwrap();
        invalid(
            k.import("t", "a", &sealed).await.unwrap_err(),
            "exactly 32 bytes",
        );
    }
    // Sealed to someone else's recipient, or not an envelope at all.
    let foreign = XWingIdentity::generate().unwrap().recipient();
    let sealed = recipient::seal_to_vec(&foreign, &[1; 32], &import_aad("a")).unwrap();
    invalid(
        k.import("t", "a", &sealed).await.unwrap_err(),
        "not this service's",
    );
    invalid(
        k.import("t", "a", b"garbage").await.unwrap_err(),
        "not an fk1 envelope",
    );
    let mut tampered = recipient::seal_to_vec(&r, &[1; 32], &import_aad("a")).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    invalid(
        k.import("t", "a", &tampered).await.unwrap_err(),
        "does not open",
    );
    // Yesterday's recipient still works; the day before's does not.
    let good = recipient::seal_to_vec(&r, &[2; 32], &import_aad("a")).unwrap();
    e.clock.advance(86_400);
    assert_eq!(k.import("t", "a", &good).await.unwrap(), 2);
    e.clock.advance(86_400);
    invalid(k.import("t", "a", &good).await.unwrap_err(), "has expired");
    // A disabled keyring takes no import.
    let fresh = recipient::seal_to_vec(
        &k.import_recipient().await.unwrap().recipient,
        &[3; 32],
        &import_aad("a"),
    )
    .unwrap();
    k.disable("t", "a").await.unwrap();
    let err = k.import("t", "a", &fresh).await.unwrap_err();
    assert!(matches!(err, Error::KeyringUnusable { .. }), "{err}");
    k.enable("t", "a").await.unwrap();
    assert_eq!(k.import("t", "a", &fresh).await.unwrap(), 3);
    assert_eq!(
        k.show("a").await.unwrap().versions.len(),
        3,
        "refusals made no versions"
    );
}

/// Convergent keyrings: the same plaintext and binding under the same version
/// give the same envelope, with the nonce derived as docs/formats.md says
/// (recomputed here with aws-lc-rs directly from the exported key).
#[tokio::test]
async fn convergent_sealing_is_deterministic_as_documented() {
    use aws_lc_rs::{hkdf, hmac};
    let e = env_with(64).await;
    let err = e
        .keys
        .create_with(
            "t",
            &"gcm".parse().unwrap(),
            KeyType::Aead(Algorithm::Aes256Gcm),
            Policy::default(),
            fleetkey_server::keys::KeyringOptions {
                convergent: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("aes-256-gcm-siv"), "{err}");
    let info = e
        .keys
        .create_with(
            "t",
            &"eq".parse().unwrap(),
            KeyType::Aead(Algorithm::Aes256GcmSiv),
            Policy::default(),
            fleetkey_server::keys::KeyringOptions {
                convergent: true,
                exportable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(info.convergent);
    let ring = e.keys.keyring("eq").await.unwrap();
    let a1 = ring
        .seal(b"alice@example.com", b"users.email")
        .await
        .unwrap();
    let a2 = ring
        .seal(b"alice@example.com", b"users.email")
        .await
        .unwrap();
    let b = ring.seal(b"bob@example.com", b"users.email").await.unwrap();
    let other_aad = ring
        .seal(b"alice@example.com", b"users.name")
        .await
        .unwrap();
    assert_eq!(a1, a2, "equal plaintexts, equal envelopes");
    assert_ne!(a1, b);
    assert_ne!(a1, other_aad);
    assert_eq!(
        ring.unseal(&a1, b"users.email").await.unwrap(),
        b"alice@example.com"
    );

    // The nonce is HMAC-SHA256(HKDF(secret, salt, "nonce"), BE64(len aad) ‖ aad ‖ pt)[..12].
    let receiver = XWingIdentity::generate().unwrap();
    let (_, sealed) = e
        .keys
        .export("t", "eq", None, &receiver.recipient())
        .await
        .unwrap();
    let secret = recipient::open_secret(&receiver, &sealed, &export_aad("eq", 1)).unwrap();
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"fleetkey convergent v1")
        .extract(secret.expose_secret());
    let mut nk = [0u8; 32];
    prk.expand(&[b"nonce"], hkdf::HKDF_SHA256)
        .unwrap()
        .fill(&mut nk)
        .unwrap();
    let mut msg = (b"users.email".len() as u64).to_be_bytes().to_vec();
    msg.extend_from_slice(b"users.email");
    msg.extend_from_slice(b"alice@example.com");
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &nk), &msg);
    let fleetkey_crypto::envelope::Body::Single { nonce } =
        fleetkey_crypto::envelope::Header::parse(&a1)
            .unwrap()
            .0
            .body
    else {
        panic!("not mode 1")
    };
    assert_eq!(nonce, tag.as_ref()[..12]);

    // A new version: new envelopes; the old ones still open.
    e.keys.rotate("t", "eq").await.unwrap();
    let a3 = ring
        .seal(b"alice@example.com", b"users.email")
        .await
        .unwrap();
    assert_ne!(a1, a3);
    assert_eq!(
        ring.unseal(&a1, b"users.email").await.unwrap(),
        b"alice@example.com"
    );
}

/// Key material sealed by an independent implementation (tests/python/fk1_xwing.py:
/// X-Wing on kyber-py and `cryptography`, HPKE written from RFC 9180) to the
/// service's import recipient imports, and is the key the keyring then uses.
#[tokio::test]
#[ignore = "needs python3 with cryptography and kyber-py (.ci/run installs them)"]
async fn material_sealed_by_an_independent_implementation_imports() {
    use std::io::Write as _;
    let e = env_with(64).await;
    e.keys
        .create(
            "t",
            &"py".parse().unwrap(),
            Algorithm::Aes256GcmSiv,
            Policy::default(),
        )
        .await
        .unwrap();
    let r = e.keys.import_recipient().await.unwrap();
    let text = fleetkey_crypto::keyfile::recipient_string(&r.recipient);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/fk1_xwing.py"
    );
    let material = [0xC3u8; 32];
    let mut child = std::process::Command::new("python3")
        .args([script, "seal", &text, "fleetkey import v1:py"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&material).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sealed = out.stdout;
    let (h, _) = fleetkey_crypto::envelope::Header::parse(&sealed).unwrap();
    assert_eq!(h.key_id.as_str(), r.key_id);
    assert_eq!(e.keys.import("t", "py", &sealed).await.unwrap(), 2);
    let env = e
        .keys
        .keyring("py")
        .await
        .unwrap()
        .seal(b"interop", b"")
        .await
        .unwrap();
    let mine = AeadKey::new(Algorithm::Aes256GcmSiv, SecretBytes::new(material)).unwrap();
    assert_eq!(single::open(&mine, &env, b"").unwrap(), b"interop");
}

//! gRPC against a real `fleetkey serve` (docs/grpc.md), with a tonic client built
//! from the same .proto: seal/unseal with a context, rewrap after a rotation,
//! batches with a failing item, data keys, Ed25519 and MAC, a 300 KB payload
//! sealed as it streams and opened by `fleetkey unseal --keyring`; refusals as
//! gRPC statuses with the API's error code (no token, a bad token, a scope not
//! held, wrong context, unknown keyring, an oversized message); the same metrics
//! as REST; server reflection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use fleetkey_server::api::grpc::pb;
use pb::crypto_client::CryptoClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

async fn client(
    server: &Server,
    token: &str,
) -> CryptoClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        impl tonic::service::Interceptor + use<>,
    >,
> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let header: Option<tonic::metadata::MetadataValue<_>> =
        (!token.is_empty()).then(|| format!("Bearer {token}").parse().unwrap());
    CryptoClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        if let Some(h) = &header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    })
}

async fn rest(server: &Server, token: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.addr()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

fn code_of(s: &tonic::Status) -> &str {
    s.metadata()
        .get("fleetkey-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn binding(context: &[(&str, &str)]) -> Option<pb::Binding> {
    Some(pb::Binding {
        aad: Vec::new(),
        context: context
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

#[tokio::test]
async fn the_hot_operations_over_grpc() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start(dir.path());
    let token = Server::admin_token(dir.path());
    rest(&server, &token, "/v1/keyrings", json!({"name": "app"})).await;
    let mut c = client(&server, &token).await;

    // Seal and unseal with a context; the envelope is REST's (REST opens it).
    let ctx = [("tenant", "acme"), ("app", "billing")];
    let sealed = c
        .seal(pb::SealRequest {
            keyring: "app".into(),
            plaintext: b"hello over grpc".to_vec(),
            binding: binding(&ctx),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sealed.key_version, 1);
    let opened = c
        .unseal(pb::UnsealRequest {
            keyring: "app".into(),
            ciphertext: sealed.ciphertext.clone(),
            binding: binding(&ctx),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"hello over grpc");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let via_rest = rest(
        &server,
        &token,
        "/v1/keyrings/app/unseal",
        json!({"ciphertext": b64.encode(&sealed.ciphertext), "context": {"tenant": "acme", "app": "billing"}}),
    )
    .await;
    assert_eq!(via_rest["plaintext"], b64.encode(b"hello over grpc"));

    // Another context: INVALID_ARGUMENT with the API's code; aad and context together too.
    let e = c
        .unseal(pb::UnsealRequest {
            keyring: "app".into(),
            ciphertext: sealed.ciphertext.clone(),
            binding: binding(&[("tenant", "other")]),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), code_of(&e)),
        (Code::InvalidArgument, "cannot_open")
    );
    let e = c
        .seal(pb::SealRequest {
            keyring: "app".into(),
            plaintext: b"x".to_vec(),
            binding: Some(pb::Binding {
                aad: b"a".to_vec(),
                context: [("k".to_owned(), "v".to_owned())].into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "malformed");
    let e = c
        .seal(pb::SealRequest {
            keyring: "nope".into(),
            plaintext: b"x".to_vec(),
            binding: None,
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), code_of(&e)), (Code::NotFound, "not_found"));

    // Rewrap after a rotation; batches with an item that fails on its own.
    rest(&server, &token, "/v1/keyrings/app/rotate", json!({})).await;
    let re = c
        .rewrap(pb::UnsealRequest {
            keyring: "app".into(),
            ciphertext: sealed.ciphertext.clone(),
            binding: binding(&ctx),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(re.key_version, 2);
    let batch = c
        .seal_batch(pb::SealBatchRequest {
            keyring: "app".into(),
            items: vec![
                pb::SealItem {
                    plaintext: b"a".to_vec(),
                    binding: None,
                },
                pb::SealItem {
                    plaintext: b"b".to_vec(),
                    binding: binding(&[("", "empty key")]),
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::seal_result::Result::Ok(first)) = &batch.results[0].result else {
        panic!("{batch:?}");
    };
    let Some(pb::seal_result::Result::Error(err)) = &batch.results[1].result else {
        panic!("{batch:?}");
    };
    assert_eq!(err.code, "malformed");
    let opened = c
        .unseal_batch(pb::UnsealBatchRequest {
            keyring: "app".into(),
            items: vec![pb::UnsealItem {
                ciphertext: first.ciphertext.clone(),
                binding: None,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(&opened.results[0].result, Some(pb::unseal_result::Result::Ok(u)) if u.plaintext == b"a")
    );

    // A data key: the sealed copy unseals to the same key.
    let dk = c
        .generate_data_key(pb::DataKeyRequest {
            keyring: "app".into(),
            binding: binding(&[("file", "f")]),
            without_plaintext: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dk.plaintext.len(), 32);
    let again = c
        .unseal(pb::UnsealRequest {
            keyring: "app".into(),
            ciphertext: dk.ciphertext,
            binding: binding(&[("file", "f")]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.plaintext, dk.plaintext);

    // Ed25519 and HMAC.
    rest(
        &server,
        &token,
        "/v1/keyrings",
        json!({"name": "fw", "algorithm": "ed25519"}),
    )
    .await;
    rest(
        &server,
        &token,
        "/v1/keyrings",
        json!({"name": "tags", "algorithm": "hmac-sha256"}),
    )
    .await;
    let sig = c
        .sign(pb::SignRequest {
            keyring: "fw".into(),
            message: b"image".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sig.signature.len(), 64);
    for (message, valid) in [(&b"image"[..], true), (&b"imagf"[..], false)] {
        let v = c
            .verify(pb::VerifyRequest {
                keyring: "fw".into(),
                message: message.to_vec(),
                signature: sig.signature.clone(),
                key_version: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.valid, valid);
    }
    let tag = c
        .mac(pb::SignRequest {
            keyring: "tags".into(),
            message: b"m".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let v = c
        .verify_mac(pb::VerifyRequest {
            keyring: "tags".into(),
            message: b"m".to_vec(),
            signature: tag.signature,
            key_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid);
    let e = c
        .seal(pb::SealRequest {
            keyring: "fw".into(),
            plaintext: b"x".to_vec(),
            binding: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), code_of(&e)),
        (Code::FailedPrecondition, "wrong_key_type")
    );

    // The same metrics as REST: the keyring's seal count, and the gRPC routes.
    let m = common::get(server.port, "/metrics").unwrap();
    for want in [
        "fleetkey_seal_items_total{keyring=\"app\",result=\"ok\"} 2",
        "fleetkey_seal_items_total{keyring=\"app\",result=\"malformed\"} 2",
        "fleetkey_datakeys_total{keyring=\"app\",result=\"ok\"} 1",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    assert!(m.contains("route=\"grpc:/fleetkey.v1.Crypto/Seal\""), "{m}");
    assert!(server.stop().success());
}

#[tokio::test]
async fn refusals_streams_and_reflection() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("FLEETKEY_MAX_BODY_BYTES", (1024 * 1024).to_string())],
    );
    let token = Server::admin_token(dir.path());
    rest(&server, &token, "/v1/keyrings", json!({"name": "big"})).await;

    // No token, a token that does not exist, a token without the scope.
    for t in ["", "fk_tok_nothing"] {
        let e = client(&server, t)
            .await
            .seal(pb::SealRequest {
                keyring: "big".into(),
                plaintext: b"x".to_vec(),
                binding: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), code_of(&e)),
            (Code::Unauthenticated, "unauthenticated")
        );
        assert!(!e.message().contains("fk_tok_nothing"));
    }
    let narrow = rest(
        &server,
        &token,
        "/v1/tokens",
        json!({"name": "ro", "scopes": ["unseal:big"]}),
    )
    .await;
    let narrow = narrow["token"].as_str().unwrap().to_owned();
    let e = client(&server, &narrow)
        .await
        .seal(pb::SealRequest {
            keyring: "big".into(),
            plaintext: b"x".to_vec(),
            binding: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), code_of(&e)),
        (Code::PermissionDenied, "forbidden")
    );

    // A message over the body limit is refused before it is decoded.
    let e = client(&server, &token)
        .await
        .seal(pb::SealRequest {
            keyring: "big".into(),
            plaintext: vec![0; 2 * 1024 * 1024],
            binding: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");

    // 300 KB sealed as it streams (odd chunk sizes), opened by the CLI.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut msgs = vec![pb::SealStreamRequest {
        keyring: "big".into(),
        binding: binding(&[("file", "backup.tar")]),
        data: payload[..1000].to_vec(),
    }];
    for c in payload[1000..].chunks(7_777) {
        msgs.push(pb::SealStreamRequest {
            keyring: String::new(),
            binding: None,
            data: c.to_vec(),
        });
    }
    let mut out = client(&server, &token)
        .await
        .seal_stream(futures_util::stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let mut envelope = Vec::new();
    while let Some(m) = out.message().await.unwrap() {
        envelope.extend_from_slice(&m.chunk);
    }
    let (h, _) = fleetkey_crypto::envelope::Header::parse(&envelope).unwrap();
    assert!(matches!(
        h.body,
        fleetkey_crypto::envelope::Body::Wrapped { .. }
    ));
    std::fs::write(dir.path().join("backup.fk"), &envelope).unwrap();
    let opened = assert_cmd::Command::cargo_bin("fleetkey")
        .unwrap()
        .env("FLEETKEY_ADDR", server.addr())
        .env("FLEETKEY_TOKEN", &token)
        .args([
            "unseal",
            "--keyring",
            "big",
            "--context",
            "file=backup.tar",
            "-i",
        ])
        .arg(dir.path().join("backup.fk"))
        .assert()
        .success();
    assert!(
        opened.get_output().stdout == payload,
        "the streamed envelope does not open to the payload"
    );
    // Only the first message names the keyring.
    let mut bad = client(&server, &token)
        .await
        .seal_stream(futures_util::stream::iter(vec![
            pb::SealStreamRequest {
                keyring: "big".into(),
                binding: None,
                data: vec![1],
            },
            pb::SealStreamRequest {
                keyring: "big".into(),
                binding: None,
                data: vec![2],
            },
        ]))
        .await
        .unwrap()
        .into_inner();
    let mut refused = None;
    loop {
        match bad.message().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(refused.map(|e| e.code()), Some(Code::InvalidArgument));

    // Server reflection lists the service.
    use tonic_reflection_client::*;
    let services = list_services(server.grpc_port).await;
    assert!(
        services.contains(&"fleetkey.v1.Crypto".to_owned()),
        "{services:?}"
    );
    assert!(server.stop().success());
}

/// A minimal reflection client (the v1 protocol) on the raw gRPC codec.
mod tonic_reflection_client {
    pub async fn list_services(port: u16) -> Vec<String> {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut s = c
            .server_reflection_info(futures_util::stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = s.message().await.unwrap() {
            if let Some(MessageResponse::ListServicesResponse(l)) = m.message_response {
                out.extend(l.service.into_iter().map(|s| s.name));
            }
        }
        out
    }
}

//! OpenTelemetry traces from a real `fleetkey serve` (docs/operations.md,
//! "Traces"), received over OTLP/HTTP by a collector stand-in in the test and
//! decoded as `ExportTraceServiceRequest` protobuf: the span tree of an HTTP
//! request (store statements and custody calls beneath it), a caller's W3C
//! `traceparent` continued over REST and gRPC, a device handshake, the trace id
//! in the request's log lines, and no secret in any attribute. Without an
//! endpoint, nothing is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use fleetkey_server::api::grpc::pb;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use prost::Message as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the collector kept of one post: path, content type, body.
type Post = (String, String, Vec<u8>);

/// A collector stand-in: accepts OTLP/HTTP posts (HTTP/1.1, keep-alive) and
/// keeps each request's path, content type and body.
struct Collector {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Collector {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let kept = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || serve_posts(conn, &kept));
            }
        });
        Self { port, posts }
    }

    /// Every span received so far, with its resource's attributes.
    fn spans(&self) -> Vec<(Vec<KeyValue>, Span)> {
        let mut out = Vec::new();
        for (path, content_type, body) in self.posts.lock().unwrap().iter() {
            assert_eq!(path, "/v1/traces");
            assert_eq!(content_type, "application/x-protobuf");
            let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            for rs in req.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        out.push((resource.clone(), s));
                    }
                }
            }
        }
        out
    }
}

fn serve_posts(conn: std::net::TcpStream, kept: &Mutex<Vec<Post>>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let (mut len, mut content_type) = (0usize, String::new());
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap(),
                "content-type" => content_type = v.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        kept.lock().unwrap().push((path, content_type, body));
        w.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attrs: &[KeyValue], key: &str) -> String {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn int(attrs: &[KeyValue], key: &str) -> i64 {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(i)) => *i,
        other => panic!("{key}: {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const GRPC_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test]
async fn spans_reach_an_otlp_collector_as_a_tree() {
    let collector = Collector::start();
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            (
                "FLEETKEY_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}/", collector.port),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
            ("FLEETKEY_INSTANCE_NAME", "traced-1".into()),
        ],
    );
    let token = Server::admin_token(dir.path());
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", server.addr()))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // A keyring: a new version wrapped by custody and written to the store.
    let r = post("/v1/keyrings", serde_json::json!({"name": "traced"}))
        .await
        .unwrap();
    assert!(r.status().is_success());
    // A seal continuing the caller's trace.
    let plaintext = "c2VjcmV0LXBsYWludGV4dC1tYXJrZXI="; // "secret-plaintext-marker"
    let r = http
        .post(format!("{}/v1/keyrings/traced/seal", server.addr()))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .header("x-request-id", "traced-seal")
        .json(&serde_json::json!({"plaintext": plaintext}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // gRPC, continuing another trace from its metadata.
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut grpc = pb::crypto_client::CryptoClient::new(channel);
    let mut req = tonic::Request::new(pb::SealRequest {
        keyring: "traced".into(),
        plaintext: b"grpc".to_vec(),
        binding: None,
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{GRPC_TRACE}-{PARENT}-01").parse().unwrap(),
    );
    grpc.seal(req).await.unwrap();
    // A device handshake.
    let r = post("/v1/fleets", serde_json::json!({"name": "traced"}))
        .await
        .unwrap();
    assert!(r.status().is_success());
    let sim = fleetkey_sim::Sim::connect(
        fleetkey_sim::Endpoints {
            http: server.addr(),
            sessions: format!("127.0.0.1:{}", server.device_port),
            frames: format!("127.0.0.1:{}", server.udp_port),
        },
        &token,
        "traced",
        dir.path().join("devices"),
    )
    .await
    .unwrap();
    let mut device = sim.provision_full("traced-0").await.unwrap();
    sim.run_session(&mut device, 1).await.unwrap();

    // Batches leave every 200 ms; the rest at the graceful stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !collector
            .spans()
            .iter()
            .any(|(_, s)| s.name == "device.handshake")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_file = dir.path().join(format!("serve-{}.log", server.port));
    assert!(server.stop().success());
    let spans = collector.spans();
    assert!(!spans.is_empty(), "no span arrived");

    // The resource names the service and this instance.
    let (resource, _) = &spans[0];
    assert_eq!(text(resource, "service.name"), "fleetkey");
    assert_eq!(text(resource, "service.instance.id"), "traced-1");
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let children = |parent: &Span| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
            .collect()
    };

    // The keyring's creation: a server span named by its route, with the
    // custody wrap and store statements beneath it.
    let create = named("POST /v1/keyrings");
    assert_eq!(create.len(), 1, "{:?}", names(&spans));
    let create = create[0];
    assert_eq!(create.kind, SpanKind::Server as i32);
    assert_eq!(text(&create.attributes, "http.route"), "/v1/keyrings");
    assert!(matches!(
        int(&create.attributes, "http.response.status_code"),
        200 | 201
    ));
    let under = descendants(&spans, create);
    let wrap = under
        .iter()
        .find(|s| s.name == "custody.wrap")
        .unwrap_or_else(|| panic!("no custody.wrap under {:?}", names_of(&under)));
    assert_eq!(wrap.kind, SpanKind::Client as i32);
    assert_eq!(text(&wrap.attributes, "custody.result"), "ok");
    let insert = under
        .iter()
        .find(|s| s.name == "INSERT keyring_versions" || s.name == "INSERT keyrings")
        .unwrap_or_else(|| panic!("no INSERT under {:?}", names_of(&under)));
    assert_eq!(insert.kind, SpanKind::Client as i32);
    assert_eq!(text(&insert.attributes, "db.system.name"), "sqlite");
    assert!(text(&insert.attributes, "db.query.text").contains('$'));

    // The seal continued the caller's trace.
    let seal = named("POST /v1/keyrings/{name}/seal");
    assert_eq!(seal.len(), 1);
    assert_eq!(hex(&seal[0].trace_id), TRACE);
    assert_eq!(hex(&seal[0].parent_span_id), PARENT);
    assert_eq!(text(&seal[0].attributes, "request_id"), "traced-seal");

    // gRPC: one span per call, with its status code, in the caller's trace.
    let call = named("fleetkey.v1.Crypto/Seal");
    assert_eq!(call.len(), 1, "{:?}", names(&spans));
    assert_eq!(hex(&call[0].trace_id), GRPC_TRACE);
    assert_eq!(hex(&call[0].parent_span_id), PARENT);
    assert_eq!(call[0].kind, SpanKind::Server as i32);
    assert_eq!(text(&call[0].attributes, "rpc.system"), "grpc");
    assert_eq!(int(&call[0].attributes, "rpc.grpc.status_code"), 0);

    // The device handshake, with the device lookup beneath it.
    let hs = named("device.handshake");
    assert_eq!(hs.len(), 1);
    assert_eq!(text(&hs[0].attributes, "device.session.result"), "ok");
    assert_eq!(text(&hs[0].attributes, "noise.pattern"), "IK");
    assert!(
        children(hs[0]).iter().any(|s| s.name.starts_with("SELECT")),
        "{:?}",
        names_of(&children(hs[0]))
    );

    // No secret in any span: not the token, not the plaintext.
    let all = format!("{spans:?}");
    assert!(!all.contains(&token));
    assert!(!all.contains("secret-plaintext-marker") && !all.contains(plaintext));

    // The seal's log lines carry its trace id.
    let log = std::fs::read_to_string(&log_file).unwrap();
    let access = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["request_id"] == "traced-seal" && l["message"] == "request")
        .unwrap_or_else(|| panic!("no access line for the seal in {log}"));
    assert_eq!(access["span"]["trace_id"], TRACE, "{access}");
}

fn descendants<'a>(spans: &'a [Span], root: &Span) -> Vec<&'a Span> {
    let mut out: Vec<&Span> = Vec::new();
    let mut frontier = vec![root.span_id.clone()];
    while let Some(id) = frontier.pop() {
        for s in spans
            .iter()
            .filter(|s| s.parent_span_id == id && s.trace_id == root.trace_id)
        {
            frontier.push(s.span_id.clone());
            out.push(s);
        }
    }
    out
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

fn names_of<'a>(spans: &[&'a Span]) -> Vec<&'a str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn nothing_is_sent_without_an_endpoint() {
    let collector = Collector::start();
    let dir = tempfile::TempDir::new().unwrap();
    // The collector's address in the SDK's own variables changes nothing: only
    // otlp_endpoint turns traces on.
    let server = Server::start_with(
        dir.path(),
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", collector.port),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    );
    assert!(
        common::get(server.port, "/healthz")
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    assert!(server.stop().success());
    assert!(collector.posts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_callers_trace_is_not_continued_when_parents_are_not_accepted() {
    let collector = Collector::start();
    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            (
                "FLEETKEY_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", collector.port),
            ),
            ("FLEETKEY_TRACE_ACCEPT_PARENT", "false".into()),
        ],
    );
    let token = Server::admin_token(dir.path());
    let r = reqwest::Client::new()
        .get(format!("{}/v1/keyrings", server.addr()))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(server.stop().success());
    let spans: Vec<Span> = collector.spans().into_iter().map(|(_, s)| s).collect();
    let list: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "GET /v1/keyrings")
        .collect();
    assert_eq!(list.len(), 1, "{:?}", names(&spans));
    assert_ne!(hex(&list[0].trace_id), TRACE);
    assert!(list[0].parent_span_id.is_empty());
}

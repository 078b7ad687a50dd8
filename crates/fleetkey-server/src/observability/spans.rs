//! The spans fleetkey makes, in one place: their names, kinds and fields
//! (OpenTelemetry semantic conventions where one applies), how a caller's trace
//! context is read, and how a span's trace id reaches the log lines under it.
//!
//! | span | name | kind | level |
//! |---|---|---|---|
//! | HTTP request | `<METHOD> <route template>` | server | info |
//! | gRPC call | `fleetkey.v1.Crypto/<Method>` | server | info |
//! | device handshake | `device.handshake` | server | info |
//! | store statement | `<OPERATION> <table>` | client | debug |
//! | custody call | `custody.<operation>` | client | debug |
//!
//! No field carries a secret: tokens appear by id, statements as their text
//! with placeholders (never the bound values), keys by their public prefix.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The span of one HTTP request (made when its head arrives; named with its
/// route template by [`http_route`] once routing matched it).
pub fn http_request(req: &axum::http::Request<axum::body::Body>) -> Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        token = Empty,
        trace_id = Empty,
        otel.name = Empty,
        otel.kind = "server",
        http.route = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    continue_trace(&span, &Headers(req.headers()));
    span
}

/// Names the current request's span after its route (`POST
/// /v1/keyrings/{name}/seal`) and writes its trace id into it, so the log lines
/// under it carry the id. Called once routing matched.
pub fn http_route(method: &str, route: &str) {
    if !super::exporting() {
        return;
    }
    let span = Span::current();
    span.record("http.route", route);
    span.record("otel.name", format!("{method} {route}"));
    record_trace_id(&span);
}

/// Records the answer's status on the current request's span (a server error
/// marks the span as failed).
pub fn http_status(status: axum::http::StatusCode) {
    if !super::exporting() {
        return;
    }
    let span = Span::current();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one gRPC call (`route`: `grpc:/fleetkey.v1.Crypto/Seal`),
/// continuing the caller's trace from its `traceparent` metadata.
pub fn grpc_call(route: &'static str, metadata: &tonic::metadata::MetadataMap) -> Span {
    let path = route.strip_prefix("grpc:/").unwrap_or(route);
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        otel.status_code = Empty,
        token = Empty,
        trace_id = Empty,
    );
    continue_trace(&span, &Metadata(metadata));
    record_trace_id(&span);
    span
}

/// Records a finished gRPC call's status code on `span` (codes that stand for
/// server errors mark it failed).
pub fn grpc_status(span: &Span, code: tonic::Code, server_error: bool) {
    if !super::exporting() {
        return;
    }
    span.record("rpc.grpc.status_code", code as i64);
    if server_error {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one device handshake on the Noise listener, up to the session
/// being admitted or refused (`device.session.result`: `ok`, `refused`,
/// `pattern_refused`, `timeout`, `failed`, …).
pub fn device_handshake(peer: std::net::SocketAddr) -> Span {
    let span = tracing::info_span!(
        "device.handshake",
        otel.kind = "server",
        network.peer.address = %peer.ip(),
        network.transport = "tcp",
        noise.pattern = Empty,
        device.id = Empty,
        device.session.result = Empty,
        otel.status_code = Empty,
        trace_id = Empty,
    );
    record_trace_id(&span);
    span
}

/// Records how a handshake ended on its span.
pub fn handshake_result(span: &Span, pattern: &str, result: &str, device: Option<&str>) {
    if !super::exporting() {
        return;
    }
    span.record("noise.pattern", pattern);
    span.record("device.session.result", result);
    if let Some(d) = device {
        span.record("device.id", d);
    }
    if result != "ok" {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one store statement (`system`: `sqlite`, `postgresql`): named
/// `<OPERATION> <table>`, with the statement's text (placeholders only).
pub fn store_statement(system: &'static str, sql: &str) -> Span {
    tracing::debug_span!(
        "store",
        otel.name = %statement_summary(sql),
        otel.kind = "client",
        db.system.name = system,
        db.query.text = sql,
    )
}

/// The span of one custody call (`custody.wrap`, `custody.unwrap`, …).
pub fn custody_call(backend: &'static str, operation: &'static str) -> Span {
    tracing::debug_span!(
        "custody",
        otel.name = %format_args!("custody.{operation}"),
        otel.kind = "client",
        custody.backend = backend,
        custody.operation = operation,
        custody.result = Empty,
        otel.status_code = Empty,
    )
}

/// Records a custody call's result (`ok`, `refused`, `unavailable`, `error`).
pub fn custody_result(span: &Span, result: &'static str) {
    if !super::exporting() {
        return;
    }
    span.record("custody.result", result);
    if result != "ok" && result != "refused" {
        span.record("otel.status_code", "ERROR");
    }
}

/// `SELECT devices`, `INSERT audit_log`, `WITH`: the statement's operation and
/// the table it names first, as OpenTelemetry's database conventions name spans.
pub fn statement_summary(sql: &str) -> String {
    let mut words = sql.split_whitespace();
    let Some(op) = words.next() else {
        return "statement".into();
    };
    let op = op.to_ascii_uppercase();
    let after = |w: &str| {
        sql.split_whitespace()
            .skip_while(|x| !x.eq_ignore_ascii_case(w))
            .nth(1)
    };
    let table = match op.as_str() {
        "SELECT" | "DELETE" => after("FROM"),
        "INSERT" => after("INTO"),
        "UPDATE" => words.next(),
        _ => None,
    };
    match table {
        Some(t) => {
            let t: String = t
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            format!("{op} {t}")
        }
        None => op,
    }
}

/// Makes `span` a child of the caller's span when the carrier holds a valid W3C
/// `traceparent` and `trace_accept_parent` allows it (before the span starts).
fn continue_trace(span: &Span, carrier: &dyn Extractor) {
    if !super::accepts_parent() || carrier.get("traceparent").is_none() {
        return;
    }
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Writes the trace id of `span` into its `trace_id` field when the trace is
/// sampled (so an id in a log line is one the collector has). Starts the span's
/// export record: its name must be final by then.
fn record_trace_id(span: &Span) {
    if !super::exporting() {
        return;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() && sc.is_sampled() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
    }
}

/// HTTP headers as a trace-context carrier.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// gRPC metadata as a trace-context carrier.
struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::statement_summary;

    #[test]
    fn statements_are_named_by_operation_and_first_table() {
        for (sql, name) in [
            ("SELECT id FROM devices WHERE fleet = $1", "SELECT devices"),
            (
                "insert into audit_log (seq, entry) VALUES ($1, $2)",
                "INSERT audit_log",
            ),
            ("UPDATE keyrings SET policy = $1", "UPDATE keyrings"),
            ("DELETE FROM tokens WHERE id = $1", "DELETE tokens"),
            ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
            ("SELECT 1", "SELECT"),
            ("SELECT count(*) FROM devices, fleets", "SELECT devices"),
            ("", "statement"),
        ] {
            assert_eq!(statement_summary(sql), name, "{sql}");
        }
    }
}

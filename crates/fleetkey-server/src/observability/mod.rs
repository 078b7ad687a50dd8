//! Logs and traces for `fleetkey serve`.
//!
//! One `tracing` subscriber carries both: log lines (human on a terminal, JSON
//! otherwise; `RUST_LOG` filters, default `info`) and, when `otlp_endpoint` is
//! set, OpenTelemetry spans exported over OTLP/HTTP (protobuf) by the SDK's
//! batch processor on a thread of its own. Each output has its own filter: the
//! store and custody spans are `debug` so that, with traces off, they cost a
//! disabled call site and nothing more, while the trace export takes every
//! fleetkey span (and warnings, as span events) whatever `RUST_LOG` says.
//!
//! Which spans exist and what they carry is in [`spans`] and
//! docs/operations.md, "Traces".

pub mod spans;

use crate::config::{Config, LogFormat, ServiceUrl};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Whether spans are exported (an OTLP endpoint was configured).
static EXPORTING: AtomicBool = AtomicBool::new(false);
/// Whether a caller's `traceparent` continues its trace (`trace_accept_parent`).
static ACCEPT_PARENT: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported by this process.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether incoming trace context is honoured (exporting, and allowed).
pub(crate) fn accepts_parent() -> bool {
    exporting() && ACCEPT_PARENT.load(Ordering::Relaxed)
}

/// The trace export, kept for the life of the process: [`Tracing::shutdown`]
/// sends what is still queued.
#[must_use = "dropping it stops the trace export; call shutdown at exit"]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Tracing {
    /// Sends the spans still queued (waiting for the collector up to the export
    /// timeout) and stops the exporter. Call it outside the async runtime.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(p) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "the trace export did not finish");
            }
        }
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The collector's address for traces: `<endpoint>/v1/traces`.
pub fn traces_url(endpoint: &ServiceUrl) -> String {
    format!("{}/v1/traces", endpoint.expose().trim_end_matches('/'))
}

/// Sets up logging and, when `config.otlp_endpoint` is set, the trace export
/// (the sampler, the resource naming this instance, W3C trace context).
/// Call once per process, before the async runtime starts (the exporter's
/// blocking HTTP client must not be made inside it); a second call changes
/// nothing. An exporter that cannot be built is an error: asked for traces, the
/// server does not start without them.
pub fn init(config: &Config) -> Result<Tracing, String> {
    let provider = config
        .otlp_endpoint
        .as_ref()
        .map(|e| provider(config, e))
        .transpose()?;
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(!json && std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("fleetkey"))
            .with_location(false)
            .with_threads(false)
            // A span's export record starts when its first child does (or its
            // trace id is read), not when it is entered: an HTTP request's span is
            // entered before routing names it after its route.
            .with_context_activation(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.target().starts_with("fleetkey")
                    && (m.is_span() || *m.level() <= tracing::Level::WARN)
            }))
    });
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        ACCEPT_PARENT.store(config.trace_accept_parent, Ordering::Relaxed);
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(Tracing {
        provider: provider.filter(|_| installed),
    })
}

/// The tracer provider: OTLP/HTTP protobuf to `endpoint`, batched, sampled by
/// the parent's decision or else `trace_sample_ratio` of trace ids.
fn provider(config: &Config, endpoint: &ServiceUrl) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("otlp_endpoint {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name("fleetkey")
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            opentelemetry::KeyValue::new("service.instance.id", config.instance_name.clone()),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.trace_sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

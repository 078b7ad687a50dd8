//! gRPC (`proto/fleetkey/v1/crypto.proto`, docs/grpc.md): the hot operations of
//! keyrings — seal, unseal, rewrap, data keys, sign, verify, MAC, their batches and
//! a streaming seal — for clients that prefer protobuf over HTTP/2.
//!
//! A second door to the same operations, never a second implementation: every
//! call is admitted by the admission check of every door (the token in the
//! `authorization` metadata, its scopes, expiry and revocation, the rate limits),
//! runs the same keyring operation as its REST route, is counted in the same
//! metrics (`fleetkey_seals_total`, …, and `fleetkey_http_requests_total` under
//! the route `grpc:/fleetkey.v1.Crypto/<Method>` with the gRPC status) and
//! written to the access log. Errors are the API's error codes
//! (docs/errors.md) as gRPC statuses, the code itself in the
//! `fleetkey-error-code` trailer. Served by [`crate::api::http::serve`] on its own
//! listener (`grpc_listen`), so TLS, connection caps and timeouts are REST's.

mod stream;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::keyrings::{check_batch, count, version_of};
use super::middleware::{Finished, Refusal, admit, record_request};
use crate::tokens::Principal;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

/// The generated messages and service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("fleetkey.v1");
    /// The descriptor set, for server reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("fleetkey_descriptor");
}

use pb::crypto_server::{Crypto, CryptoServer};

/// The gRPC status an API error maps to (docs/errors.md), with its code in the
/// `fleetkey-error-code` trailer and `retry-after` where the REST answer has it.
pub fn status(e: &ApiError) -> Status {
    use tonic::Code;
    let code = match super::error_codes::find(e.detail.code).map_or("UNKNOWN", |c| c.grpc) {
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "NOT_FOUND" => Code::NotFound,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "UNAVAILABLE" => Code::Unavailable,
        _ => Code::Unknown,
    };
    let mut s = Status::new(code, e.detail.message.clone());
    if let Ok(v) = e.detail.code.parse() {
        s.metadata_mut().insert("fleetkey-error-code", v);
    }
    if e.status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        s.metadata_mut().insert(
            "retry-after",
            tonic::metadata::MetadataValue::from_static("1"),
        );
    }
    s
}

/// The HTTP status a gRPC error stands for: its API error code's (the
/// `fleetkey-error-code` trailer), else by its gRPC code.
fn http_equivalent(s: &Status) -> axum::http::StatusCode {
    use axum::http::StatusCode as H;
    let by_code = s
        .metadata()
        .get("fleetkey-error-code")
        .and_then(|v| v.to_str().ok())
        .and_then(super::error_codes::find)
        .and_then(|c| H::from_u16(c.http).ok());
    by_code.unwrap_or(match s.code() {
        tonic::Code::Ok => H::OK,
        tonic::Code::ResourceExhausted => H::TOO_MANY_REQUESTS,
        tonic::Code::Unavailable => H::SERVICE_UNAVAILABLE,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => H::BAD_REQUEST,
        tonic::Code::Unauthenticated => H::UNAUTHORIZED,
        tonic::Code::PermissionDenied => H::FORBIDDEN,
        tonic::Code::NotFound => H::NOT_FOUND,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::Aborted => {
            H::CONFLICT
        }
        tonic::Code::DeadlineExceeded => H::REQUEST_TIMEOUT,
        tonic::Code::Unimplemented => H::NOT_IMPLEMENTED,
        _ => H::INTERNAL_SERVER_ERROR,
    })
}

/// The metric label of a gRPC code: its number, without allocating.
fn grpc_code_label(code: tonic::Code) -> &'static str {
    const LABELS: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    LABELS.get(code as usize).copied().unwrap_or("2")
}

fn limited(st: &AppState, l: super::ratelimit::Limited) -> Status {
    st.metrics.rate_limited.with_label_values(&[l.scope]).inc();
    let mut s = status(&ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "{} rate limit: limit of {} requests per second reached; retry after {} s",
            l.scope, l.limit, l.retry_after_secs
        ),
    ));
    if let Ok(v) = l.retry_after_secs.to_string().parse() {
        s.metadata_mut().insert("retry-after", v);
    }
    s
}

/// The gRPC service over the application state.
pub struct CryptoService {
    st: Arc<AppState>,
}

/// The gRPC routes (the service and server reflection) as an axum router, with
/// messages bounded by `max_message_bytes` (the REST body limit).
pub fn router(st: Arc<AppState>, max_message_bytes: usize) -> axum::Router {
    let crypto = CryptoServer::new(CryptoService { st })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes.saturating_mul(2));
    let mut routes = tonic::service::Routes::new(crypto);
    match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
        .build_v1()
    {
        Ok(reflection) => routes = routes.add_service(reflection),
        Err(e) => tracing::warn!(error = %e, "gRPC reflection unavailable"),
    }
    routes.into_axum_router()
}

fn binding(b: Option<&pb::Binding>) -> ApiResult<Vec<u8>> {
    match b {
        None => Ok(Vec::new()),
        Some(b) if !b.aad.is_empty() && !b.context.is_empty() => Err(ApiError::malformed(
            "give aad or context, not both (a context is encoded as the aad)",
        )),
        Some(b) if !b.context.is_empty() => {
            let c: std::collections::BTreeMap<_, _> = b.context.clone().into_iter().collect();
            fleetkey_crypto::envelope::context::encode(&c)
                .map_err(|e| ApiError::malformed(format!("context: {e}")))
        }
        Some(b) => Ok(b.aad.clone()),
    }
}

fn item_error(e: &ApiError) -> pb::ItemError {
    pb::ItemError {
        code: e.detail.code.to_owned(),
        message: e.detail.message.clone(),
    }
}

impl CryptoService {
    /// Admits a call (token, scopes come later, rate limits) and runs `f` with
    /// the principal, recording the call like a REST request.
    async fn call<T, O, F, Fut>(
        &self,
        method: &'static str,
        req: Request<T>,
        f: F,
    ) -> Result<Response<O>, Status>
    where
        F: FnOnce(Principal, T) -> Fut,
        Fut: Future<Output = Result<O, Status>>,
    {
        let start = Instant::now();
        let span = crate::observability::spans::grpc_call(method, req.metadata());
        let call = async {
            match self.admitted(&req).await {
                Ok(p) => {
                    let token = p.token_id.clone();
                    (f(p, req.into_inner()).await, Some(token))
                }
                Err(s) => (Err(s), None),
            }
        };
        let (r, token) = call.instrument(span.clone()).await;
        let _in = span.enter();
        self.record(method, start, r.as_ref().err(), token.as_deref());
        r.map(Response::new)
    }

    async fn admitted<T>(&self, req: &Request<T>) -> Result<Principal, Status> {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        match admit(&self.st, peer, token).await {
            Ok((p, _allowance)) => Ok(p),
            Err(Refusal::Limited(l)) => Err(limited(&self.st, l)),
            Err(Refusal::Missing) => Err(status(&ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the metadata authorization: Bearer <token>",
            ))),
            Err(Refusal::Invalid(e)) => Err(status(&ApiError::from(e))),
        }
    }

    /// Counts and times the call (route `grpc:/fleetkey.v1.Crypto/<Method>`,
    /// status the gRPC code) and writes its access-log line, as REST requests are
    /// (`middleware::record_request`); the limiter sees the HTTP status the error
    /// maps to (docs/errors.md), so both doors feed it alike.
    fn record(
        &self,
        method: &'static str,
        start: Instant,
        err: Option<&Status>,
        token: Option<&str>,
    ) {
        let code = err.map_or(tonic::Code::Ok, Status::code);
        let http = err.map_or(axum::http::StatusCode::OK, http_equivalent);
        crate::observability::spans::grpc_status(
            &tracing::Span::current(),
            code,
            http.is_server_error(),
        );
        record_request(
            &self.st,
            &Finished {
                method: "GRPC",
                route: method,
                status: grpc_code_label(code),
                code: u16::try_from(code as i32).unwrap_or(2),
                http,
                secs: start.elapsed().as_secs_f64(),
                request_id: "-",
                token_id: token.unwrap_or("-"),
            },
        );
    }

    async fn ring(
        &self,
        p: &Principal,
        scope: &str,
        name: &str,
    ) -> Result<Arc<crate::keys::Keyring>, Status> {
        p.require(&format!("{scope}:{name}"))
            .map_err(|e| status(&e.into()))?;
        self.st
            .keys
            .keyring(name)
            .await
            .map_err(|e| status(&e.into()))
    }

    async fn sign_or_mac(
        &self,
        p: Principal,
        req: pb::SignRequest,
        mac: bool,
    ) -> Result<pb::SignResponse, Status> {
        let ring = self
            .ring(&p, if mac { "mac" } else { "sign" }, &req.keyring)
            .await?;
        let msg = crate::keys::Signable::Message(&req.message);
        let r = if mac {
            ring.mac(msg).await
        } else {
            ring.sign(msg).await
        }
        .map_err(ApiError::from);
        let which = if mac {
            &self.st.metrics.macs
        } else {
            &self.st.metrics.signs
        };
        count(&self.st, which, &req.keyring, r.as_ref().map(|_| ()));
        let s = r.map_err(|e| status(&e))?;
        Ok(pb::SignResponse {
            signature: s.signature,
            key_version: s.version,
        })
    }

    async fn check(
        &self,
        p: Principal,
        req: pb::VerifyRequest,
        mac: bool,
    ) -> Result<pb::VerifyResponse, Status> {
        let ring = self
            .ring(&p, if mac { "mac" } else { "verify" }, &req.keyring)
            .await?;
        let version = (req.key_version != 0).then_some(req.key_version);
        let msg = crate::keys::Signable::Message(&req.message);
        let r = if mac {
            ring.verify_mac(msg, &req.signature, version).await
        } else {
            ring.verify(msg, &req.signature, version).await
        }
        .map_err(ApiError::from);
        let which = if mac {
            &self.st.metrics.mac_verifies
        } else {
            &self.st.metrics.verifies
        };
        count(&self.st, which, &req.keyring, r.as_ref().map(|_| ()));
        let v = r.map_err(|e| status(&e))?;
        Ok(pb::VerifyResponse {
            valid: v.is_some(),
            key_version: v.unwrap_or(0),
        })
    }

    async fn seal_one(
        ring: &crate::keys::Keyring,
        item: &pb::SealItem,
    ) -> ApiResult<pb::SealResponse> {
        let pt = zeroize::Zeroizing::new(item.plaintext.clone());
        let aad = binding(item.binding.as_ref())?;
        let env = ring.seal(&pt, &aad).await?;
        Ok(pb::SealResponse {
            key_version: version_of(&env),
            ciphertext: env,
        })
    }

    async fn unseal_one(
        ring: &crate::keys::Keyring,
        item: &pb::UnsealItem,
    ) -> ApiResult<pb::UnsealResponse> {
        let aad = binding(item.binding.as_ref())?;
        let pt = ring.unseal(&item.ciphertext, &aad).await?;
        Ok(pb::UnsealResponse { plaintext: pt })
    }

    async fn rewrap_many(
        &self,
        p: &Principal,
        name: &str,
        items: &[pb::UnsealItem],
    ) -> ApiResult<Vec<ApiResult<pb::SealResponse>>> {
        p.require(&format!("rewrap:{name}"))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let aad = match binding(item.binding.as_ref()) {
                Ok(a) => a,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let r = self
                .st
                .keys
                .rewrap(
                    &p.actor(),
                    name,
                    std::slice::from_ref(&item.ciphertext),
                    &aad,
                )
                .await
                .map_err(|e| super::change_err(&self.st, e));
            out.push(match r {
                Ok(mut v) => match v.pop() {
                    Some(Ok(env)) => Ok(pb::SealResponse {
                        key_version: version_of(&env),
                        ciphertext: env,
                    }),
                    Some(Err(e)) => Err(ApiError::from(e)),
                    None => Err(ApiError::malformed("empty rewrap")),
                },
                Err(e) => Err(e),
            });
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl Crypto for CryptoService {
    async fn seal(
        &self,
        req: Request<pb::SealRequest>,
    ) -> Result<Response<pb::SealResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/Seal", req, |p, r| async move {
            let ring = self.ring(&p, "seal", &r.keyring).await?;
            let item = pb::SealItem {
                plaintext: r.plaintext,
                binding: r.binding,
            };
            let out = Self::seal_one(&ring, &item).await;
            count(
                &self.st,
                &self.st.metrics.seals,
                &r.keyring,
                out.as_ref().map(|_| ()),
            );
            out.map_err(|e| status(&e))
        })
        .await
    }

    async fn unseal(
        &self,
        req: Request<pb::UnsealRequest>,
    ) -> Result<Response<pb::UnsealResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/Unseal", req, |p, r| async move {
            let ring = self.ring(&p, "unseal", &r.keyring).await?;
            let item = pb::UnsealItem {
                ciphertext: r.ciphertext,
                binding: r.binding,
            };
            let out = Self::unseal_one(&ring, &item).await;
            count(
                &self.st,
                &self.st.metrics.unseals,
                &r.keyring,
                out.as_ref().map(|_| ()),
            );
            out.map_err(|e| status(&e))
        })
        .await
    }

    async fn rewrap(
        &self,
        req: Request<pb::UnsealRequest>,
    ) -> Result<Response<pb::SealResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/Rewrap", req, |p, r| async move {
            let item = pb::UnsealItem {
                ciphertext: r.ciphertext,
                binding: r.binding,
            };
            match self
                .rewrap_many(&p, &r.keyring, std::slice::from_ref(&item))
                .await
            {
                Ok(mut v) => v
                    .pop()
                    .unwrap_or_else(|| Err(ApiError::malformed("empty rewrap"))),
                Err(e) => Err(e),
            }
            .map_err(|e| status(&e))
        })
        .await
    }

    async fn seal_batch(
        &self,
        req: Request<pb::SealBatchRequest>,
    ) -> Result<Response<pb::SealBatchResponse>, Status> {
        self.call(
            "grpc:/fleetkey.v1.Crypto/SealBatch",
            req,
            |p, r| async move {
                let ring = self.ring(&p, "seal", &r.keyring).await?;
                check_batch(&self.st, r.items.len()).map_err(|e| status(&e))?;
                let mut results = Vec::with_capacity(r.items.len());
                for item in &r.items {
                    let out = Self::seal_one(&ring, item).await;
                    count(
                        &self.st,
                        &self.st.metrics.seals,
                        &r.keyring,
                        out.as_ref().map(|_| ()),
                    );
                    results.push(pb::SealResult {
                        result: Some(match out {
                            Ok(v) => pb::seal_result::Result::Ok(v),
                            Err(e) => pb::seal_result::Result::Error(item_error(&e)),
                        }),
                    });
                }
                Ok(pb::SealBatchResponse { results })
            },
        )
        .await
    }

    async fn unseal_batch(
        &self,
        req: Request<pb::UnsealBatchRequest>,
    ) -> Result<Response<pb::UnsealBatchResponse>, Status> {
        self.call(
            "grpc:/fleetkey.v1.Crypto/UnsealBatch",
            req,
            |p, r| async move {
                let ring = self.ring(&p, "unseal", &r.keyring).await?;
                check_batch(&self.st, r.items.len()).map_err(|e| status(&e))?;
                let mut results = Vec::with_capacity(r.items.len());
                for item in &r.items {
                    let out = Self::unseal_one(&ring, item).await;
                    count(
                        &self.st,
                        &self.st.metrics.unseals,
                        &r.keyring,
                        out.as_ref().map(|_| ()),
                    );
                    results.push(pb::UnsealResult {
                        result: Some(match out {
                            Ok(v) => pb::unseal_result::Result::Ok(v),
                            Err(e) => pb::unseal_result::Result::Error(item_error(&e)),
                        }),
                    });
                }
                Ok(pb::UnsealBatchResponse { results })
            },
        )
        .await
    }

    async fn rewrap_batch(
        &self,
        req: Request<pb::UnsealBatchRequest>,
    ) -> Result<Response<pb::SealBatchResponse>, Status> {
        self.call(
            "grpc:/fleetkey.v1.Crypto/RewrapBatch",
            req,
            |p, r| async move {
                check_batch(&self.st, r.items.len()).map_err(|e| status(&e))?;
                let items = self
                    .rewrap_many(&p, &r.keyring, &r.items)
                    .await
                    .map_err(|e| status(&e))?;
                Ok(pb::SealBatchResponse {
                    results: items
                        .into_iter()
                        .map(|i| pb::SealResult {
                            result: Some(match i {
                                Ok(v) => pb::seal_result::Result::Ok(v),
                                Err(e) => pb::seal_result::Result::Error(item_error(&e)),
                            }),
                        })
                        .collect(),
                })
            },
        )
        .await
    }

    async fn generate_data_key(
        &self,
        req: Request<pb::DataKeyRequest>,
    ) -> Result<Response<pb::DataKeyResponse>, Status> {
        self.call(
            "grpc:/fleetkey.v1.Crypto/GenerateDataKey",
            req,
            |p, r| async move {
                let ring = self.ring(&p, "datakey", &r.keyring).await?;
                let aad = binding(r.binding.as_ref()).map_err(|e| status(&e))?;
                let dk = ring.data_key(&aad).await.map_err(ApiError::from);
                count(
                    &self.st,
                    &self.st.metrics.datakeys,
                    &r.keyring,
                    dk.as_ref().map(|_| ()),
                );
                let dk = dk.map_err(|e| status(&e))?;
                Ok(pb::DataKeyResponse {
                    ciphertext: dk.sealed.clone(),
                    key_version: dk.version,
                    plaintext: if r.without_plaintext {
                        Vec::new()
                    } else {
                        dk.plaintext.as_slice().to_vec()
                    },
                })
            },
        )
        .await
    }

    async fn sign(
        &self,
        req: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/Sign", req, |p, r| {
            self.sign_or_mac(p, r, false)
        })
        .await
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/Verify", req, |p, r| {
            self.check(p, r, false)
        })
        .await
    }

    async fn mac(
        &self,
        req: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/Mac", req, |p, r| {
            self.sign_or_mac(p, r, true)
        })
        .await
    }

    async fn verify_mac(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        self.call("grpc:/fleetkey.v1.Crypto/VerifyMac", req, |p, r| {
            self.check(p, r, true)
        })
        .await
    }

    type SealStreamStream = stream::Sealed;

    async fn seal_stream(
        &self,
        req: Request<tonic::Streaming<pb::SealStreamRequest>>,
    ) -> Result<Response<Self::SealStreamStream>, Status> {
        let start = Instant::now();
        let method = "grpc:/fleetkey.v1.Crypto/SealStream";
        let span = crate::observability::spans::grpc_call(method, req.metadata());
        let opened = async {
            match self.admitted(&req).await {
                Ok(p) => {
                    let r = stream::start(self, &p, req.into_inner()).await;
                    (r, Some(p.token_id))
                }
                Err(s) => (Err(s), None),
            }
        };
        let (r, token) = opened.instrument(span.clone()).await;
        let _in = span.enter();
        self.record(method, start, r.as_ref().err(), token.as_deref());
        r.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode as H;

    /// Both doors feed the limiter alike: a gRPC error stands for the HTTP status
    /// of its API error code, and only codes without one fall back to the gRPC code.
    #[test]
    fn grpc_errors_stand_for_their_http_status() {
        for (code, http) in [
            ("malformed", H::BAD_REQUEST),
            ("cannot_open", H::UNPROCESSABLE_ENTITY),
            ("wrong_key_type", H::UNPROCESSABLE_ENTITY),
            ("conflict", H::CONFLICT),
            ("rate_limited", H::TOO_MANY_REQUESTS),
            ("unavailable", H::SERVICE_UNAVAILABLE),
        ] {
            let e = ApiError::new(http, code, "x");
            assert_eq!(http_equivalent(&status(&e)), http, "{code}");
        }
        let bare = Status::new(tonic::Code::Unavailable, "x");
        assert_eq!(http_equivalent(&bare), H::SERVICE_UNAVAILABLE);
        let bare = Status::new(tonic::Code::Internal, "x");
        assert_eq!(http_equivalent(&bare), H::INTERNAL_SERVER_ERROR);
        assert_eq!(grpc_code_label(tonic::Code::Ok), "0");
        assert_eq!(grpc_code_label(tonic::Code::Unauthenticated), "16");
    }
}

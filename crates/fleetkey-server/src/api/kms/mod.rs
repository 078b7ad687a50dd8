//! The AWS KMS door (docs/migrate-from-aws-kms.md): AWS KMS's JSON 1.1 protocol
//! (`POST /`, `X-Amz-Target: TrentService.<Operation>`) on fleetkey's own
//! listener, so boto3, the AWS CLI, the AWS SDKs and the AWS Encryption SDK
//! work unmodified against fleetkey's keyrings.
//!
//! An edge like the rest of `api/`: every request is admitted by its
//! Signature Version 4 (an access key bound to a fleetkey token,
//! `tokens::aws`), then by the same rate limits as the native API; each
//! operation calls the same domain operations under the same scopes, and
//! answers in AWS's shapes (`{"__type": …, "message": …}` on failure). Changes
//! are audited with the actor `token:<id> via kms <Operation>`.
//!
//! Files: keys.rs (key ids, ARNs and aliases; metadata, creation, states,
//! rotation, tags), crypto.rs (encrypt, decrypt, re-encrypt, data keys,
//! random), sign.rs (sign, verify, public keys, MACs).

mod crypto;
mod keys;
mod sign;

use super::error::ApiError;
use super::extract::{json_value, read_body};
use super::middleware::{allowance_headers, limit, peer, set_header};
use super::{AppState, St};
use crate::tokens::Principal;
use crate::tokens::aws::Refused;
use crate::tokens::sigv4::{self, AuthError};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The content type of every request and answer.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The account id in every ARN fleetkey answers with.
pub const ACCOUNT_ID: &str = "000000000000";

/// The operations the door serves, in the order docs list them.
pub const OPERATIONS: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateRandom",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateMac",
    "VerifyMac",
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
];

/// An error in AWS's shape: `{"__type": "<Code>", "message": "…"}`.
#[derive(Debug)]
pub struct KmsError {
    /// HTTP status.
    pub status: StatusCode,
    /// AWS's error code (`NotFoundException`, …).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl KmsError {
    /// A 400 with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }
}

impl From<ApiError> for KmsError {
    /// fleetkey's codes as AWS KMS's exceptions.
    fn from(e: ApiError) -> Self {
        let code = match e.detail.code {
            "not_found" => "NotFoundException",
            "forbidden" | "unauthenticated" => "AccessDeniedException",
            "conflict" => "AlreadyExistsException",
            "keyring_disabled" => "DisabledException",
            "keyring_pending_deletion" | "keyring_deleted" => "KMSInvalidStateException",
            "cannot_open" | "revoked" | "below_minimum" | "unknown_version" => {
                "InvalidCiphertextException"
            }
            "wrong_keyring" => "IncorrectKeyException",
            "wrong_key_type" => "InvalidKeyUsageException",
            "rate_limited" => "ThrottlingException",
            "custody_unavailable" | "unavailable" => "KMSInternalException",
            "not_exportable" | "custody_unsupported" => "UnsupportedOperationException",
            _ => "ValidationException",
        };
        let status = if code == "KMSInternalException" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            code,
            message: e.detail.message,
        }
    }
}

impl From<crate::Error> for KmsError {
    fn from(e: crate::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for KmsError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            json!({ "__type": self.code, "message": self.message }).to_string(),
        )
            .into_response();
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE),
        );
        if self.status.is_server_error() {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// A handler's result.
pub type KmsResult<T> = Result<T, KmsError>;

/// One admitted request: who sent it, the region it was signed for, its body.
pub struct Call<'a> {
    /// The token behind the access key.
    pub principal: Principal,
    /// The credential scope's region (ARNs are answered in it).
    pub region: String,
    /// The request body.
    pub body: Value,
    /// The shared state.
    pub st: &'a AppState,
    /// The operation name.
    pub operation: &'static str,
}

impl Call<'_> {
    /// The audit actor of a change made by this call.
    pub fn actor(&self) -> String {
        format!("{} via kms {}", self.principal.actor(), self.operation)
    }

    /// The body read as `T` (AWS field names); unknown fields and wrong types
    /// are a `ValidationException` naming them.
    pub fn input<T: serde::de::DeserializeOwned>(&self) -> KmsResult<T> {
        T::deserialize(&self.body)
            .map_err(|e| KmsError::validation(format!("{} request: {e}", self.operation)))
    }

    /// Fails with `AccessDeniedException` unless the token has `scope`.
    pub fn require(&self, scope: &str) -> KmsResult<()> {
        self.principal.require(scope).map_err(|_| {
            KmsError::new(
                "AccessDeniedException",
                format!(
                    "{} is not authorized to perform {}: it needs the scope {scope}",
                    self.principal.token_id, self.operation
                ),
            )
        })
    }
}

fn auth_error(e: &AuthError) -> KmsError {
    KmsError {
        status: match e {
            AuthError::Missing => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        },
        code: e.code(),
        message: e.message(),
    }
}

/// `POST /`: the operation named by `X-Amz-Target`, after the request's
/// signature, token and rate limits are checked.
pub(super) async fn handle(State(st): St, req: Request) -> Response {
    let peer = peer(&req);
    let (mut parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(name) = target.strip_prefix("TrentService.") else {
        return KmsError::new(
            "UnknownOperationException",
            "send X-Amz-Target: TrentService.<Operation> (the AWS KMS API)",
        )
        .into_response();
    };
    let authorization = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let method = parts.method.as_str().to_owned();
    let gate = || match peer {
        Some(ip) => st.limits.check_source(ip),
        None => Ok(()),
    };
    let throttled = |l: super::ratelimit::Limited| {
        let body = KmsError::new(
            "ThrottlingException",
            format!("Rate exceeded: retry after {} s", l.retry_after_secs),
        );
        super::middleware::limited_as(&st, l, body.into_response())
    };
    // Signature Version 4.
    let auth = match authorization {
        None => Err(AuthError::Missing),
        Some(Err(_)) => Err(AuthError::Incomplete(
            "the Authorization header is not ASCII".into(),
        )),
        Some(Ok(h)) => sigv4::parse(&h),
    };
    let auth = match auth {
        Ok(a) => a,
        Err(e) => {
            if let Err(l) = gate() {
                return throttled(l);
            }
            refused(&st, &e, peer);
            return auth_error(&e).into_response();
        }
    };
    // The body is read only once the header is readable, and bounded by
    // `max_unauthenticated_body_bytes` (the route's limit): until its signature
    // is checked, the request is from nobody.
    // The body alone is read (with the route's limit, kept in the
    // extensions); the headers stay here for the signature.
    let mut only_body = Request::new(body);
    *only_body.extensions_mut() = std::mem::take(&mut parts.extensions);
    let bytes = match read_body(only_body, &st).await {
        Ok(b) => b,
        Err(e) => return KmsError::from(e).into_response(),
    };
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signed = sigv4::Request {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &bytes,
    };
    let principal = match st.aws.authenticate(&auth, &signed, gate).await {
        Err(l) => return throttled(l),
        Ok(Ok(p)) => p,
        Ok(Err(Refused::Auth(e))) => {
            refused(&st, &e, peer);
            return auth_error(&e).into_response();
        }
        Ok(Err(Refused::Service(e))) => return KmsError::from(e).into_response(),
    };
    let allowance = match limit(&st, &principal).await {
        Ok(a) => a,
        Err(l) => return throttled(l),
    };
    let Some(operation) = OPERATIONS.iter().copied().find(|o| *o == name) else {
        let mut r = KmsError::new(
            "UnsupportedOperationException",
            format!(
                "{} is not supported by fleetkey; supported: {}",
                name.chars().take(64).collect::<String>(),
                OPERATIONS.join(", ")
            ),
        )
        .into_response();
        allowance_headers(r.headers_mut(), &allowance);
        return r;
    };
    let body = match json_value(&bytes, true) {
        Ok(v) => v,
        Err(e) => {
            return KmsError::new("SerializationException", e.detail.message).into_response();
        }
    };
    let token_id = super::middleware::AdmittedToken(principal.token_id.clone());
    let call = Call {
        principal,
        region: auth.region.clone(),
        body,
        st: &st,
        operation,
    };
    let result = dispatch(&call).await;
    st.metrics
        .kms_operations
        .with_label_values(&[operation, result.as_ref().map_or_else(|e| e.code, |_| "ok")])
        .inc();
    let mut r = match result {
        Ok(v) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE),
            );
            r
        }
        Err(e) => e.into_response(),
    };
    allowance_headers(r.headers_mut(), &allowance);
    set_header(
        r.headers_mut(),
        "x-amzn-requestid",
        super::random_uuid().unwrap_or_default(),
    );
    r.extensions_mut().insert(token_id);
    r
}

/// Counts a refused signature: in metrics at once, and in the next audit
/// summary by AWS error code and source network.
fn refused(st: &AppState, e: &AuthError, peer: Option<std::net::IpAddr>) {
    st.metrics.kms_refusals.with_label_values(&[e.code()]).inc();
    if let Some(ip) = peer {
        st.kms_refusals.count(e.code(), ip);
    }
}

/// Writes the signature refusals counted since the last summary as one
/// `aws.signature_refused` audit entry (none when there were none), so an
/// unauthenticated client cannot grow the audit log faster than time does.
pub(super) async fn flush_refusals(st: &AppState) {
    let counts = st.kms_refusals.take();
    if counts.is_empty() {
        return;
    }
    let secs = super::refusals::SUMMARY_INTERVAL.as_secs();
    let total: u64 = counts.iter().map(|c| c.count).sum();
    let details =
        json!({ "summary": true, "interval_secs": secs, "total": total, "refusals": counts });
    if let Err(e) = st.aws.audit_refusals(details).await {
        tracing::error!(error = %e, "could not audit refused AWS signatures");
    }
}

async fn dispatch(c: &Call<'_>) -> KmsResult<Value> {
    match c.operation {
        "Encrypt" => crypto::encrypt(c).await,
        "Decrypt" => crypto::decrypt(c).await,
        "ReEncrypt" => crypto::re_encrypt(c).await,
        "GenerateDataKey" => crypto::data_key(c, true).await,
        "GenerateDataKeyWithoutPlaintext" => crypto::data_key(c, false).await,
        "GenerateDataKeyPair" => crypto::data_key_pair(c, true).await,
        "GenerateDataKeyPairWithoutPlaintext" => crypto::data_key_pair(c, false).await,
        "GenerateRandom" => crypto::random(c),
        "Sign" => sign::sign(c).await,
        "Verify" => sign::verify(c).await,
        "GetPublicKey" => sign::public_key(c).await,
        "GenerateMac" => sign::mac(c).await,
        "VerifyMac" => sign::verify_mac(c).await,
        "CreateKey" => keys::create(c).await,
        "DescribeKey" => keys::describe(c).await,
        "ListKeys" => keys::list(c).await,
        "CreateAlias" => keys::create_alias(c, false).await,
        "UpdateAlias" => keys::create_alias(c, true).await,
        "DeleteAlias" => keys::delete_alias(c).await,
        "ListAliases" => keys::list_aliases(c).await,
        "EnableKey" | "DisableKey" => keys::enable(c, c.operation == "EnableKey").await,
        "ScheduleKeyDeletion" => keys::schedule_deletion(c).await,
        "CancelKeyDeletion" => keys::cancel_deletion(c).await,
        "EnableKeyRotation" => keys::enable_rotation(c).await,
        "DisableKeyRotation" => Err(KmsError::new(
            "UnsupportedOperationException",
            "fleetkey keys always rotate (by age and by use); set the period with EnableKeyRotation",
        )),
        "GetKeyRotationStatus" => keys::rotation_status(c).await,
        "RotateKeyOnDemand" => keys::rotate(c).await,
        "TagResource" | "UntagResource" => keys::tag(c, c.operation == "TagResource").await,
        "ListResourceTags" => keys::list_tags(c).await,
        other => Err(KmsError::new(
            "UnsupportedOperationException",
            format!("{other} is not supported"),
        )),
    }
}

//! JSON errors: `{"error": {"code", "message"}}` with the right status. Internal
//! details (store messages, paths) are logged, never returned.

use crate::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error body as a client reads it.
#[derive(serde::Deserialize)]
struct ReadDetail {
    code: String,
    message: String,
}

/// A code is read as one of [`super::error_codes::ERROR_CODES`] (`unknown` for any
/// other: a newer server).
impl<'de> serde::Deserialize<'de> for ErrorDetail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d = ReadDetail::deserialize(d)?;
        Ok(Self {
            code: super::error_codes::find(&d.code).map_or("unknown", |c| c.code),
            message: d.message,
        })
    }
}

/// Machine-readable code and a human message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, one of docs/errors.md (`malformed`, `unauthenticated`,
    /// `forbidden`, `not_found`, `conflict`, `unavailable`, …).
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub detail: ErrorDetail,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            super::error_codes::find(code).is_some_and(|c| c.http == status.as_u16()),
            "error code {code} with status {status} is not in docs/errors.md's table"
        );
        Self {
            status,
            detail: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }

    /// 400 malformed.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use fleetkey_crypto::Error as C;
        let s = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            Error::KeyringNotFound(_)
            | Error::TokenNotFound(_)
            | Error::FleetNotFound(_)
            | Error::DeviceNotFound(_)
            | Error::CommandNotFound(_)
            | Error::IdentityNotFound(_)
            | Error::AliasNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            Error::KeyringExists(_)
            | Error::FleetExists(_)
            | Error::DeviceExists(_)
            | Error::DuplicateKey(_)
            | Error::RotationLost(_)
            | Error::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            Error::ChallengeRefused(_) | Error::CredentialRefused(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            Error::ClaimRefused(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "claim_refused",
                e.to_string(),
            ),
            Error::InvalidConfig { .. } => Self::new(s, "invalid_config", e.to_string()),
            Error::InvalidSchema(_) => Self::new(s, "invalid_schema", e.to_string()),
            Error::KeyRefused(..) => Self::new(s, "key_refused", e.to_string()),
            Error::ConfigMigration { .. } => Self::new(s, "migration_failed", e.to_string()),
            Error::IllegalTransition { .. }
            | Error::NoConfigSchema(_)
            | Error::ConfigRevision { .. }
            | Error::DirectoryConflict(_)
            | Error::CommandState(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            Error::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            Error::Forbidden(_) | Error::GrantNotCovered(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            Error::Invalid { .. } => Self::malformed(e.to_string()),
            Error::Revoked { .. } => Self::new(s, "revoked", e.to_string()),
            Error::BelowMinimum { .. } => Self::new(s, "below_minimum", e.to_string()),
            Error::UnknownVersion { .. } => Self::new(s, "unknown_version", e.to_string()),
            Error::WrongKeyring { .. } => Self::new(s, "wrong_keyring", e.to_string()),
            Error::WrongKeyType { .. } | Error::NoPrehash { .. } => {
                Self::new(s, "wrong_key_type", e.to_string())
            }
            Error::NotExportable(_) => Self::new(s, "not_exportable", e.to_string()),
            Error::CustodyUnsupported(_) => Self::new(s, "custody_unsupported", e.to_string()),
            Error::ImportRefused(_) => Self::new(s, "import_refused", e.to_string()),
            Error::KeyringUnusable { state, .. } => {
                use crate::store::KeyringState as K;
                let (status, code) = match state {
                    K::Deleted => (StatusCode::GONE, "keyring_deleted"),
                    K::PendingDeletion => (StatusCode::CONFLICT, "keyring_pending_deletion"),
                    K::Disabled | K::Enabled => (StatusCode::CONFLICT, "keyring_disabled"),
                };
                Self::new(status, code, e.to_string())
            }
            Error::CustodyUnavailable(_) => {
                tracing::error!(error = %e, "request failed: custody unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "custody_unavailable",
                    "custody (the HSM or KMS holding the root key) cannot be reached; retry later",
                )
            }
            Error::Envelope(C::Open) => Self::new(s, "cannot_open", C::Open.to_string()),
            Error::Envelope(inner) => Self::malformed(format!("envelope: {inner}")),
            // Listed, not `_`: a new variant must be placed by whoever adds it.
            // These are exactly the variants of Error::is_unavailable (the test
            // below checks a sample of both sides).
            Error::Database(_)
            | Error::StoreConnect { .. }
            | Error::Migration(_)
            | Error::Corrupt(_)
            | Error::Sink { .. }
            | Error::Stopping(_)
            | Error::Internal(_)
            | Error::Io { .. }
            | Error::RootKeyLocked
            | Error::CustodyConfig(_)
            | Error::Coordination(_)
            | Error::NonceExhausted(_) => {
                tracing::error!(error = %e, "request failed: service degraded");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service cannot complete this now; retry later",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unavailable = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut r = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        // 503s are transient (the store or custody is away): say when to retry.
        if unavailable {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_says_when_to_retry_and_nothing_else_does() {
        let r = ApiError::from(Error::Stopping("the server is shutting down")).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "1");
        let r = ApiError::malformed("x").into_response();
        assert!(!r.headers().contains_key(axum::http::header::RETRY_AFTER));
    }

    #[test]
    fn custody_that_does_not_answer_is_503_with_its_own_code() {
        let e = Error::CustodyUnavailable("pkcs11 decrypt: token 10.0.0.9 removed".into());
        assert!(e.is_unavailable());
        let r = ApiError::from(e);
        assert_eq!(
            (r.status, r.detail.code),
            (StatusCode::SERVICE_UNAVAILABLE, "custody_unavailable")
        );
        assert!(!r.detail.message.contains("10.0.0.9"));
        let r = r.into_response();
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "1");
    }

    #[test]
    fn faults_of_the_service_are_503_and_say_nothing_of_their_cause() {
        let db = Error::Database(std::sync::Arc::new(sqlx::Error::PoolTimedOut));
        let faults = [
            db,
            Error::Corrupt("stored key is not 32 bytes".into()),
            Error::Sink {
                sink: "mqtt",
                why: "broker 10.0.0.5: refused".into(),
            },
            Error::Stopping("the server is shutting down"),
            Error::Internal("custody round trip failed".into()),
            Error::NonceExhausted("k".into()),
        ];
        for e in faults {
            assert!(e.is_unavailable(), "{e}");
            let a = ApiError::from(e);
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(a.detail.code, "unavailable");
            assert!(!a.detail.message.contains("10.0.0.5") && !a.detail.message.contains("32"));
        }
        for e in [
            Error::KeyringNotFound("k".into()),
            Error::DuplicateKey("x25519"),
            Error::Unauthenticated,
        ] {
            assert!(!e.is_unavailable(), "{e}");
            assert_ne!(ApiError::from(e).status, StatusCode::SERVICE_UNAVAILABLE);
        }
    }
}

//! The HTTP API in process (router + `oneshot`) with an admin token, on a
//! temporary data directory: for the tests that call routes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleetkey_crypto::keyfile::SymmetricKeyFile;
use fleetkey_server::{
    api::{self, server},
    clock::SystemClock,
    config::Config,
    custody::local::{KekSource, LocalCustody},
    keys::{KeyConfig, KeyService},
    tokens::TokenService,
};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// The router, the token service, and an admin token.
pub struct Api {
    pub dir: tempfile::TempDir,
    pub app: axum::Router,
    pub tokens: Arc<TokenService>,
    pub admin: String,
    /// The store and custody under the router (for tests that look beneath it).
    pub store: Arc<dyn fleetkey_server::store::Store>,
    pub custody: Arc<LocalCustody>,
}

pub async fn api_with(config: Config) -> Api {
    let dir = tempfile::TempDir::new().unwrap();
    let kek = SymmetricKeyFile::generate(
        fleetkey_crypto::aead::Algorithm::Aes256Gcm,
        fleetkey_crypto::envelope::KeyId::new("kek").unwrap(),
    )
    .unwrap();
    fleetkey_server::secret_file::write(
        &dir.path().join("kek.fk"),
        kek.to_text().as_bytes(),
        false,
    )
    .unwrap();
    let store = super::test_store(dir.path()).await;
    let custody = Arc::new(
        LocalCustody::open(dir.path(), KekSource::KeyFile(dir.path().join("kek.fk")))
            .await
            .unwrap(),
    );
    let clock = Arc::new(SystemClock::default());
    let keys = Arc::new(
        KeyService::open(
            store.clone(),
            custody.clone(),
            clock.clone(),
            KeyConfig::default(),
        )
        .await
        .unwrap(),
    );
    let tokens = Arc::new(TokenService::new(store.clone(), clock.clone()));
    let fleets = fleetkey_server::fleet::FleetService::new(store.clone(), custody.clone(), clock);
    let (_, admin) = tokens
        .create("test", "admin", vec!["admin".into()], None)
        .await
        .unwrap();
    let state = server::state(&config, keys, tokens.clone(), fleets).unwrap();
    Api {
        dir,
        store,
        custody,
        app: api::router(state, config.max_body_bytes),
        tokens,
        admin: admin.to_string(),
    }
}

pub async fn api() -> Api {
    api_with(Config::default()).await
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, v)
    }

    /// `method path` with `token` and `body` sent as given (not re-encoded).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: String,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self.call(method, path, Some(&self.admin), body).await;
        (s, v)
    }

    pub async fn token(&self, scopes: &[&str]) -> String {
        let (_, t) = self
            .tokens
            .create(
                "test",
                "scoped",
                scopes.iter().map(|s| s.to_string()).collect(),
                None,
            )
            .await
            .unwrap();
        t.to_string()
    }
}

impl Api {
    /// Creates keyring `name` of key type `alg` as admin (201, or the test fails).
    pub async fn keyring(&self, name: &str, alg: &str) {
        let (s, v) = self
            .admin(
                "POST",
                "/v1/keyrings",
                Some(serde_json::json!({"name": name, "algorithm": alg})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["algorithm"], alg);
    }
}

/// The `error.code` of an error body ("" when there is none).
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

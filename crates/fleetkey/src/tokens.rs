//! API tokens, the same for a local data directory and for a server:
//! `fleetkey tokens …` is written once against [`Tokens`], and prints the same
//! JSON in both modes (the server's [`TokenInfo`] and [`CreatedToken`], whose
//! secret is wiped when it is dropped).

use crate::client::{Client, path};
use crate::error::CliResult;
use crate::local::{actor, service_error};
use fleetkey_server::api::{CreateTokenRequest, CreatedToken, TokenInfo, TokenList};
use fleetkey_server::tokens::TokenService;
use reqwest::Method;

/// What the CLI does with API tokens.
pub(crate) trait Tokens {
    /// Creates a token; the secret is in the result only.
    async fn create(
        &self,
        name: &str,
        scopes: Vec<String>,
        ttl_secs: Option<i64>,
    ) -> CliResult<CreatedToken>;
    /// Every token this caller may see (never a secret).
    async fn list(&self) -> CliResult<Vec<TokenInfo>>;
    /// Revokes a token.
    async fn revoke(&self, id: &str) -> CliResult<()>;
}

/// Tokens in a local data directory (admin mode).
pub(crate) struct Local(pub TokenService);

impl Tokens for Local {
    async fn create(
        &self,
        name: &str,
        scopes: Vec<String>,
        ttl_secs: Option<i64>,
    ) -> CliResult<CreatedToken> {
        let (record, secret) = self
            .0
            .create(&actor(), name, scopes, ttl_secs)
            .await
            .map_err(service_error)?;
        Ok(CreatedToken {
            info: record.into(),
            token: secret.to_string(),
        })
    }

    async fn list(&self) -> CliResult<Vec<TokenInfo>> {
        let list = self.0.list().await.map_err(service_error)?;
        Ok(list.into_iter().map(TokenInfo::from).collect())
    }

    async fn revoke(&self, id: &str) -> CliResult<()> {
        self.0.revoke(&actor(), id).await.map_err(service_error)
    }
}

/// Tokens on `fleetkey serve` (`FLEETKEY_ADDR`).
pub(crate) struct Remote<'a>(pub &'a Client);

impl Tokens for Remote<'_> {
    async fn create(
        &self,
        name: &str,
        scopes: Vec<String>,
        ttl_secs: Option<i64>,
    ) -> CliResult<CreatedToken> {
        let body = CreateTokenRequest {
            name: name.to_owned(),
            scopes,
            ttl_secs,
        };
        self.0.send(Method::POST, "/v1/tokens", &body).await
    }

    async fn list(&self) -> CliResult<Vec<TokenInfo>> {
        let l: TokenList = self.0.call(Method::GET, "/v1/tokens", None).await?;
        Ok(l.tokens)
    }

    async fn revoke(&self, id: &str) -> CliResult<()> {
        let p = path(&["v1", "tokens", id, "revoke"]);
        let _: serde_json::Value = self.0.call(Method::POST, &p, None).await?;
        Ok(())
    }
}

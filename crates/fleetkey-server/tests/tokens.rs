//! Token minting: a token with `tokens:manage` hands out only scopes that its own
//! cover (every scope family, as a matrix), for no longer than it lives, and sees and
//! revokes only tokens it covers. Regression for the review's escalation
//! (`seal:kA` + `tokens:manage` minted `seal:kA*`, which sealed with `kA-x`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_server::Error;
use fleetkey_server::clock::SystemClock;
use fleetkey_server::tokens::{Principal, TokenService};
use std::sync::Arc;

struct Tokens {
    _dir: tempfile::TempDir,
    svc: TokenService,
}

async fn tokens() -> Tokens {
    let dir = tempfile::TempDir::new().unwrap();
    let store = common::test_store(dir.path()).await;
    let svc = TokenService::new(store, Arc::new(SystemClock::default()));
    Tokens { _dir: dir, svc }
}

impl Tokens {
    /// A principal holding `scopes` (created by a trusted operator).
    async fn holder(&self, scopes: &[&str], ttl: Option<i64>) -> Principal {
        let (_, secret) = self
            .svc
            .create(
                "test",
                "holder",
                scopes.iter().map(|s| s.to_string()).collect(),
                ttl,
            )
            .await
            .unwrap();
        self.svc.authenticate(&secret).await.unwrap()
    }

    async fn grant(&self, by: &Principal, scope: &str) -> Result<(), Error> {
        self.svc
            .create_for(by, "child", vec![scope.to_owned()], None)
            .await
            .map(|_| ())
    }
}

/// Families whose scopes name a keyring or a fleet.
const FAMILIES: [&str; 13] = [
    "seal", "unseal", "rewrap", "datakey", "sign", "verify", "mac", "import", "export", "factory",
    "devices", "operate", "ingest",
];

#[tokio::test]
async fn every_named_family_grants_only_covered_scopes() {
    let t = tokens().await;
    for f in FAMILIES {
        let other = if f == "seal" { "unseal" } else { "seal" };
        let exact = t.holder(&["tokens:manage", &format!("{f}:kA")], None).await;
        let wild = t.holder(&["tokens:manage", &format!("{f}:k*")], None).await;
        // (holder, requested, allowed)
        let cases = [
            (&exact, format!("{f}:kA"), true),
            (&exact, format!("{f}:kA*"), false),
            (&exact, format!("{f}:kA-x"), false),
            (&exact, format!("{f}:k*"), false),
            (&exact, format!("{f}:*"), false),
            (&exact, format!("{other}:kA"), false),
            (&exact, "admin".to_owned(), false),
            (&wild, format!("{f}:kA"), true),
            (&wild, format!("{f}:k"), true),
            (&wild, format!("{f}:kA*"), true),
            (&wild, format!("{f}:k*"), true),
            (&wild, format!("{f}:*"), false),
            (&wild, format!("{f}:j"), false),
            (&wild, format!("{f}:j*"), false),
            (&wild, format!("{other}:kA"), false),
            (&wild, "admin".to_owned(), false),
        ];
        for (holder, requested, allowed) in cases {
            let got = t.grant(holder, &requested).await;
            if allowed {
                assert!(got.is_ok(), "{:?} must grant {requested}", holder.scopes);
            } else {
                assert!(
                    matches!(got, Err(Error::GrantNotCovered(ref s)) if *s == requested),
                    "{:?} must not grant {requested}: {got:?}",
                    holder.scopes
                );
            }
        }
    }
}

#[tokio::test]
async fn fixed_scopes_grant_only_themselves_and_admin_grants_all() {
    let t = tokens().await;
    let fixed = [
        "keys:manage",
        "audit:read",
        "tokens:manage",
        "fleets:manage",
        "claim",
    ];
    for s in fixed {
        let holder = t.holder(&["tokens:manage", s], None).await;
        assert!(t.grant(&holder, s).await.is_ok(), "{s} grants itself");
        let mut refused = vec!["admin".to_owned(), "*".to_owned()];
        if let Some((family, _)) = s.split_once(':') {
            refused.push(format!("{family}:*"));
        }
        for refused in refused {
            assert!(
                matches!(
                    t.grant(&holder, &refused).await,
                    Err(Error::GrantNotCovered(_))
                ),
                "{s} must not grant {refused}"
            );
        }
    }
    let admin = t.holder(&["admin"], None).await;
    for s in fixed
        .into_iter()
        .chain(["admin", "*", "seal:*", "operate:x*", "ingest:f"])
    {
        assert!(t.grant(&admin, s).await.is_ok(), "admin grants {s}");
    }
    // A wildcard over a family covers that family's fixed scope.
    let keys = t.holder(&["tokens:*", "keys:*"], None).await;
    assert!(t.grant(&keys, "keys:manage").await.is_ok());
    assert!(t.grant(&keys, "audit:read").await.is_err());
    // Without tokens:manage nothing is granted, whatever else is held.
    let sealer = t.holder(&["seal:*"], None).await;
    assert!(matches!(
        t.grant(&sealer, "seal:a").await,
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn a_child_never_outlives_its_parent() {
    let t = tokens().await;
    let parent = t.holder(&["tokens:manage", "seal:a"], Some(600)).await;
    let end = parent.expires_at.unwrap();
    for ttl in [None, Some(10_000), Some(600)] {
        let (rec, _) = t
            .svc
            .create_for(&parent, "child", vec!["seal:a".into()], ttl)
            .await
            .unwrap();
        let exp = rec.expires_at.expect("capped");
        assert!(exp <= end, "{ttl:?}: child {exp} outlives parent {end}");
        assert!(exp >= end - 5, "{ttl:?}: capped at the parent's expiry");
    }
    let (rec, _) = t
        .svc
        .create_for(&parent, "short", vec!["seal:a".into()], Some(60))
        .await
        .unwrap();
    assert!(
        rec.expires_at.unwrap() < end - 500,
        "a shorter life is kept"
    );
    // An unlimited parent may create an unlimited child.
    let forever = t.holder(&["tokens:manage", "seal:a"], None).await;
    let (rec, _) = t
        .svc
        .create_for(&forever, "c", vec!["seal:a".into()], None)
        .await
        .unwrap();
    assert_eq!(rec.expires_at, None);
}

#[tokio::test]
async fn a_manager_sees_and_revokes_only_tokens_it_covers() {
    let t = tokens().await;
    let admin = t.holder(&["admin"], None).await;
    let manager = t.holder(&["tokens:manage", "seal:a*"], None).await;
    let (child, _) = t
        .svc
        .create_for(&manager, "child", vec!["seal:ab".into()], None)
        .await
        .unwrap();
    let (wider, _) = t
        .svc
        .create_for(
            &admin,
            "wider",
            vec!["seal:ab".into(), "unseal:ab".into()],
            None,
        )
        .await
        .unwrap();
    let seen: Vec<String> = t
        .svc
        .list_for(&manager)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(seen.contains(&child.id));
    assert!(seen.contains(&manager.token_id), "itself");
    assert!(!seen.contains(&admin.token_id), "never the admin token");
    assert!(
        !seen.contains(&wider.id),
        "never a token with a scope beyond its own"
    );
    for id in [&admin.token_id, &wider.id, &"tok_00".to_owned()] {
        assert!(
            matches!(
                t.svc.revoke_for(&manager, id).await,
                Err(Error::TokenNotFound(_))
            ),
            "{id}"
        );
    }
    // The admin token still works; the covered child is revoked.
    assert!(t.svc.list_for(&admin).await.unwrap().len() >= 4);
    t.svc.revoke_for(&manager, &child.id).await.unwrap();
    let all = t.svc.list_for(&admin).await.unwrap();
    let by_id = |id: &str| all.iter().find(|r| r.id == id).unwrap().clone();
    assert!(by_id(&child.id).revoked_at.is_some());
    assert!(by_id(&admin.token_id).revoked_at.is_none());
    assert!(by_id(&wider.id).revoked_at.is_none());
}

//! What only the PostgreSQL store does (`FLEETKEY_TEST_POSTGRES_URL`, set by
//! `.ci/run`; without it these tests say so and do nothing): one scheduler leader
//! among instances, taken over when the leader goes; concurrent nonce reservations
//! from several instances never overlap; audit appends from several instances form
//! one chain. (Everything else runs on PostgreSQL through `FLEETKEY_TEST_STORE`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fleetkey_server::audit::AuditDraft;
use fleetkey_server::store::postgres::PostgresStore;
use fleetkey_server::store::{Change, Store};
use std::sync::Arc;

fn pg() -> Option<String> {
    let url = std::env::var("FLEETKEY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("FLEETKEY_TEST_POSTGRES_URL is not set: skipping the PostgreSQL tests");
    }
    url
}

#[tokio::test]
async fn one_scheduler_leader_at_a_time_and_a_successor_when_it_goes() {
    let Some(url) = pg() else { return };
    let s = common::unique("fktest_");
    let a = PostgresStore::connect_in_schema(&url, Some(&s))
        .await
        .unwrap();
    let b = PostgresStore::connect_in_schema(&url, Some(&s))
        .await
        .unwrap();
    assert!(a.scheduler_leader().await.unwrap());
    assert!(
        a.scheduler_leader().await.unwrap(),
        "the leader stays leader"
    );
    assert!(!b.scheduler_leader().await.unwrap());
    // The leader goes (its connection closes): another instance takes over.
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !b.scheduler_leader().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "no successor");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn concurrent_reservations_from_several_instances_never_overlap() {
    let Some(url) = pg() else { return };
    let s = common::unique("fktest_");
    let stores: Vec<Arc<PostgresStore>> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(Arc::new(
                PostgresStore::connect_in_schema(&url, Some(&s))
                    .await
                    .unwrap(),
            ));
        }
        v
    };
    // Worst case: the same instance id (a misconfiguration) from three stores.
    let instance = [7u8; 8];
    let mut tasks = Vec::new();
    for st in &stores {
        for _ in 0..20 {
            let st = st.clone();
            tasks.push(tokio::spawn(async move {
                st.reserve_nonces("ring", 1, instance, 1000)
                    .await
                    .unwrap()
                    .unwrap()
            }));
        }
    }
    let mut starts = Vec::new();
    for t in tasks {
        starts.push(t.await.unwrap());
    }
    starts.sort_unstable();
    let want: Vec<u32> = (0..60).map(|i| i * 1000).collect();
    assert_eq!(starts, want, "disjoint, contiguous blocks");
    assert_eq!(stores[0].reserved_nonces("ring", 1).await.unwrap(), 60_000);
    // Past 2^32: refused, nothing reserved.
    assert_eq!(
        stores[1]
            .reserve_nonces("ring", 1, instance, u32::MAX)
            .await
            .unwrap(),
        None
    );
    assert_eq!(stores[2].reserved_nonces("ring", 1).await.unwrap(), 60_000);
}

#[tokio::test]
async fn audit_appends_from_several_instances_form_one_chain() {
    let Some(url) = pg() else { return };
    let s = common::unique("fktest_");
    let a = Arc::new(
        PostgresStore::connect_in_schema(&url, Some(&s))
            .await
            .unwrap(),
    );
    let b = Arc::new(
        PostgresStore::connect_in_schema(&url, Some(&s))
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let st = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            st.apply(
                Change::RevokeToken {
                    id: format!("tok_missing_{i}"),
                    at: 1,
                },
                AuditDraft::new("t", "token.revoke", "token:x", serde_json::json!({})),
                1,
            )
            .await
            .err();
            st.apply(
                Change::CreateServiceKey {
                    name: format!("k{i}"),
                    wrapped: vec![],
                    public: vec![i as u8],
                    at: 1,
                },
                AuditDraft::new(
                    "t",
                    "service.key_create",
                    format!("k{i}"),
                    serde_json::json!({}),
                ),
                1,
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = a.audit_entries(0, 1000).await.unwrap();
    assert_eq!(entries.len(), 40);
    let mut prev = [0u8; 32];
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.prev_hash, prev, "entry {} chains to {}", e.seq, i);
        prev = e.hash;
    }
}

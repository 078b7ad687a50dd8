//! What this instance caches about state other instances change, kept true both
//! ways: the domain services announce every change they commit (published through
//! Redis, and applied here at once where this instance's own caches need it), and
//! announcements from other instances drop or refresh the cached copy. While Redis
//! is unreachable nothing can be announced, so every cache is dropped every
//! [`super::server::DEGRADED_REFRESH`] and once more when the subscription returns.

use super::AppState;
use super::supervisor::Supervisor;
use crate::coord::{Announcer, Coordinator, Invalidation};
use crate::ingest::FrameIngest;
use std::sync::{Arc, Weak};

/// Sets where the key, fleet and token services announce their changes, and (with
/// Redis) subscribes to other instances' announcements under `sup`.
pub(super) fn wire(
    state: &Arc<AppState>,
    coord: Option<Arc<Coordinator>>,
    ingest: &Arc<FrameIngest>,
    sup: &Supervisor,
) {
    let announce = announcer(coord.clone(), Arc::downgrade(ingest));
    state.keys.on_change(announce.clone());
    state.fleets.on_change(announce.clone());
    state.tokens.on_change(announce);
    let Some(coord) = coord else {
        return;
    };
    let drop_caches = drop_caches(state, ingest);
    {
        let (coord, drop_caches) = (coord.clone(), drop_caches.clone());
        sup.spawn("degraded refresh", async move {
            let mut tick = tokio::time::interval(super::server::DEGRADED_REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if coord.ping().await.is_err() {
                    drop_caches();
                }
            }
        });
    }
    let (keys, tokens, ing) = (state.keys.clone(), state.tokens.clone(), ingest.clone());
    let fleets = state.fleets.clone();
    let subscription = coord.subscribe(
        move |inv| match inv {
            Invalidation::Keyring { name } => {
                let keys = keys.clone();
                tokio::spawn(async move {
                    if let Err(e) = keys.refresh(&name).await {
                        tracing::warn!(keyring = %name, error = %e, "refreshing a keyring failed");
                    }
                });
            }
            Invalidation::Token { id } => tokens.forget(&id),
            Invalidation::Device { id } => ing.expire(&id),
            Invalidation::Fleet { name } => fleets.forget_fleet(&name),
        },
        move || drop_caches(),
    );
    sup.adopt("invalidations", subscription);
}

/// What the services call with each committed change: a device's new state
/// reaches this instance's frame path at once (constrained devices see it from
/// their next frame on); everything is published to the other instances, off the
/// caller's path. (The frame path is held weakly: it holds the fleet service,
/// which holds this.)
fn announcer(coord: Option<Arc<Coordinator>>, ingest: Weak<FrameIngest>) -> Announcer {
    Arc::new(move |what: Invalidation| {
        if let Invalidation::Device { id } = &what
            && let Some(ingest) = ingest.upgrade()
        {
            ingest.expire(id);
        }
        if let Some(c) = coord.clone() {
            tokio::spawn(async move {
                if let Err(e) = c.publish(&what).await {
                    tracing::warn!(error = %e, ?what, "could not announce a change");
                }
            });
        }
    })
}

/// Drops everything cached about other instances' changes.
fn drop_caches(state: &Arc<AppState>, ingest: &Arc<FrameIngest>) -> Arc<dyn Fn() + Send + Sync> {
    let (keys, tokens, ing) = (state.keys.clone(), state.tokens.clone(), ingest.clone());
    let fleets = state.fleets.clone();
    Arc::new(move || {
        tokens.forget_all();
        ing.expire_all();
        fleets.forget_all();
        let keys = keys.clone();
        tokio::spawn(async move {
            if let Err(e) = keys.refresh_all().await {
                tracing::warn!(error = %e, "refreshing keyrings failed");
            }
        });
    })
}

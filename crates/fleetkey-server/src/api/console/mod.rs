//! The web console at `/ui`: static assets embedded in the binary (no build step,
//! nothing fetched from elsewhere), served with a strict Content-Security-Policy.
//!
//! The console holds no privilege of its own: the operator signs in with an API
//! token, kept in the tab's session storage and sent as a bearer header, and every
//! page reads and acts through the public API, so the token's scopes apply
//! unchanged. The pages are plain ES modules (`assets/`); docs/operations.md,
//! "The web console", describes them.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// What a console response may load: its own scripts, styles and images, and
/// API calls to this origin; no inline script or style, no frames, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Every asset: its path under `/ui/`, content type and bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/dom.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/charts.js"),
    ),
    (
        "pages/fleets.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pages/fleets.js"),
    ),
    (
        "pages/device.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pages/device.js"),
    ),
    (
        "pages/keyrings.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pages/keyrings.js"),
    ),
    (
        "pages/audit.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pages/audit.js"),
    ),
    (
        "pages/tokens.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pages/tokens.js"),
    ),
];

/// The console's routes (no token: the assets are public, the data is not).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset("") }))
        .route(
            "/ui/{*path}",
            get(|Path(p): Path<String>| async move { asset(&p) }),
        )
}

/// One asset by its exact path (nothing is read from disk, so no path escapes).
fn asset(path: &str) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return with_headers(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no such console file",
            )
                .into_response(),
        );
    };
    with_headers(([(header::CONTENT_TYPE, *kind)], *body).into_response())
}

fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), usb=()",
        ),
        // Small files; an upgrade takes effect on the next load.
        ("cache-control", "no-cache"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_pages_import_is_served() {
        for (path, _, body) in ASSETS {
            let text = std::str::from_utf8(body).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split('"').nth(1) else {
                    continue;
                };
                let base = path.rsplit_once('/').map_or("", |(d, _)| d);
                let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == target),
                    "{path} imports {spec}, which is not served"
                );
            }
            // No inline script or style: the CSP would refuse them.
            assert!(
                !text.contains("<script>") && !text.contains("style=\""),
                "{path}"
            );
            assert!(
                !text.contains("innerHTML"),
                "{path} must build the DOM from text nodes"
            );
        }
    }
}

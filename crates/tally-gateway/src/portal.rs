//! The portal: a small web page for operators and tenants at `/portal/`, served from the files
//! of `crates/tally-gateway/portal/`, which are embedded in the binary (nothing is fetched from
//! anywhere else, and the page works without internet).
//!
//! The files themselves need no token: the page signs in by itself and sends the caller's
//! bearer token with every data call, which goes through the REST surface, its authentication
//! and its guards like any other client's. What the page may load and contact is pinned by its
//! Content-Security-Policy: only this origin, no inline script or style, no form submission.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file of the portal.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../portal/", $name)),
        }
    };
}

/// Every file of `portal/` (a test checks the folder and this list agree).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("portal.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("decimal.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("usage.js", "text/javascript; charset=utf-8"),
    asset!("billing.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` is the portal's: `/portal` and everything below it, all static files.
pub(crate) fn is_portal_path(path: &str) -> bool {
    path == "/portal" || path.starts_with("/portal/")
}

/// The portal's routes: `/portal` redirects to `/portal/` (so the page's relative links
/// resolve), which is `index.html`; `/portal/{file}` is one of [`ASSETS`].
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/portal", get(|| async { Redirect::permanent("/portal/") }))
        .route("/portal/", get(|| async { serve("index.html") }))
        .route(
            "/portal/{*name}",
            get(|Path(name): Path<String>| async move { serve(&name) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("the portal has no file named {name:?}"),
        )
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small files: always revalidated, so a new binary's portal shows at once.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_folder_is_embedded_and_nothing_else() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/portal");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    /// Every `src="x"`, `href="x"` and `from "./x"` of the portal's files names an embedded
    /// file (the page loads nothing from elsewhere).
    #[test]
    fn every_reference_between_the_files_resolves() {
        let mut references = Vec::new();
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            for marker in ["src=\"", "href=\"", "from \"./"] {
                for (at, _) in text.match_indices(marker) {
                    let rest = &text[at + marker.len()..];
                    let target = rest.split('"').next().unwrap_or_default();
                    references.push((asset.name, target.to_string()));
                }
            }
        }
        assert!(references.len() >= 5, "{references:?}");
        for (from, target) in references {
            // In-page anchors are not files.
            if target.starts_with('#') {
                continue;
            }
            assert!(
                ASSETS.iter().any(|a| a.name == target),
                "{from} refers to {target:?}, which the portal does not serve"
            );
        }
    }

    #[test]
    fn only_the_portal_paths_are_portal_paths() {
        for path in ["/portal", "/portal/", "/portal/app.js"] {
            assert!(is_portal_path(path), "{path}");
        }
        for path in ["/portals", "/portal.js", "/tally/v1/whoami", "/"] {
            assert!(!is_portal_path(path), "{path}");
        }
    }
}

//! The phone's web app: the enrollment and approval pages, their script and style, the web app
//! manifest and the service worker, embedded in the binary (`crates/server/web/`).
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles, images and
//! connections from this origin only, no inline script or style, no frames, no forms posting
//! elsewhere. The pages hold no secret of their own: the device's bearer token lives in the
//! browser's storage and goes out only in an `Authorization` header the scripts set.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The policy every page and asset is served with.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
     worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path and content type.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// One [`Asset`] from `crates/server/web/FILE`, served at `PATH` as `TYPE`.
macro_rules! asset {
    ($path:literal, $type:expr, $file:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("../web/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("/enroll", HTML, "enroll.html"),
    asset!("/approve", HTML, "approve.html"),
    asset!("/webauthn.js", JS, "webauthn.js"),
    asset!("/enroll.js", JS, "enroll.js"),
    asset!("/approve.js", JS, "approve.js"),
    asset!("/sw.js", JS, "sw.js"),
    asset!("/app.css", "text/css; charset=utf-8", "app.css"),
    asset!(
        "/manifest.webmanifest",
        "application/manifest+json",
        "manifest.webmanifest"
    ),
    asset!("/icon.svg", "image/svg+xml", "icon.svg"),
];

fn serve(asset: &'static Asset) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // Pages change with the server's version; a stale script must not linger.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
}

/// The web app's routes, for any router state. `/approve/{id}` (the link a notification
/// opens) serves the approval page, which lists every pending request.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    let approve = ASSETS.iter().find(|a| a.path == "/approve");
    if let Some(approve) = approve {
        router = router.route("/approve/{id}", get(move || async move { serve(approve) }));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_page_has_inline_script_or_style_or_an_external_origin() {
        for asset in ASSETS
            .iter()
            .filter(|a| a.path == "/enroll" || a.path == "/approve")
        {
            let page = asset.body;
            for tag in page.split("<script").skip(1) {
                let head = tag.split('>').next().unwrap_or("");
                assert!(
                    head.contains("src=\"/"),
                    "{}: inline script {tag:.60}",
                    asset.path
                );
            }
            assert!(!page.contains("<style"), "{}: inline style", asset.path);
            assert!(!page.contains(" style="), "{}: style attribute", asset.path);
            let handler = page.split(" on").skip(1).any(|rest| {
                let name = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
                name.len() < rest.len() && name.starts_with('=')
            });
            assert!(!handler, "{}: an inline event handler", asset.path);
            assert!(!page.contains("//"), "{}: an absolute URL", asset.path);
        }
    }
}

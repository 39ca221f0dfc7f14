//! The operator's console: the web page at `/` (for requests that accept HTML; the others get
//! Elasticsearch's version document there, see [`super::app`]), for an on-call engineer who
//! wants to look rather than curl. Its assets are embedded in the binary and it loads nothing from
//! elsewhere, so it works offline. The page reads the same JSON API as everyone
//! (`/api/v2/alerts`, `/api/v2/silences`, `/api/v1/incidents`, `/api/v1/outbox`,
//! `/api/v1/decisions`, `/api/v1/rules`, `/api/v1/status/reload`) plus two routes of its own:
//!
//! - `GET /api/v1/history`: the last hour of the service's own figures, for the plots
//!   (see [`crate::history`]);
//! - `GET /api/v1/events`: server-sent events telling the page what changed (see
//!   [`events`]).
//!
//! The plots are drawn by the page itself as SVG: no plotting library is vendored.

mod events;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Shared;

/// The page's files: name, media type, contents.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
    (
        "plot.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/plot.js"),
    ),
];

const INDEX: &str = include_str!("assets/index.html");

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/console/{file}", get(asset))
        .route("/api/v1/history", get(history))
        .route("/api/v1/events", get(events::events_stream))
}

/// `GET /` for a browser (see [`super::app`]).
pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media_type, body)) => (
            [
                (header::CONTENT_TYPE, *media_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no console file {file:?}\n")).into_response(),
    }
}

async fn history(State(svc): State<Shared>) -> Response {
    axum::Json(serde_json::json!({"status": "success", "data": svc.history().view()}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files() {
        // Every script and stylesheet the page names is one of the embedded assets, and
        // nothing is fetched from another origin.
        for reference in INDEX
            .split(['"', '\''])
            .filter(|s| s.starts_with("/console/"))
        {
            let file = &reference["/console/".len()..];
            assert!(
                ASSETS.iter().any(|(name, _, _)| *name == file),
                "{reference} is not embedded"
            );
        }
        let files = ASSETS.iter().map(|(name, _, body)| (*name, *body));
        for (name, body) in files.chain([("index.html", INDEX)]) {
            // The SVG namespace is a name, not an address the page loads.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("://"), "{name} loads from elsewhere");
        }
    }
}

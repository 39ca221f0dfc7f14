//! Request bodies: how many are read at once, and how long one may take.
//!
//! A request that carries a body waits for one of `[listener] max_concurrent_bodies` turns
//! and holds it until it is answered, so that a burst of large bodies is read a few at a
//! time instead of all being buffered at once. The whole body must arrive within
//! `[listener] body_read_timeout` of the request, the wait for a turn included: a request
//! still waiting then gets 503 (with `Retry-After`), one whose body is still arriving 408.
//! `faultline_request_bodies{state="reading"|"waiting"}` shows both on `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::ApiError;
use crate::service::Service;

/// The turns for request bodies, shared by the requests of one server.
pub struct Bodies {
    turns: Semaphore,
    timeout: Duration,
    reading: AtomicUsize,
    waiting: AtomicUsize,
    svc: Arc<Service>,
}

/// A body that did not arrive within `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(Duration);

impl Bodies {
    pub fn new(svc: Arc<Service>) -> Arc<Bodies> {
        let c = &svc.config().listener;
        Arc::new(Bodies {
            turns: Semaphore::new(c.max_concurrent_bodies.max(1)),
            timeout: c.body_read_timeout.0,
            reading: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            svc,
        })
    }

    /// Adds `by` to a count and shows it on `/metrics`.
    fn count(&self, state: &str, n: &AtomicUsize, by: isize) {
        let now = if by > 0 {
            n.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            n.fetch_sub(1, Ordering::Relaxed) - 1
        };
        self.svc
            .metrics()
            .set("faultline_request_bodies", &[("state", state)], now as f64);
    }
}

/// Decrements a count when dropped, so that a request given up by its client still leaves it.
struct Counted<'a>(&'a Bodies, &'static str, &'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(bodies: &'a Bodies, state: &'static str, n: &'a AtomicUsize) -> Counted<'a> {
        bodies.count(state, n, 1);
        Counted(bodies, state, n)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.count(self.1, self.2, -1);
    }
}

/// The middleware: a request with a body waits for a turn, and its body gets a deadline.
pub async fn limit(State(bodies): State<Arc<Bodies>>, req: Request, next: Next) -> Response {
    use axum::body::HttpBody;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let deadline = Instant::now() + bodies.timeout;
    let turn = {
        let _waiting = Counted::new(&bodies, "waiting", &bodies.waiting);
        tokio::time::timeout_at(deadline, bodies.turns.acquire()).await
    };
    let Ok(Ok(_turn)) = turn else {
        let busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many request bodies are being read at once; retry later",
        );
        return ([(header::RETRY_AFTER, "1")], busy).into_response();
    };
    let _reading = Counted::new(&bodies, "reading", &bodies.reading);
    let req = req.map(|body| with_deadline(body, deadline, bodies.timeout));
    next.run(req).await
}

/// `body`, ending in [`BodyTimedOut`] at `deadline`.
fn with_deadline(body: Body, deadline: Instant, timeout: Duration) -> Body {
    let chunks =
        futures_util::stream::unfold(Some(body.into_data_stream()), move |chunks| async move {
            let mut chunks = chunks?;
            let chunk: Result<bytes::Bytes, axum::BoxError> =
                match tokio::time::timeout_at(deadline, chunks.next()).await {
                    Ok(Some(Ok(chunk))) => return Some((Ok(chunk), Some(chunks))),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => Err(e.into()),
                    Err(_) => Err(BodyTimedOut(timeout).into()),
                };
            Some((chunk, None))
        });
    Body::from_stream(chunks)
}

/// Whether reading a body failed because it timed out.
pub fn timed_out(e: &axum::Error) -> Option<&BodyTimedOut> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<BodyTimedOut>() {
            return Some(t);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::model::units::PromDuration;
    use crate::server::listener::ListenerConfig;

    /// A request that finds no turn within the body read timeout gets 503, with
    /// `Retry-After`.
    #[tokio::test]
    async fn a_body_that_finds_no_turn_in_time_gets_503() {
        let (svc, _dir) = crate::server::ingestion::tests::service_with(Config {
            listener: ListenerConfig {
                max_concurrent_bodies: 1,
                body_read_timeout: PromDuration(Duration::from_millis(200)),
                ..ListenerConfig::default()
            },
            ..Config::default()
        });
        // A handler that never answers holds its turn.
        let app = Router::new()
            .route("/", post(|_: Body| std::future::pending::<()>()))
            .layer(axum::middleware::from_fn_with_state(
                Bodies::new(svc.clone()),
                limit,
            ));
        let request = || Request::post("/").body(Body::from("x")).unwrap();
        let holder = tokio::spawn(app.clone().oneshot(request()));
        tokio::task::yield_now().await;
        let reading = &[("state", "reading")];
        assert_eq!(
            svc.metrics().get("faultline_request_bodies", reading),
            Some(1.0)
        );
        let refused = app.oneshot(request()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let waiting = &[("state", "waiting")];
        assert_eq!(
            svc.metrics().get("faultline_request_bodies", waiting),
            Some(0.0)
        );
        holder.abort();
    }
}

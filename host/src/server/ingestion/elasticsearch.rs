//! The Elasticsearch API, as much of it as log shippers need to start and send logs:
//!
//! - `GET /`: the version document (Elasticsearch 9.0.0, which the 8.x and 9.x clients and
//!   shippers accept), for requests that do not ask for HTML (a browser gets the console:
//!   the choice is made in [`crate::server::app`]);
//! - `POST /_bulk`, `POST /<index>/_bulk` (and `PUT`): documents into log records, answered
//!   per item as Elasticsearch does (see [`crate::ingest::elasticsearch`]);
//! - `HEAD`/`GET`/`PUT /<index>`: every valid index exists, since a bulk write creates it;
//! - `HEAD`/`GET`/`PUT /_index_template/<name>` and `/_template/<name>`: templates are
//!   acknowledged and ignored (records have no mapping), so a GET finds none.
//!
//! Every answer carries `X-Elastic-Product: Elasticsearch`: the official clients refuse a
//! server whose successful answers lack it. Errors have Elasticsearch's shape,
//! `{"error": {"root_cause": [...], "type": ..., "reason": ...}, "status": ...}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::{Value, json};

use super::{ApiError, append_logs, receive, refused, reject};
use crate::ingest::{self, elasticsearch as es};
use crate::service::Service;

const SOURCE: &str = "elasticsearch";

/// The Elasticsearch routes, merged into [`super::routes`].
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/_bulk", axum::routing::post(bulk).put(bulk))
        .route(
            "/{index}/_bulk",
            axum::routing::post(bulk_index).put(bulk_index),
        )
        .route("/{index}", get(index_get).put(index_create))
        .route(
            "/_index_template/{name}",
            get(template_get).put(template_put),
        )
        .route(
            "/_template/{name}",
            get(legacy_template_get).put(template_put),
        )
        .layer(middleware::map_response(product_header))
}

async fn product_header(mut r: Response) -> Response {
    r.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    r
}

/// An error in Elasticsearch's shape.
#[derive(Debug)]
struct EsError {
    status: StatusCode,
    kind: &'static str,
    reason: String,
}

impl EsError {
    fn bad_request(kind: &'static str, reason: String) -> EsError {
        EsError {
            status: StatusCode::BAD_REQUEST,
            kind,
            reason,
        }
    }
}

impl From<ApiError> for EsError {
    fn from(e: ApiError) -> EsError {
        EsError {
            status: e.status,
            kind: match e.status {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "media_type_header_exception",
                StatusCode::PAYLOAD_TOO_LARGE => "content_too_long_exception",
                _ => "illegal_argument_exception",
            },
            reason: e.message,
        }
    }
}

impl IntoResponse for EsError {
    fn into_response(self) -> Response {
        let cause = json!({"type": self.kind, "reason": self.reason});
        let body = json!({
            "error": {"root_cause": [cause], "type": self.kind, "reason": self.reason},
            "status": self.status.as_u16(),
        });
        (self.status, Json(body)).into_response()
    }
}

/// `GET /`: who answers, in the shape clients read the version from. Outside this module's
/// router, so it sets the product header itself.
pub(in crate::server) async fn info() -> Response {
    let body = Json(json!({
        "name": "faultline",
        "cluster_name": "faultline",
        "cluster_uuid": "faultline",
        "version": {
            "number": "9.0.0",
            "build_flavor": "default",
            "build_type": "tar",
            "build_snapshot": false,
            "lucene_version": "10.1.0",
            "minimum_wire_compatibility_version": "8.18.0",
            "minimum_index_compatibility_version": "8.0.0",
        },
        "tagline": "You Know, for Search",
    }));
    product_header(body.into_response()).await
}

/// `POST /_bulk`.
async fn bulk(State(svc): State<Arc<Service>>, req: Request) -> Result<Json<Value>, EsError> {
    ingest_bulk(&svc, None, req).await
}

/// `POST /<index>/_bulk`: the index of actions that name none.
async fn bulk_index(
    State(svc): State<Arc<Service>>,
    Path(index): Path<String>,
    req: Request,
) -> Result<Json<Value>, EsError> {
    ingest_bulk(&svc, Some(index), req).await
}

/// Stores every valid document and answers one item per action. A failed item counts as
/// refused on `/metrics` with its status, as a refused request does.
async fn ingest_bulk(
    svc: &Service,
    index: Option<String>,
    req: Request,
) -> Result<Json<Value>, EsError> {
    let start = Instant::now();
    let r = receive(svc, SOURCE, req).await?;
    let mapping = es::Mapping::new(&svc.config().elasticsearch).map_err(|e| EsError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "illegal_state_exception",
        reason: format!("the server configuration is invalid: {e}"),
    })?;
    let limits = super::ingest_limits(svc);
    let now = crate::model::time::now_ms();
    let bulk = es::check_content_type(r.content_type.as_deref())
        .and_then(|()| {
            ingest::decode_content_encoding(r.content_encoding.as_deref(), &r.body, &limits)
        })
        .and_then(|body| {
            es::parse(
                &body,
                index.as_deref(),
                &mapping,
                now,
                &mut || new_id(now),
                &limits,
            )
        })
        .map_err(refused(svc, SOURCE))?;
    for e in bulk.items.iter().filter_map(|i| i.error.as_ref()) {
        reject(svc, SOURCE, e.status);
        tracing::debug!(source = SOURCE, "bulk item refused: {}", e.reason);
    }
    let response = bulk.response(start.elapsed().as_millis() as u64);
    append_logs(svc, SOURCE, bulk.records);
    Ok(Json(response))
}

/// A document id as Elasticsearch generates them: 20 URL-safe characters, unique within
/// this process (the time, then a counter).
fn new_id(now_ms: i64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:011x}{:09x}", now_ms & 0xfff_ffff_ffff, n & 0xf_ffff_ffff)
}

fn index_name(name: &str) -> Result<(), EsError> {
    es::check_index_name(name)
        .map_err(|reason| EsError::bad_request("invalid_index_name_exception", reason))
}

/// `GET /<index>` (and `HEAD`): any valid index exists, empty of mappings.
async fn index_get(Path(index): Path<String>) -> Result<Json<Value>, EsError> {
    index_name(&index)?;
    Ok(Json(json!({ index.clone(): {
        "aliases": {},
        "mappings": {},
        "settings": {"index": {
            "number_of_shards": "1",
            "number_of_replicas": "0",
            "provided_name": index,
        }},
    }})))
}

/// `PUT /<index>`: acknowledged; its settings and mappings are ignored.
async fn index_create(Path(index): Path<String>) -> Result<Json<Value>, EsError> {
    index_name(&index)?;
    Ok(Json(
        json!({"acknowledged": true, "shards_acknowledged": true, "index": index}),
    ))
}

/// `GET /_index_template/<name>` (and `HEAD`): no template is kept.
async fn template_get(Path(name): Path<String>) -> EsError {
    EsError {
        status: StatusCode::NOT_FOUND,
        kind: "resource_not_found_exception",
        reason: format!("index template matching [{name}] not found"),
    }
}

/// `GET /_template/<name>` (and `HEAD`): Elasticsearch answers a missing legacy template
/// with 404 and `{}`.
async fn legacy_template_get() -> (StatusCode, Json<Value>) {
    (StatusCode::NOT_FOUND, Json(json!({})))
}

/// `PUT` of a template: acknowledged and ignored.
async fn template_put() -> Json<Value> {
    Json(json!({"acknowledged": true}))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::super::tests::{lines, service};
    use super::*;

    const COMPAT_NDJSON: &str = "application/vnd.elasticsearch+x-ndjson; compatible-with=9";

    /// Sends a request to the app: the status, whether the product header was there, and
    /// the body as JSON (`null` when empty).
    async fn call(
        svc: &Arc<Service>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, bool, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = crate::server::app(svc.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let product = resp.headers().get("x-elastic-product")
            == Some(&HeaderValue::from_static("Elasticsearch"));
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, product, body)
    }

    fn metric(svc: &Service, name: &'static str, code: Option<&str>) -> Option<f64> {
        let mut labels = vec![("source", SOURCE)];
        labels.extend(code.map(|c| ("code", c)));
        svc.metrics().get(name, &labels)
    }

    #[tokio::test]
    async fn the_root_answers_as_elasticsearch_9() {
        let (svc, _dir) = service();
        let (status, product, body) = call(&svc, "GET", "/", &[], Vec::new()).await;
        assert_eq!((status, product), (200, true));
        assert_eq!(body["version"]["number"], "9.0.0");
        assert_eq!(body["version"]["build_flavor"], "default");
        assert_eq!(body["tagline"], "You Know, for Search");
        let accept = [(
            "accept",
            "application/vnd.elasticsearch+json; compatible-with=9",
        )];
        let (status, product, _) = call(&svc, "HEAD", "/", &accept, Vec::new()).await;
        assert_eq!((status, product), (200, true));
        // A browser gets the console there.
        let browser = Request::get("/")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .body(Body::empty())
            .unwrap();
        let resp = crate::server::app(svc.clone())
            .oneshot(browser)
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        assert!(resp.headers().get("x-elastic-product").is_none());
    }

    #[tokio::test]
    async fn a_gzipped_bulk_with_the_clients_content_type_is_stored() {
        let (svc, _dir) = service();
        let body = concat!(
            "{\"index\":{}}\n",
            "{\"message\":\"GET / 500\",\"host\":{\"name\":\"web1\"},\"log.level\":\"error\"}\n",
            "{\"create\":{\"_index\":\"other\"}}\n",
            "{\"message\":\"GET / 200\",\"host.name\":\"web2\"}\n",
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body.as_bytes()).unwrap();
        let (status, product, answer) = call(
            &svc,
            "POST",
            "/shop/_bulk",
            &[
                ("content-type", COMPAT_NDJSON),
                ("content-encoding", "gzip"),
            ],
            gz.finish().unwrap(),
        )
        .await;
        assert_eq!((status, product), (200, true), "{answer}");
        assert_eq!(answer["errors"], false);
        assert_eq!(answer["items"][0]["index"]["_index"], "shop");
        assert_eq!(answer["items"][0]["index"]["status"], 201);
        assert_eq!(answer["items"][1]["create"]["_index"], "other");
        assert_eq!(
            lines(
                &svc,
                r#"{index="shop", host_name="web1", log_level="error"}"#,
                crate::model::time::now_ms() + 60_000
            ),
            ["GET / 500"]
        );
        assert_eq!(
            lines(
                &svc,
                r#"{index="other", host_name="web2"}"#,
                crate::model::time::now_ms() + 60_000
            ),
            ["GET / 200"]
        );
        assert_eq!(
            metric(&svc, "faultline_log_records_ingested_total", None),
            Some(2.0)
        );
    }

    #[tokio::test]
    async fn failed_items_are_counted_and_the_rest_stored() {
        let (svc, _dir) = service();
        let body = concat!(
            "{\"index\":{\"_index\":\"shop\"}}\n{\"msg\":\"no message\"}\n",
            "{\"delete\":{\"_index\":\"shop\",\"_id\":\"1\"}}\n",
            "{\"index\":{\"_index\":\"shop\"}}\n{\"message\":\"kept\"}\n",
        );
        let (status, product, answer) = call(
            &svc,
            "POST",
            "/_bulk",
            &[("content-type", "application/x-ndjson")],
            body.into(),
        )
        .await;
        assert_eq!((status, product), (200, true), "{answer}");
        assert_eq!(answer["errors"], true);
        assert_eq!(answer["items"][0]["index"]["status"], 400);
        assert_eq!(
            answer["items"][0]["index"]["error"]["type"],
            "mapper_parsing_exception"
        );
        assert_eq!(answer["items"][1]["delete"]["status"], 400);
        assert_eq!(answer["items"][2]["index"]["status"], 201);
        assert_eq!(
            lines(
                &svc,
                r#"{index="shop"}"#,
                crate::model::time::now_ms() + 60_000
            ),
            ["kept"]
        );
        assert_eq!(
            metric(&svc, "faultline_ingest_rejected_total", Some("400")),
            Some(2.0)
        );
        assert_eq!(
            metric(&svc, "faultline_log_records_ingested_total", None),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn refused_bodies_are_answered_in_elasticsearch_shape() {
        let (svc, _dir) = service();
        let (status, product, answer) = call(
            &svc,
            "POST",
            "/_bulk",
            &[("content-type", "text/plain")],
            b"{}".to_vec(),
        )
        .await;
        assert_eq!((status, product), (415, true), "{answer}");
        assert_eq!(answer["error"]["type"], "media_type_header_exception");
        assert_eq!(answer["status"], 415);
        let (status, _, answer) = call(
            &svc,
            "POST",
            "/_bulk",
            &[("content-type", "application/x-ndjson")],
            b"{\"index\":{}}\n{\"message\":\"m\"}\n{\"upsert\":{}}\n".to_vec(),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["type"], "illegal_argument_exception");
        assert_eq!(
            answer["error"]["root_cause"][0]["reason"],
            "line 3: malformed action line: unknown action \"upsert\": expected index, \
             create, delete or update"
        );
        assert_eq!(
            svc.store().stream_count(),
            0,
            "nothing of a refused body is kept"
        );
        assert_eq!(
            metric(&svc, "faultline_ingest_rejected_total", Some("415")),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn indices_exist_and_templates_are_acknowledged() {
        let (svc, _dir) = service();
        let ack = serde_json::json!({"acknowledged": true});
        for (method, path, want_status, want_body) in [
            ("HEAD", "/logs-app", 200, Value::Null),
            (
                "PUT",
                "/logs-app",
                200,
                serde_json::json!({"acknowledged": true, "shards_acknowledged": true, "index": "logs-app"}),
            ),
            ("PUT", "/_index_template/logs", 200, ack.clone()),
            ("PUT", "/_template/logs", 200, ack),
            ("HEAD", "/_index_template/logs", 404, Value::Null),
            ("GET", "/_template/logs", 404, serde_json::json!({})),
        ] {
            let (status, product, body) = call(&svc, method, path, &[], Vec::new()).await;
            assert_eq!(
                (status, product, body),
                (want_status, true, want_body),
                "{method} {path}"
            );
        }
        let (_, _, body) = call(&svc, "GET", "/logs-app", &[], Vec::new()).await;
        assert_eq!(
            body["logs-app"]["settings"]["index"]["provided_name"],
            "logs-app"
        );
        let (status, _, body) = call(&svc, "GET", "/_index_template/logs", &[], Vec::new()).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["type"], "resource_not_found_exception");
        let (status, _, body) = call(&svc, "GET", "/Logs", &[], Vec::new()).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"]["reason"],
            "Invalid index name [Logs], must be lowercase"
        );
    }
}

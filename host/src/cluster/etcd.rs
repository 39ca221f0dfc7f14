//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/...`, keys and values in
//! base64, 64-bit integers as strings): leases, keys and the election API, which is all
//! Faultline's cluster needs. Each request tries the configured endpoints in turn.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

/// Why a request to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd {endpoint}: {source}")]
    Http {
        endpoint: String,
        source: reqwest::Error,
    },
    #[error("etcd {endpoint} answered {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("etcd {endpoint}: unexpected answer: {message}")]
    Answer { endpoint: String, message: String },
}

/// A client of the etcd cluster at `endpoints`.
#[derive(Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    http: reqwest::Client,
    /// Bounds every request but the election campaign.
    timeout: Duration,
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// A JSON integer that the gateway writes as a string.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_i64(),
    }
}

#[derive(Deserialize)]
struct Kv {
    key: String,
    #[serde(default)]
    value: String,
}

/// The end of a range covering every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// A client of these endpoints (`http://host:2379`); `timeout` bounds every request but
    /// the election campaign, which waits until it wins.
    pub fn new(endpoints: &[String], timeout: Duration) -> Etcd {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .unwrap_or_default();
        let endpoints = endpoints
            .iter()
            .map(|e| e.trim_end_matches('/').to_string())
            .collect();
        Etcd {
            endpoints,
            http,
            timeout,
        }
    }

    /// Posts `body` to `path` on each endpoint in turn until one answers.
    async fn call(&self, path: &str, body: Value, bounded: bool) -> Result<Value, EtcdError> {
        let mut last = None;
        for endpoint in &self.endpoints {
            let mut req = self.http.post(format!("{endpoint}{path}")).json(&body);
            if bounded {
                req = req.timeout(self.timeout);
            }
            let http = |source| EtcdError::Http {
                endpoint: endpoint.clone(),
                source,
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(http(e));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(http)?;
            if status != 200 {
                last = Some(EtcdError::Status {
                    endpoint: endpoint.clone(),
                    status,
                    body: text,
                });
                continue;
            }
            return serde_json::from_str(&text).map_err(|e| EtcdError::Answer {
                endpoint: endpoint.clone(),
                message: format!("{e}: {text}"),
            });
        }
        Err(last.unwrap_or_else(|| EtcdError::Answer {
            endpoint: String::new(),
            message: "no endpoint configured".into(),
        }))
    }

    fn answer(&self, message: impl Into<String>) -> EtcdError {
        EtcdError::Answer {
            endpoint: self.endpoints.join(","),
            message: message.into(),
        }
    }

    /// Grants a lease of `ttl`; returns its ID.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let v = self
            .call(
                "/v3/lease/grant",
                json!({"TTL": ttl.as_secs().max(1)}),
                true,
            )
            .await?;
        int(&v["ID"]).ok_or_else(|| self.answer(format!("a lease without an ID: {v}")))
    }

    /// Renews a lease; returns whether it still exists.
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let v = self
            .call(
                "/v3/lease/keepalive",
                json!({"ID": lease.to_string()}),
                true,
            )
            .await?;
        Ok(int(&v["result"]["TTL"]).unwrap_or(0) > 0)
    }

    /// Revokes a lease: its keys are deleted at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}), true)
            .await
            .map(|_| ())
    }

    /// Writes `key`, attached to `lease` when given.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), EtcdError> {
        let mut body = json!({"key": b64(key.as_bytes()), "value": b64(value)});
        if let Some(l) = lease {
            body["lease"] = json!(l.to_string());
        }
        self.call("/v3/kv/put", body, true).await.map(|_| ())
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let v = self
            .call("/v3/kv/range", json!({"key": b64(key.as_bytes())}), true)
            .await?;
        let kvs: Vec<Kv> = serde_json::from_value(v["kvs"].clone()).unwrap_or_default();
        Ok(kvs
            .into_iter()
            .next()
            .map(|kv| B64.decode(kv.value).unwrap_or_default()))
    }

    /// Every key starting with `prefix`, with its value.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
        let body = json!({
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&prefix_end(prefix.as_bytes())),
        });
        let v = self.call("/v3/kv/range", body, true).await?;
        let kvs: Vec<Kv> = serde_json::from_value(v["kvs"].clone()).unwrap_or_default();
        Ok(kvs
            .into_iter()
            .map(|kv| {
                let key = B64.decode(kv.key).unwrap_or_default();
                let value = B64.decode(kv.value).unwrap_or_default();
                (String::from_utf8_lossy(&key).into_owned(), value)
            })
            .collect())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/deleterange",
            json!({"key": b64(key.as_bytes())}),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Campaigns in the election `name` with `lease`, announcing `value`: returns once this
    /// campaign is the leader (it waits for every earlier campaign's key to go).
    pub async fn campaign(&self, name: &str, lease: i64, value: &str) -> Result<(), EtcdError> {
        let body = json!({
            "name": b64(name.as_bytes()),
            "lease": lease.to_string(),
            "value": b64(value.as_bytes()),
        });
        let v = self.call("/v3/election/campaign", body, false).await?;
        match v.get("leader") {
            Some(leader) if leader.get("key").is_some() => Ok(()),
            _ => Err(self.answer(format!("a campaign without a leader key: {v}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/f/"), b"/f0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn integers_come_as_strings_or_numbers() {
        assert_eq!(int(&json!("7587")), Some(7587));
        assert_eq!(int(&json!(12)), Some(12));
        assert_eq!(int(&json!(null)), None);
    }
}

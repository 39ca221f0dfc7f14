//! `faultline query '<selector>'`: asks a running server's `/api/v1/query` and prints the
//! result as `promtool query instant` does, one series per line:
//! `node_load1{instance="a", job="node"} => 0.5 @[1700000000.123]`.

use serde_json::Value;

/// Queries `server` (a base URL) for `selector` at `time` (Unix seconds or RFC 3339; now if
/// `None`) and renders the answer, or says what went wrong.
pub async fn run(server: &str, selector: &str, time: Option<&str>) -> Result<String, String> {
    let url = format!("{}/api/v1/query", server.trim_end_matches('/'));
    let mut form = vec![("query", selector)];
    form.extend(time.map(|t| ("time", t)));
    let response = reqwest::Client::new()
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("cannot query {url}: {e}"))?;
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("{url} did not answer JSON: {e}"))?;
    if body["status"] != "success" {
        return Err(body["error"].as_str().unwrap_or("query failed").to_string());
    }
    Ok(render(&body["data"]))
}

/// One line per series: its labels, then its value and time (or every sample of a range).
fn render(data: &Value) -> String {
    let empty = Vec::new();
    let mut out = String::new();
    for r in data["result"].as_array().unwrap_or(&empty) {
        let mut name = String::new();
        let mut labels = Vec::new();
        for (k, v) in r["metric"].as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default();
            if k == "__name__" {
                name = v.to_string();
            } else {
                labels.push(format!("{k}={v:?}"));
            }
        }
        let points: Vec<String> = match r.get("value") {
            Some(p) => vec![point(p)],
            None => r["values"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(point)
                .collect(),
        };
        out.push_str(&format!(
            "{name}{{{}}} => {}\n",
            labels.join(", "),
            points.join(", ")
        ));
    }
    out
}

fn point(p: &Value) -> String {
    format!("{} @[{}]", p[1].as_str().unwrap_or("?"), p[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_promtool() {
        let data = serde_json::json!({
            "resultType": "vector",
            "result": [{"metric": {"__name__": "up", "job": "node", "instance": "a"}, "value": [1700000000.5, "1"]}],
        });
        assert_eq!(
            render(&data),
            "up{instance=\"a\", job=\"node\"} => 1 @[1700000000.5]\n"
        );
    }
}

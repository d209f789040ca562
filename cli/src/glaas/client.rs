//! JSON over HTTP(S) to a GLaaS server: timeouts, bounded retries with
//! exponential backoff on connection errors and 5xx, and one clear line for
//! a 4xx quoting the server's message. Plain `http://` only to loopback
//! (or with `ROAR_ALLOW_HTTP=1`).

use std::time::Duration;

use serde_json::Value;

use crate::error::{CliError, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per request: the first and three retries.
const ATTEMPTS: u32 = 4;
/// The first retry waits this long, each later one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Whether `url` may be used: https, or http to this machine.
fn check_scheme(url: &str) -> Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(CliError::usage(format!(
            "{url}: the GLaaS URL must start with https:// (or http:// for this machine)"
        )));
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || std::env::var("ROAR_ALLOW_HTTP").is_ok_and(|v| v == "1") {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{url}: refusing plain http:// to another machine (lineage and labels would travel \
             unencrypted); use https://, or set ROAR_ALLOW_HTTP=1"
        )))
    }
}

/// The server's own words from an error body: `detail`, `error` or
/// `message`, else the body itself (cut short).
fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        ["detail", "error", "message"].iter().find_map(|k| {
            v.get(k)
                .map(|m| m.as_str().map_or(m.to_string(), str::to_string))
        })
    });
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    let mut one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        one_line = one_line.chars().take(200).collect::<String>() + "…";
    }
    crate::human::safe(&one_line)
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        check_scheme(base)?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(CONNECT_TIMEOUT)
                .timeout_read(READ_TIMEOUT)
                .build(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call("POST", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let body = body.map(Value::to_string);
        let mut wait = FIRST_BACKOFF;
        let mut last_problem = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = self
                .agent
                .request(method, &url)
                .set("Accept", "application/json")
                .set("User-Agent", concat!("roar/", env!("CARGO_PKG_VERSION")));
            if let Some(t) = &self.token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            let sent = match &body {
                Some(b) => req.set("Content-Type", "application/json").send_string(b),
                None => req.call(),
            };
            match sent {
                Ok(resp) => {
                    let text = resp.into_string().map_err(|e| {
                        CliError::failure(format!("{method} {url}: cannot read the answer: {e}"))
                    })?;
                    if text.trim().is_empty() {
                        return Ok(Value::Null);
                    }
                    return serde_json::from_str(&text).map_err(|_| {
                        CliError::failure(format!(
                            "{method} {url}: the server answered something that is not JSON: {}",
                            server_message(&text)
                        ))
                    });
                }
                Err(ureq::Error::Status(code, resp)) if code < 500 => {
                    let text = resp.into_string().unwrap_or_default();
                    let hint = if code == 401 || code == 403 {
                        " (check `roar login` or ROAR_GLAAS_TOKEN)"
                    } else {
                        ""
                    };
                    return Err(CliError::failure(format!(
                        "{method} {path}: the server refused ({code}): {}{hint}",
                        server_message(&text)
                    )));
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    last_problem = format!("server error {code}: {}", server_message(&text));
                }
                Err(ureq::Error::Transport(t)) => last_problem = t.to_string(),
            }
            if attempt < ATTEMPTS {
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
        Err(CliError::failure(format!(
            "{method} {url} failed after {ATTEMPTS} attempts: {last_problem}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback() {
        assert!(check_scheme("https://api.glaas.ai").is_ok());
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(check_scheme(ok).is_ok(), "{ok}");
        }
        for bad in ["http://example.com", "http://10.0.0.1:80", "ftp://x"] {
            assert!(check_scheme(bad).is_err(), "{bad}");
        }
        assert_eq!(server_message(r#"{"detail": "bad token"}"#), "bad token");
        assert_eq!(server_message("oops\nbroken"), "oops broken");
    }
}

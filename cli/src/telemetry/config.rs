//! Where telemetry keeps its files, and its settings: the per-user
//! `$XDG_CONFIG_HOME/roar/global.toml` and the project's `.roar/config.toml`
//! (keys `telemetry.enabled`, `telemetry.endpoint`, and `glaas.url` from
//! which the default endpoint is derived).
//!
//! The opt-out lives in the user's config, not next to the binary, so a
//! reinstall or upgrade keeps it.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item};

use super::Env;

pub const DEFAULT_GLAAS_URL: &str = "https://api.glaas.ai";
pub const ENDPOINT_PATH: &str = "/api/v1/telemetry/roar";
/// Overrides `glaas.url` for registration, and so for telemetry too.
pub const GLAAS_ENV: &str = "GLAAS_API_URL";

/// The files telemetry reads and writes.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `$XDG_CONFIG_HOME/roar/global.toml`.
    pub global_config: PathBuf,
    /// `$XDG_CACHE_HOME/roar/telemetry/`.
    pub dir: PathBuf,
}

impl Paths {
    pub fn stats(&self) -> PathBuf {
        self.dir.join("stats.json")
    }
    pub fn queue(&self) -> PathBuf {
        self.dir.join("queue")
    }
    /// Serialises uploaders.
    pub fn upload_lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }
    /// Serialises counter updates. Separate from the uploaders' lock so that
    /// a foreground command never waits behind an upload in progress.
    pub fn stats_lock(&self) -> PathBuf {
        self.dir.join(".stats.lock")
    }
}

/// An absolute directory from `var`, else `$HOME/<fallback>` (the XDG base
/// directory rules: relative values are ignored).
fn base_dir(env: Env, var: &str, fallback: &str) -> Option<PathBuf> {
    let from_var = env(var).map(PathBuf::from).filter(|p| p.is_absolute());
    from_var.or_else(|| {
        let home = env("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(dirs::home_dir)?;
        Some(home.join(fallback))
    })
}

/// `None` when there is no home directory to keep state in.
pub fn paths(env: Env) -> Option<Paths> {
    Some(Paths {
        global_config: base_dir(env, "XDG_CONFIG_HOME", ".config")?
            .join("roar")
            .join("global.toml"),
        dir: base_dir(env, "XDG_CACHE_HOME", ".cache")?
            .join("roar")
            .join("telemetry"),
    })
}

/// The telemetry-related keys of one config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    pub glaas_url: Option<String>,
}

fn get<'a>(doc: &'a DocumentMut, table: &str, key: &str) -> Option<&'a Item> {
    doc.get(table)?.get(key)
}

impl Settings {
    /// Reads the keys telemetry uses and ignores the rest (other parts of
    /// roar own them). A wrongly typed telemetry key is an error.
    pub fn from_doc(doc: &DocumentMut, path: &Path) -> Result<Settings, String> {
        let bad = |key: &str, what: &str| format!("{}: {key} must be {what}", path.display());
        let enabled = match get(doc, "telemetry", "enabled") {
            None => None,
            Some(i) => Some(
                i.as_bool()
                    .ok_or_else(|| bad("telemetry.enabled", "true or false"))?,
            ),
        };
        let string = |table: &str, key: &str| -> Result<Option<String>, String> {
            match get(doc, table, key) {
                None => Ok(None),
                Some(i) => i
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| bad(&format!("{table}.{key}"), "a string")),
            }
        };
        Ok(Settings {
            enabled,
            endpoint: string("telemetry", "endpoint")?,
            glaas_url: string("glaas", "url")?,
        })
    }
}

/// A TOML file read for its telemetry keys, kept whole so that writing one
/// key keeps everything else (comments, other tools' tables) as it was.
pub struct ConfigFile {
    pub path: PathBuf,
    doc: DocumentMut,
}

impl ConfigFile {
    /// A missing file is an empty one.
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let doc = match std::fs::read_to_string(path) {
            Ok(text) => text.parse::<DocumentMut>().map_err(|e| {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                format!("{}: {first}", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DocumentMut::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(ConfigFile {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn settings(&self) -> Result<Settings, String> {
        Settings::from_doc(&self.doc, &self.path)
    }

    pub fn set_enabled(&mut self, on: bool) {
        self.table()["enabled"] = toml_edit::value(on);
    }

    pub fn set_endpoint(&mut self, url: &str) {
        self.table()["endpoint"] = toml_edit::value(url);
    }

    fn table(&mut self) -> &mut Item {
        if !self.doc.contains_key("telemetry") {
            self.doc["telemetry"] = toml_edit::table();
        }
        &mut self.doc["telemetry"]
    }

    /// Writes atomically, creating the folder.
    pub fn save(&self) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", self.path.display());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, self.doc.to_string()).map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}

/// Where events go, and which setting said so.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Url {
        url: String,
        source: String,
    },
    /// An empty endpoint: counters stay local, nothing is queued or sent.
    Forbidden {
        source: String,
    },
    /// A configured endpoint roar will not send to; treated as forbidden.
    Invalid {
        source: String,
        reason: String,
    },
}

impl Endpoint {
    pub fn url(&self) -> Option<&str> {
        match self {
            Endpoint::Url { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// The endpoint in force. An explicit empty endpoint in either file wins,
/// so a project cannot re-open uploads the user closed. Otherwise the most
/// specific setting: the project's endpoint, the user's endpoint, then one
/// derived from the GLaaS server roar registers with (`GLAAS_API_URL`, the
/// project's or the user's `glaas.url`), then the default.
pub fn resolve_endpoint(
    global: &Settings,
    global_path: &Path,
    project: Option<(&Settings, &Path)>,
    glaas_env: Option<&str>,
) -> Endpoint {
    let mut candidates: Vec<(Option<String>, String)> = Vec::new();
    let gp = global_path.display();
    if let Some((p, path)) = project {
        candidates.push((
            p.endpoint.clone(),
            format!("telemetry.endpoint in {}", path.display()),
        ));
    }
    candidates.push((
        global.endpoint.clone(),
        format!("telemetry.endpoint in {gp}"),
    ));
    for (value, source) in &candidates {
        if value.as_deref() == Some("") {
            return Endpoint::Forbidden {
                source: source.clone(),
            };
        }
    }
    candidates.push((
        glaas_env.filter(|u| !u.trim().is_empty()).map(derived),
        format!("{GLAAS_ENV} (its GLaaS server)"),
    ));
    if let Some((p, path)) = project {
        candidates.push((
            p.glaas_url.as_ref().map(|u| derived(u)),
            format!("glaas.url in {}", path.display()),
        ));
    }
    candidates.push((
        global.glaas_url.as_ref().map(|u| derived(u)),
        format!("glaas.url in {gp}"),
    ));
    let (url, source) = candidates
        .into_iter()
        .find_map(|(v, s)| v.map(|v| (v, s)))
        .unwrap_or_else(|| (derived(DEFAULT_GLAAS_URL), "default".to_string()));
    match check_url(&url) {
        Ok(()) => Endpoint::Url { url, source },
        Err(reason) => Endpoint::Invalid { source, reason },
    }
}

fn derived(glaas_url: &str) -> String {
    format!("{}{ENDPOINT_PATH}", glaas_url.trim().trim_end_matches('/'))
}

/// An endpoint roar will post to: `https://`, or plain `http://` only to
/// this machine (as for GLaaS: nothing leaves the machine unencrypted).
pub fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (expected https://HOST/PATH)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} is not a URL (expected https://HOST/PATH)"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "localhost" | "127.0.0.1" | "::1") => Ok(()),
        "http" => Err(format!(
            "{url:?} is plain http to another machine; use https:// (http:// is only for localhost)"
        )),
        _ => Err(format!("{url:?}: the endpoint must be an https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn xdg_paths() {
        let env = env_of(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/c"),
            ("XDG_CACHE_HOME", "relative/ignored"),
        ]);
        let p = paths(&env).unwrap();
        assert_eq!(p.global_config, Path::new("/c/roar/global.toml"));
        assert_eq!(p.stats(), Path::new("/h/.cache/roar/telemetry/stats.json"));
        assert_eq!(p.queue(), Path::new("/h/.cache/roar/telemetry/queue"));
        assert_eq!(p.upload_lock(), Path::new("/h/.cache/roar/telemetry/.lock"));
    }

    #[test]
    fn endpoint_precedence() {
        let g = Path::new("/g.toml");
        let pp = Path::new("/p/.roar/config.toml");
        let none = Settings::default();
        let url = |e: Endpoint| e.url().map(str::to_string);
        assert_eq!(
            url(resolve_endpoint(&none, g, None, None)).as_deref(),
            Some("https://api.glaas.ai/api/v1/telemetry/roar")
        );
        let project = Settings {
            glaas_url: Some("https://glaas.example.org/".into()),
            ..Settings::default()
        };
        assert_eq!(
            url(resolve_endpoint(&none, g, Some((&project, pp)), None)).as_deref(),
            Some("https://glaas.example.org/api/v1/telemetry/roar")
        );
        assert_eq!(
            url(resolve_endpoint(
                &none,
                g,
                Some((&project, pp)),
                Some("http://127.0.0.1:5000/")
            ))
            .as_deref(),
            Some("http://127.0.0.1:5000/api/v1/telemetry/roar")
        );
        let user = Settings {
            endpoint: Some("https://t.example.org/in".into()),
            ..Settings::default()
        };
        assert_eq!(
            url(resolve_endpoint(
                &user,
                g,
                Some((&project, pp)),
                Some("https://env.example.org")
            ))
            .as_deref(),
            Some("https://t.example.org/in")
        );
        let forbid = Settings {
            endpoint: Some(String::new()),
            ..Settings::default()
        };
        let project_ep = Settings {
            endpoint: Some("https://p.example.org/t".into()),
            ..Settings::default()
        };
        assert!(matches!(
            resolve_endpoint(&forbid, g, Some((&project_ep, pp)), None),
            Endpoint::Forbidden { .. }
        ));
        let bad = Settings {
            endpoint: Some("http://example.org/t".into()),
            ..Settings::default()
        };
        assert!(matches!(
            resolve_endpoint(&bad, g, None, None),
            Endpoint::Invalid { .. }
        ));
    }

    #[test]
    fn urls() {
        assert!(check_url("https://api.glaas.ai/api/v1/telemetry/roar").is_ok());
        assert!(check_url("http://127.0.0.1:8080/t").is_ok());
        assert!(check_url("http://localhost/t").is_ok());
        assert!(check_url("http://[::1]:9/t").is_ok());
        assert!(check_url("http://example.org/t").is_err());
        assert!(check_url("http://127.0.0.1.example.org/t").is_err());
        assert!(check_url("ftp://example.org/t").is_err());
        assert!(check_url("example.org").is_err());
        assert!(check_url("https:///path").is_err());
    }

    #[test]
    fn settings_keep_other_keys() {
        let path = Path::new("/x/global.toml");
        let mut f = ConfigFile {
            path: path.into(),
            doc: "# mine\n[glaas]\nurl = \"https://g.example.org\"\ntoken_file = \"t\"\n"
                .parse()
                .unwrap(),
        };
        f.set_enabled(false);
        f.set_endpoint("");
        let s = f.settings().unwrap();
        assert_eq!(s.enabled, Some(false));
        assert_eq!(s.endpoint.as_deref(), Some(""));
        assert_eq!(s.glaas_url.as_deref(), Some("https://g.example.org"));
        let text = f.doc.to_string();
        assert!(
            text.contains("# mine") && text.contains("token_file"),
            "{text}"
        );
        let typed: DocumentMut = "[telemetry]\nenabled = \"no\"\n".parse().unwrap();
        assert!(Settings::from_doc(&typed, path)
            .unwrap_err()
            .contains("telemetry.enabled must be true or false"));
    }
}

//! `proxy` and `proxy_password_file` of `[telegram]` and `[bot]`: a SOCKS5 proxy, for where
//! Telegram is blocked or throttled. The URL names the user; the password, like every secret,
//! is a file (never in the configuration, argv, logs or errors).

use std::path::PathBuf;

/// A validated SOCKS5 proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `socks5` (the proxy host is resolved here) or `socks5h` (for the Bot API: names are
    /// resolved by the proxy).
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// Parses `url` (the key's value). Errors say what is wrong without quoting a password.
pub fn parse(url: &str) -> Result<(String, String, u16, Option<String>), String> {
    const SHAPE: &str = "expected socks5://host:port or socks5://user@host:port";
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("not a URL ({e}); {SHAPE}"))?;
    let scheme = parsed.scheme().to_string();
    if scheme != "socks5" && scheme != "socks5h" {
        return Err(format!(
            "the scheme is {scheme:?}; only SOCKS5 proxies are supported: {SHAPE}"
        ));
    }
    if parsed.password().is_some() {
        return Err(
            "the URL holds a password; put it in proxy_password_file instead (a file, like every secret)"
                .into(),
        );
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err(format!("the proxy host is missing; {SHAPE}")),
    };
    let port = parsed
        .port()
        .ok_or_else(|| format!("the proxy port is missing; {SHAPE}"))?;
    if parsed.path() != "" && parsed.path() != "/" || parsed.query().is_some() {
        return Err(format!("a proxy URL has no path or query; {SHAPE}"));
    }
    let user = (!parsed.username().is_empty()).then(|| parsed.username().to_string());
    if let Some(u) = &user {
        check_credential("the user name", u)?;
    }
    Ok((scheme, host, port, user))
}

/// The proxy clients take the user and password from a URL and pass them on as written there
/// (grammers does not decode them), so both are kept to the characters a URL carries as they
/// are.
pub fn check_credential(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err(format!("{what} must be 1 to 255 characters long"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
    {
        return Err(format!(
            "{what} may hold only letters, digits and - . _ ~ (SOCKS5 clients take it from a URL as it is)"
        ));
    }
    Ok(())
}

impl ProxyConfig {
    /// The URL with the password (checked by [`check_credential`]), for the client libraries;
    /// never logged.
    pub fn url_with(&self, host: &str, password: Option<&str>) -> String {
        let auth = match (&self.user, password) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (Some(u), None) => format!("{u}@"),
            (None, _) => String::new(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("{}://{auth}{host}:{}", self.scheme, self.port)
    }

    /// Where the proxy is, for messages (no user, no password).
    pub fn shown(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_checked_and_never_carry_a_password() {
        assert_eq!(
            parse("socks5://alice@proxy.example:1080").unwrap(),
            (
                "socks5".into(),
                "proxy.example".into(),
                1080,
                Some("alice".into())
            )
        );
        assert_eq!(
            parse("socks5h://127.0.0.1:9050").unwrap(),
            ("socks5h".into(), "127.0.0.1".into(), 9050, None)
        );
        for (bad, why) in [
            ("socks5://alice:hunter22@h:1080", "proxy_password_file"),
            ("http://h:8080", "only SOCKS5"),
            ("socks5://h", "port is missing"),
            ("socks5://:1080", "not a URL"),
            ("socks5://h:1080/path", "no path"),
            ("h:1080", "scheme"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter22"), "{e}");
        }
        assert!(check_credential("the password", "p@ss").is_err());
        assert!(check_credential("the password", "").is_err());
        assert!(check_credential("the password", "Corr3ct-horse_battery.staple~").is_ok());
        let p = ProxyConfig {
            scheme: "socks5".into(),
            host: "proxy.example".into(),
            port: 1080,
            user: Some("alice".into()),
            password_file: None,
        };
        assert_eq!(
            p.url_with("10.0.0.1", Some("hunter22")),
            "socks5://alice:hunter22@10.0.0.1:1080"
        );
        assert_eq!(p.url_with("::1", None), "socks5://alice@[::1]:1080");
        assert_eq!(p.shown(), "socks5://proxy.example:1080");
    }
}

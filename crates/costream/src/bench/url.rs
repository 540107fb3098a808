//! The two URL shapes the bench tool speaks: `http://host[:port]/app/stream.flv`
//! (HTTP-FLV) and `rtmp://host[:port]/app/stream` (RTMP). A deliberately
//! small parser: no user info, no fragments, no percent-decoding (the path
//! and query go on the wire as given).

use std::fmt;

use anyhow::{bail, Context};

/// The protocol a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    HttpFlv,
    Rtmp,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::HttpFlv => "http-flv",
            Scheme::Rtmp => "rtmp",
        })
    }
}

/// A parsed `http://` or `rtmp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchUrl {
    pub scheme: Scheme,
    /// Host name or IP literal, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Starts with `/`; no query.
    pub path: String,
    /// After `?`, if any and non-empty.
    pub query: Option<String>,
}

/// What an RTMP client sends: `connect(app, tcUrl)` then `play(name)` or
/// `publish(name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpTarget {
    pub app: String,
    pub tc_url: String,
    /// The stream name, query string kept (`stream?token=x`).
    pub name: String,
}

impl RtmpTarget {
    /// A client session that connects to the app and publishes the stream.
    pub fn publish_session(&self) -> costream_rtmp::ClientSession {
        let mut s = self.session();
        s.create_stream_and_publish(&self.name);
        s
    }

    /// A client session that connects to the app and plays the stream.
    pub fn play_session(&self) -> costream_rtmp::ClientSession {
        let mut s = self.session();
        s.create_stream_and_play(&self.name);
        s
    }

    fn session(&self) -> costream_rtmp::ClientSession {
        costream_rtmp::ClientSession::new(costream_rtmp::ClientConfig {
            app: self.app.clone(),
            tc_url: self.tc_url.clone(),
            chunk_size: 4096,
        })
    }
}

impl BenchUrl {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        let (scheme, rest) = s
            .split_once("://")
            .with_context(|| format!("{s:?} is not a URL (expected http:// or rtmp://)"))?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Scheme::HttpFlv, 80),
            "rtmp" => (Scheme::Rtmp, 1935),
            other => bail!("unsupported URL scheme {other:?} (use http:// or rtmp://)"),
        };
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            bail!("user info in URLs is not supported");
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(default_port);
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, (!q.is_empty()).then(|| q.to_owned())),
            None => (path_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Ok(BenchUrl {
            scheme,
            host,
            port,
            path: path.to_owned(),
            query,
        })
    }

    /// `host:port`, IPv6 literals bracketed: for Host headers and tcUrls.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The HTTP request target: path plus query.
    pub fn request_target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// `app` is the first path segment, the stream name the rest (with the
    /// query string kept on it).
    pub fn rtmp_target(&self) -> anyhow::Result<RtmpTarget> {
        let path = self.path.trim_start_matches('/');
        let (app, name) = path
            .split_once('/')
            .filter(|(a, n)| !a.is_empty() && !n.is_empty())
            .with_context(|| format!("RTMP URL path {:?} is not /app/stream", self.path))?;
        let name = match &self.query {
            Some(q) => format!("{name}?{q}"),
            None => name.to_owned(),
        };
        Ok(RtmpTarget {
            app: app.to_owned(),
            tc_url: format!("rtmp://{}/{app}", self.authority()),
            name,
        })
    }

    /// The RTMP publish URL matching this play URL: the same stream on the
    /// same host, port 1935 for HTTP-FLV URLs (the port of an RTMP URL is
    /// kept), `.flv` and the query string dropped.
    pub fn derived_publish_url(&self) -> anyhow::Result<BenchUrl> {
        let (port, path) = match self.scheme {
            Scheme::Rtmp => (self.port, self.path.clone()),
            Scheme::HttpFlv => (
                1935,
                self.path
                    .strip_suffix(".flv")
                    .unwrap_or(&self.path)
                    .to_owned(),
            ),
        };
        let url = BenchUrl {
            scheme: Scheme::Rtmp,
            host: self.host.clone(),
            port,
            path,
            query: None,
        };
        url.rtmp_target()?;
        Ok(url)
    }
}

impl fmt::Display for BenchUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::HttpFlv => "http",
            Scheme::Rtmp => "rtmp",
        };
        write!(
            f,
            "{scheme}://{}{}",
            self.authority(),
            self.request_target()
        )
    }
}

fn split_host_port(authority: &str) -> anyhow::Result<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').context("unterminated [ in URL host")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').context("junk after ] in URL host")?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("URL has no host");
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("invalid port {p:?}"))?,
        ),
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_flv() {
        let u = BenchUrl::parse("http://127.0.0.1:8080/live/s.flv?token=a=b").unwrap();
        assert_eq!(u.scheme, Scheme::HttpFlv);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.path, "/live/s.flv");
        assert_eq!(u.query.as_deref(), Some("token=a=b"));
        assert_eq!(u.request_target(), "/live/s.flv?token=a=b");
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/live/s.flv?token=a=b");

        let u = BenchUrl::parse("HTTP://example.com").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = BenchUrl::parse("http://h?x=1").unwrap();
        assert_eq!((u.path.as_str(), u.query.as_deref()), ("/", Some("x=1")));
    }

    #[test]
    fn rtmp() {
        let u = BenchUrl::parse("rtmp://[::1]:1936/live/a/b?k=v").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 1936);
        let t = u.rtmp_target().unwrap();
        assert_eq!(t.app, "live");
        assert_eq!(t.name, "a/b?k=v");
        assert_eq!(t.tc_url, "rtmp://[::1]:1936/live");

        let u = BenchUrl::parse("rtmp://host/live/s").unwrap();
        assert_eq!(u.port, 1935);
        assert_eq!(u.rtmp_target().unwrap().tc_url, "rtmp://host:1935/live");
        for bad in ["rtmp://host/live", "rtmp://host/live/", "rtmp://host//s"] {
            assert!(
                BenchUrl::parse(bad).unwrap().rtmp_target().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "live/s",
            "https://h/a/b.flv",
            "ftp://h/x",
            "http://:80/a",
            "http://h:99999/a",
            "http://h:0/a",
            "http://h:x/a",
            "http://u@h/a",
            "rtmp://[::1/a/b",
            "rtmp://[::1]x/a/b",
        ] {
            assert!(BenchUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn publish_url_derivation() {
        let u = BenchUrl::parse("http://10.0.0.1:8080/live/s.flv?t=1").unwrap();
        assert_eq!(
            u.derived_publish_url().unwrap().to_string(),
            "rtmp://10.0.0.1:1935/live/s"
        );
        let u = BenchUrl::parse("rtmp://h:1940/live/s?t=1").unwrap();
        assert_eq!(
            u.derived_publish_url().unwrap().to_string(),
            "rtmp://h:1940/live/s"
        );
        assert!(BenchUrl::parse("http://h/s.flv")
            .unwrap()
            .derived_publish_url()
            .is_err());
    }
}

//! Splitting `name?query` strings: clients put auth tokens and options in
//! the app or stream name (`live?token=x`, `stream?key=y`).

/// Splits at the first `?`. An empty query is `None`.
pub(crate) fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((name, query)) => (
            name.to_owned(),
            (!query.is_empty()).then(|| query.to_owned()),
        ),
        None => (s.to_owned(), None),
    }
}

/// The app name and query from a `connect`: `app` may carry the query, or
/// only the tcUrl does (`rtmp://host/live?token=x` with app `live`).
pub(crate) fn split_app(app: &str, tc_url: Option<&str>) -> (String, Option<String>) {
    let (app, query) = split_query(app);
    // ffmpeg turns `rtmp://host/live/` into app `live/`.
    let app = app.trim_end_matches('/').to_owned();
    let query = query.or_else(|| tc_url.and_then(|url| split_query(url).1));
    (app, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(split_query("stream"), ("stream".into(), None));
        assert_eq!(split_query("stream?"), ("stream".into(), None));
        assert_eq!(
            split_query("stream?key=1&b=?"),
            ("stream".into(), Some("key=1&b=?".into()))
        );
        assert_eq!(split_query(""), (String::new(), None));
    }

    #[test]
    fn app_query_from_app_or_tc_url() {
        assert_eq!(
            split_app("live?token=x", Some("rtmp://h/live?token=x")),
            ("live".into(), Some("token=x".into()))
        );
        assert_eq!(
            split_app("live/", Some("rtmp://h/live?t=1")),
            ("live".into(), Some("t=1".into()))
        );
        assert_eq!(split_app("live", None), ("live".into(), None));
    }
}
